"""Bad input: one clear line on stderr, exit status 2, no traceback, nothing written."""
import subprocess
import sys

import pytest
import torch

from approxlib import models as M
from approxlib import store as S
from approxlib.cli import main
from approxlib.config import ModelConfig


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "r18.pt"
    torch.manual_seed(0)
    S.save_checkpoint(M.build(ModelConfig("resnet18", 10, 1)), path, ModelConfig("resnet18", 10, 1),
                      meta={"configs": [{"type": "DataConfig", "dataset": "fashion-mnist"}]})
    return path


def _apx_bytes() -> bytes:
    from approxlib import compress
    from approxlib.config import CodecConfig
    mc = ModelConfig("mobilenetv2", 10, 1)
    return compress.encode(M.build(mc, seed=0), mc, CodecConfig("sparse"))[0]


@pytest.mark.parametrize("argv, message", [
    (["report", "--profile", "nope"], "unknown profile 'nope'; valid: smoke, quick, paper"),
    (["report", "--profile", "smoke", "--sections", "A,Q"], "unknown section 'Q'; valid: A, B, C, D, E, F, G"),
    (["report", "--profile", "smoke", "--set", "epochz=2"], "unknown parameter 'epochz'; valid:"),
    (["report", "--profile", "smoke", "--set", "ratio=1.5"], "ratio must be in [0.0, 1.0), got 1.5"),
    (["report", "--profile", "smoke", "--set", "dataset=imagenet"], "unknown dataset 'imagenet'; valid:"),
    (["report", "--profile", "smoke", "--set", "ratio"], "--set expects key=value"),
    (["train", "--profile", "smoke", "--model", "vgg16", "--out", "{tmp}/x.pt"],
     "unknown model 'vgg16'; valid: resnet18, mobilenetv2"),
    (["train", "--profile", "smoke", "--model", "resnet18", "--dataset", "cifar10",
      "--out", "{tmp}/x.pt", "--data-dir", "{tmp}/empty", "--models-dir", "{tmp}/m"],
     "cifar10 not found in"),
    (["evaluate", "--checkpoint", "{tmp}/missing.pt"], "checkpoint not found"),
    (["prune", "--checkpoint", "{ck}", "--ratio", "1.0", "--out", "{tmp}/x.pt"],
     "ratio must be in [0.0, 1.0), got 1.0"),
    (["evaluate", "--checkpoint", "{ck}", "--model", "mobilenetv2"], "holds resnet18, not mobilenetv2"),
    (["evaluate", "--checkpoint", "{cut}"], "truncated or not a checkpoint"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["compress", "--checkpoint", "{ck}", "--out", "{tmp}/x.pt"], "--out must name an .apx file"),
    (["compress", "--checkpoint", "{ck}", "--out", "{tmp}/x.apx", "--sparsity", "1"],
     "sparsity must be in [0.0, 1.0), got 1.0"),
    (["evaluate", "--checkpoint", "{cutapx}"], "truncated or extended file"),
    (["evaluate", "--checkpoint", "{ck}.apx"], "compressed model not found"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, r18, argv, message):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(r18.read_bytes()[:5000])
    cutapx = tmp_path / "cut.apx"
    cutapx.write_bytes(_apx_bytes()[:-10])
    argv = [a.format(tmp=tmp_path, ck=r18, cut=cut, cutapx=cutapx) for a in argv]
    before = set(tmp_path.rglob("*"))
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("approx: error: ") and message in err, err
    assert "Traceback" not in err and out == ""
    assert set(tmp_path.rglob("*")) == before  # nothing half-written


def test_single_stage_commands(capsys, tmp_path, r18, data_root):
    code, out, _ = run(capsys, "quantize", "--checkpoint", str(r18), "--out", str(tmp_path / "q.pt"))
    assert code == 0 and (tmp_path / "q.pt").stat().st_size < r18.stat().st_size
    code, out, _ = run(capsys, "prune", "--profile", "smoke", "--set", "finetune_epochs=0",
                       "--checkpoint", str(r18), "--ratio", "0.5", "--out", str(tmp_path / "p.pt"),
                       "--data-dir", str(data_root), "--quiet")
    assert code == 0 and out.startswith("sparsity 0.5000")
    code, out, _ = run(capsys, "evaluate", "--profile", "smoke", "--checkpoint", str(tmp_path / "p.pt"),
                       "--data-dir", str(data_root), "--set", "latency_min_time=0.05", "--layers")
    assert code == 0 and '"sparsity": 0.5' in out and "layer,shape,total,zeros,sparsity" in out


def test_console_entry_point_and_dry_run(tmp_path):
    res = subprocess.run([sys.executable, "-m", "approxlib", "report", "--profile", "smoke",
                          "--dry-run", "--models-dir", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    # A–E: 14 stages; F per model: gradual, share, 6 encodings, 7 evaluations (baseline shared);
    # G per model: channel prune, 2 static INT8, 4 ONNX exports, 7 evaluations; A–E's 2 dense
    # controls and their evaluations, F's 2 likewise (G's are A–E's on smoke); H: 8 runs (2 models x 2 protocols x 2 seeds) of train,
    # prune, control and 3 evaluations, and the curve's sensitivity, 15 prunes, 15 evaluations
    assert lines[-1] == "159 stages, 0 cached, 159 to compute"
    assert sum(line.startswith("missing  train") for line in lines) == 2 + 8
    bad = subprocess.run([sys.executable, "-m", "approxlib", "report", "--profile", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0


def test_compress_then_evaluate_the_apx_file(capsys, tmp_path, r18, data_root):
    out = tmp_path / "r18.apx"
    code, text, _ = run(capsys, "compress", "--profile", "smoke", "--checkpoint", str(r18),
                        "--out", str(out), "--sparsity", "0.9", "--data-dir", str(data_root),
                        "--set", "dc_share_epochs=0", "--quiet")
    assert code == 0 and text.startswith("sparsity 0.9000") and out.read_bytes()[:4] == b"\x89APX"
    code, text, _ = run(capsys, "evaluate", "--profile", "smoke", "--checkpoint", str(out),
                        "--data-dir", str(data_root), "--set", "latency_min_time=0.05")
    assert code == 0 and '"sparsity": 0.9' in text and f'"size_bytes": {out.stat().st_size}' in text
