"""NNCodec, the reference software of MPEG's Neural Network Coding standard (ISO/IEC 15938-17),
as section F's reference codec: DeepCABAC (context-adaptive binary arithmetic coding with
dependent quantization) on the same pruned weights our `.apx` file codes.

NNCodec pins numpy < 2, so it lives in its own virtualenv (`make nncodec` builds `.venv-nnc`;
`APPROX_NNCODEC_PYTHON` names another interpreter) and runs as a subprocess
(`nncodec_worker.py`); weights cross as .npz files read with allow_pickle=False. What is coded is
the float model with BatchNorm folded into the convolutions — the structure `.apx` stores — so
the two files hold the same tensors. NNCodec quantizes uniformly (step 2^(qp / 2^qp_density))
with dependent quantization, which may give a few pruned weights (~1% here) a non-zero level: the
decoded model's sparsity is measured, not assumed.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import store
from .compress import FOLDED, skeleton
from .config import ConfigError, ModelConfig
from .models import prunable
from .share import fold_batchnorm

WORKER = Path(__file__).with_name("nncodec_worker.py")
RESULT = "approx-nncodec-result: "  # the worker's result line (the same text there)
VENV = Path(__file__).resolve().parent.parent / ".venv-nnc"
TIMEOUT = 1800  # seconds for one call; ResNet-18 encodes in ~6 s here
SUFFIX = ".nnc"  # an NNCodec bitstream's file


def python() -> Path:
    """The interpreter that has NNCodec: $APPROX_NNCODEC_PYTHON, else `.venv-nnc`'s."""
    return Path(os.environ.get("APPROX_NNCODEC_PYTHON") or VENV / "bin" / "python")


def check_available() -> None:
    """One line at plan time, before anything trains, when NNCodec cannot run."""
    if not python().is_file():
        raise ConfigError(f"the NNCodec comparison needs its own environment ({python()} not "
                          f"found): run `make nncodec`, or set APPROX_NNCODEC_PYTHON, or "
                          f"turn it off with `--set nncodec_qps=[]`")


def _run(*args: str) -> dict:
    # One thread: the caller may be timing something else. -I: isolated, so the worker's
    # folder (which holds this module, also named nncodec) is not on its import path.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        proc = subprocess.run([str(python()), "-I", str(WORKER), *args], capture_output=True,
                              text=True, timeout=TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        raise store.CheckpointError(f"NNCodec {args[0]} took more than {TIMEOUT} s") from None
    except OSError as e:
        raise store.CheckpointError(f"NNCodec could not start ({python()}): {e}") from None
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise store.CheckpointError(f"NNCodec {args[0]} failed: {tail}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
    try:
        return json.loads(lines[-1][len(RESULT):])
    except (IndexError, ValueError):
        raise store.CheckpointError(f"NNCodec {args[0]} gave no result (is {python()} the "
                                    f"NNCodec environment?)") from None


def float_state(model: nn.Module) -> dict[str, np.ndarray]:
    """The tensors NNCodec codes: the model with BatchNorm folded, all float32."""
    folded = fold_batchnorm(copy.deepcopy(model).cpu())
    state = folded.state_dict()
    odd = [k for k, v in state.items() if v.dtype != torch.float32]
    if odd:
        raise ConfigError(f"NNCodec codes float32 tensors only; {odd[0]} is {state[odd[0]].dtype}")
    return {k: v.detach().contiguous().numpy() for k, v in state.items()}


def encode(model: nn.Module, path: Path, qp: int, qp_density: int, expect: ModelConfig
           ) -> dict:
    """Write NNCodec's bitstream of `model` at `path`, atomically and only once NNCodec has
    decoded it into `expect`'s architecture; its bytes and encode/decode seconds."""
    with tempfile.TemporaryDirectory() as tmp, store.atomic_path(path) as out:
        weights = Path(tmp) / "weights.npz"
        np.savez(weights, **float_state(model))
        result = _run("encode", str(weights), str(out), str(qp), str(qp_density))
        _, info = load(out, expect)
    return {**result, **info["meta"], "bytes": path.stat().st_size}


def load(path: Path, expect: ModelConfig) -> tuple[nn.Module, dict]:
    """Decode a bitstream with NNCodec's decoder into the folded `expect` architecture; every
    tensor's name and shape is checked against it before it is loaded."""
    if not Path(path).is_file():
        raise store.CheckpointError(f"NNCodec bitstream not found: {path}")
    model = skeleton(expect, FOLDED)
    want = model.state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "decoded.npz"
        result = _run("decode", str(path), str(out))
        with np.load(out, allow_pickle=False) as z:
            if sorted(z.files) != sorted(want):
                raise store.CheckpointError(f"{path}: NNCodec decoded tensors that do not match "
                                            f"the folded {expect.name}")
            state = {k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files}
    bad = next((k for k, v in state.items() if v.shape != want[k].shape), None)
    if bad is not None:
        raise store.CheckpointError(f"{path}: {bad} decoded as {tuple(state[bad].shape)}, the "
                                    f"architecture has {tuple(want[bad].shape)}")
    model.load_state_dict(state)
    return model.eval(), {"model": None, "meta": result, "quant": "nncodec"}


def codebook_indices(model: nn.Module) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Per prunable weight of a weight-shared model: its values as signed indices into its sorted
    distinct values, 0 where the weight is pruned (as NNCodec's codebook mode orders them), and
    the number of non-zero distinct values (the codebook a file must also store)."""
    indices, sizes = {}, {}
    for name, m in prunable(model):
        w = m.weight.detach().cpu().numpy()
        book, idx = np.unique(w, return_inverse=True)
        zero = int(np.searchsorted(book, 0.0))
        has_zero = zero < len(book) and book[zero] == 0.0
        signed = idx.reshape(w.shape).astype(np.int64) - zero
        if not has_zero:  # nothing pruned: keep 0 free for "pruned"
            signed[signed >= 0] += 1
        indices[name], sizes[name] = signed.astype(np.int32), len(book) - int(has_zero)
    return indices, sizes


def cabac_bytes(model: nn.Module) -> dict:
    """DeepCABAC's bytes for a weight-shared model's codebook indices (lossless: the worker
    checks the round trip), plus 4 bytes per codebook value, per layer and in total."""
    indices, sizes = codebook_indices(model)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "indices.npz"
        np.savez(src, **indices)
        result = _run("cabac", str(src))
    per = {k: b + 4 * sizes[k] for k, b in result["bytes"].items()}
    return {**result, "layers": per, "total": sum(per.values())}


if __name__ == "__main__":  # `python -m approxlib.nncodec`: is NNCodec usable here?
    try:
        check_available()
    except ConfigError as e:
        sys.exit(f"error: {e}")
    print(python())
