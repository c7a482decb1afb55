"""Every module of the package imports on its own, as a user's first line may
(`from approxlib import share` once failed: share -> train -> data -> store -> quantize -> share)."""
import subprocess
import sys
from pathlib import Path

import approxlib

# A fresh interpreter loads the heavy third-party libraries once, then forks a child per module, so that each
# module is the first of the package to be imported, as in a new session.
PROBE = r"""
import importlib, os, sys
for lib in ("numpy", "pandas", "torch", "torchvision", "torch.ao.quantization.quantize_fx",
            "scipy.stats", "sklearn.cluster", "matplotlib.pyplot", "onnx", "onnxruntime",
            "onnxruntime.quantization", "torch_pruning", "papermill", "nbformat", "nbconvert",
            "statsmodels.stats.contingency_tables", "dask.distributed"):
    try:  # third-party only: loaded once here, shared by the children
        importlib.import_module(lib)
    except ImportError:
        pass
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(f"approxlib.{name}")
        except Exception as e:
            print(f"{name}: {type(e).__name__}: {e}", flush=True)
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first():
    names = sorted(p.stem for p in Path(approxlib.__file__).parent.glob("*.py")
                   if not p.stem.startswith("__"))
    assert "share" in names and "quantize" in names
    res = subprocess.run([sys.executable, "-c", PROBE, *names], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
