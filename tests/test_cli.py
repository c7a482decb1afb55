"""Bad input: one clear line on stderr, exit status 2, no traceback, nothing written."""
import contextlib
import errno
import io
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_config import FLOAT_PATHS, SMOKE, _with

from approxlib import cli
from approxlib import compress
from approxlib import models as M
from approxlib import pipeline
from approxlib import store
from approxlib.cli import main
from approxlib.config import ModelConfig, load_profile, per_model


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "r18.pt"
    torch.manual_seed(0)
    store.save_checkpoint(M.build(ModelConfig("resnet18", 10, 1)), path, ModelConfig("resnet18", 10, 1),
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
    (["report", "--profile", "smoke", "--set", "epochz=2"],
     "unknown parameter 'epochz'; did you mean epochs or "),
    (["report", "--profile", "smoke", "--set", "ratio=1.5"], "ratio must be in [0.0, 1.0), got 1.5"),
    (["report", "--profile", "smoke", "--set", "dataset=imagenet"], "unknown dataset 'imagenet'; valid:"),
    (["report", "--profile", "smoke", "--set", "ratio"], "--set expects key=value"),
    (["train", "--profile", "smoke", "--model", "vgg16x", "--out", "{tmp}/x.pt"],
     "unknown model 'vgg16x': not a torchvision classification model"),
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
    # a checkpoint's metadata is input too, and a pickle that would run code is named as such
    (["evaluate", "--checkpoint", "{meta}"], "the checkpoint's metadata is malformed"),
    (["evaluate", "--checkpoint", "{evil}"], "holds pickled code (posix.system)"),
    (["evaluate", "--checkpoint", "{ck}", "--dataset", "cifar100"],
     "names 10 classes; cifar100 has 100"),
    (["prune", "--checkpoint", "{ck}", "--dataset", "cifar100", "--ratio", "0.5", "--out",
      "{tmp}/x.pt"], "names 10 classes; cifar100 has 100"),
    (["compress", "--checkpoint", "{ck}", "--dataset", "cifar10", "--out", "{tmp}/x.apx"],
     "expects 1-channel images; cifar10 has 3"),
    (["evaluate", "--checkpoint", "{ck}", "--set", "image_size=4096"],
     "images resized to 4096×4096 need 156 GiB"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, tmp_path, r18, argv, message, data_root):
    cut = tmp_path / "cut.pt"
    cut.write_bytes(r18.read_bytes()[:5000])
    cutapx = tmp_path / "cut.apx"
    cutapx.write_bytes(_apx_bytes()[:-10])
    meta = tmp_path / "meta.pt"
    torch.save({**torch.load(r18, weights_only=True), "meta": {"configs": [1]}}, meta)
    evil = _with_pickle(r18, tmp_path / "evil.pt", Ran(tmp_path / "ran"))
    argv = [a.format(tmp=tmp_path, ck=r18, cut=cut, cutapx=cutapx, meta=meta, evil=evil)
            for a in argv] + (["--data-dir", str(data_root)] if argv[0] == "evaluate" else [])
    before = set(tmp_path.rglob("*"))
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("approx: error: ") and message in err, err
    assert "Traceback" not in err and out == ""
    assert set(tmp_path.rglob("*")) == before  # nothing half-written, no code run


class Ran:
    """A pickled call of os.system that would leave a file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _with_pickle(src, dst, obj):
    """A copy of checkpoint `src` whose data.pkl is `obj` pickled."""
    import pickle
    import zipfile
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            body = zin.read(item.filename)
            zout.writestr(item, pickle.dumps(obj, protocol=2)
                          if item.filename.endswith("/data.pkl") else body)
    return dst


def test_single_stage_commands(capsys, caplog, tmp_path, r18, data_root):
    code, out, _ = run(capsys, "quantize", "--checkpoint", str(r18), "--out", str(tmp_path / "q.pt"))
    assert code == 0 and (tmp_path / "q.pt").stat().st_size < r18.stat().st_size
    code, out, _ = run(capsys, "prune", "--profile", "smoke", "--set", "finetune_epochs=0",
                       "--checkpoint", str(r18), "--ratio", "0.5", "--out", str(tmp_path / "p.pt"),
                       "--data-dir", str(data_root), "--quiet")
    assert code == 0 and out.startswith("sparsity 0.5000")
    code, out, _ = run(capsys, "evaluate", "--profile", "smoke", "--checkpoint", str(tmp_path / "p.pt"),
                       "--data-dir", str(data_root), "--set", "latency_min_time=0.05", "--layers")
    assert code == 0 and '"sparsity": 0.5' in out and "layer,shape,total,zeros,sparsity" in out
    assert '"test_images": 1000' in out  # the profile's test_size, as a report scores it
    # at the image size it was trained at (28, as stored), not a profile's, unless --set says
    (tmp_path / "mine.yaml").write_text("base: smoke\nimage_size: 40\nlatency_min_time: 0.05\n")
    for extra, size in (([], 28), (["--set", "image_size=32"], 32)):
        code, out, _ = run(capsys, "evaluate", "--profile", str(tmp_path / "mine.yaml"),
                           "--checkpoint", str(tmp_path / "p.pt"), "--data-dir", str(data_root),
                           *extra)
        assert code == 0 and json.loads(out)["image_size"] == size
    # weights saved elsewhere, as `init` and `evaluate` take them: every command takes them
    plain = tmp_path / "mine.pth"
    torch.save(store.load_checkpoint(r18)[0].state_dict(), plain)
    code, _, err = run(capsys, "quantize", "--checkpoint", str(plain), "--out", str(tmp_path / "x"))
    assert code == 2 and "name it with --model" in err and not (tmp_path / "x").exists()
    code, out, _ = run(capsys, "prune", "--profile", "smoke", "--set", "finetune_epochs=0",
                       "--set", "bn_momentum={resnet18: 0.1, default: null}",  # per model
                       "--checkpoint", str(plain), "--model", "resnet18", "--ratio", "0.3",
                       "--out", str(tmp_path / "p3.pt"), "--data-dir", str(data_root), "--quiet")
    assert code == 0 and out.startswith("sparsity 0.3000")
    meta = store.load_checkpoint(tmp_path / "p3.pt")[1]["meta"]
    configs = {c["type"]: c for c in meta["configs"]}  # how it was made, its data first
    assert meta["source"] == str(plain) and configs["DataConfig"]["dataset"] == "fashion-mnist"
    assert configs["PruneConfig"]["ratio"] == 0.3
    code, out, _ = run(capsys, "quantize", "--profile", "smoke", "--checkpoint", str(plain),
                       "--model", "resnet18", "--out", str(tmp_path / "q3.pt"))
    assert code == 0 and store.load_checkpoint(tmp_path / "q3.pt")[1]["quant"] == "int8-dynamic"
    # quantize keeps what its source records; the other commands take a dense float model
    assert store.load_checkpoint(tmp_path / "q.pt")[1]["meta"]["configs"] == \
        store.load_checkpoint(r18)[1]["meta"]["configs"]
    code, _, err = run(capsys, "prune", "--profile", "smoke", "--checkpoint", str(tmp_path / "q.pt"),
                       "--ratio", "0.5", "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "is quantized (int8-dynamic); prune a dense float model" in err
    code, _, err = run(capsys, "quantize", "--checkpoint", str(r18), "--dataset", "cifar10",
                       "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "quantize reads no data" in err and not (tmp_path / "x.pt").exists()
    (tmp_path / "r.apx").write_bytes(b"\x89APX")
    code, _, err = run(capsys, "prune", "--checkpoint", str(tmp_path / "r.apx"), "--ratio", "0.5",
                       "--out", str(tmp_path / "x.pt"))
    assert code == 2 and "r.apx is an encoded file (`approx evaluate` reads it)" in err
    # a checkpoint that names no data runs on the profile's, and says so
    model, info = store.load_checkpoint(r18)
    store.save_checkpoint(model, tmp_path / "bare.pt", ModelConfig(**info["model"]))
    with caplog.at_level("WARNING", "approxlib"):
        code, out, _ = run(capsys, "evaluate", "--profile", "smoke", "--checkpoint",
                           str(tmp_path / "bare.pt"), "--data-dir", str(data_root), "--set",
                           "latency_min_time=0.05")
    assert code == 0 and json.loads(out)["dataset"] == "fashion-mnist"
    assert "bare.pt records no dataset; running it on the profile's, fashion-mnist" in caplog.text
    # one that records its data runs on it, and says so where the profile names other data
    # (a user's profile naming their folder was passed over without a word)
    caplog.clear()
    with caplog.at_level("WARNING", "approxlib"):
        code, out, _ = run(capsys, "evaluate", "--profile", "smoke", "--checkpoint", str(r18),
                           "--data-dir", str(data_root), "--set", "dataset=cifar10", "--set",
                           "latency_min_time=0.05")
    assert code == 0 and json.loads(out)["dataset"] == "fashion-mnist"
    assert "runs on the data it records, fashion-mnist, not the profile's cifar10 (--dataset " \
        "chooses)" in caplog.text
    caplog.clear()  # but not where no profile named other data than the defaults' (noise)
    from approxlib import cli
    info = {"meta": {"configs": [{"type": "DataConfig", "dataset": "cifar10"}]}}
    with caplog.at_level("WARNING", "approxlib"):
        assert cli._checkpoint_dataset(r18, info, None, load_profile("smoke")) == "cifar10"
    assert "note" not in caplog.text


def test_console_entry_point_and_dry_run(tmp_path):
    res = subprocess.run([sys.executable, "-m", "approxlib", "report", "--profile", "smoke",
                          "--dry-run", "--models-dir", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    p = load_profile("smoke")  # every distinct stage of the plan, each once
    vs = pipeline.plan(p, list("ABCDEFGH"))
    stages = {st.key: st.kind for v in vs for st in pipeline.stages(v, p)}
    # and what is not a stage: section F's bits curves, each section's timing in turns
    curves = {pipeline.curve_key(v, p)[2] for v in vs if pipeline.has_curve(v)}
    timed = {g.key for g in pipeline.latency_groups(p, vs, [pipeline.chain(v, p) for v in vs])}
    n = len(stages) + len(curves) + len(timed)
    assert curves and timed and lines[-1] == f"{n} entries, 0 cached, {n} to compute"
    assert sum(line.startswith("missing  latency") for line in lines) == len(timed)
    trainings = sum(kind == "train" for kind in stages.values())
    assert trainings >= 2 and sum(line.startswith("missing  train") for line in lines) == trainings
    bad = subprocess.run([sys.executable, "-m", "approxlib", "report", "--profile", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    # piped into a reader that has gone (`| head -1`): no "error: Broken pipe", no traceback
    gone = subprocess.Popen([sys.executable, "-m", "approxlib", "report", "--profile", "smoke",
                             "--dry-run", "--models-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gone.stdout.close()  # before its first line: every write fails
    assert gone.wait(timeout=120) == 141 and gone.stderr.read() == b""


def test_a_short_output_into_a_closed_pipe_is_silent_and_other_broken_pipes_are_errors(
        capsys, monkeypatch):
    """`approx models | true` with stdout block-buffered (no PYTHONUNBUFFERED): the write comes
    at the flush, after the command returned. A broken pipe that is not stdout's (a store's
    socket) stays an error line."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    gone = subprocess.Popen([sys.executable, "-m", "approxlib", "models"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    gone.stdout.close()
    assert gone.wait(timeout=120) == 141 and gone.stderr.read() == b""

    def broken(a):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")
    monkeypatch.setitem(cli.COMMANDS, "models", broken)
    code, _, err = run(capsys, "models")
    assert code == 2 and err.startswith("approx: error:") and err.count("\n") == 1


def test_compress_then_evaluate_the_apx_file(capsys, tmp_path, r18, data_root):
    out = tmp_path / "r18.apx"
    code, text, _ = run(capsys, "compress", "--profile", "smoke", "--checkpoint", str(r18),
                        "--out", str(out), "--sparsity", "0.9", "--data-dir", str(data_root),
                        "--set", "dc_share_epochs=0", "--quiet")
    assert code == 0 and text.startswith("sparsity 0.9000") and out.read_bytes()[:4] == b"\x89APX"
    configs = {c["type"]: c for c in compress.load(out)[1]["meta"]["configs"]}
    assert configs["GradualConfig"]["sparsity"] == 0.9  # how the file was made, in its header
    assert configs["TrainConfig"]["epochs"] == per_model(load_profile("smoke"), "dc_epochs",
                                                         "resnet18")
    code, text, _ = run(capsys, "evaluate", "--profile", "smoke", "--checkpoint", str(out),
                        "--data-dir", str(data_root), "--set", "latency_min_time=0.05")
    assert code == 0 and '"sparsity": 0.9' in text and f'"size_bytes": {out.stat().st_size}' in text


# ---------------------------------------------------------------- issue 14: never trust a value

def _flow(value) -> str:
    """`value` as the YAML flow text a user would type after --set key=."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if value != value else ".inf" if value > 0 else "-.inf"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(x) for x in value) + "]"
    return json.dumps(value)


def _quiet_main(argv):
    """main() with its output captured (hypothesis reruns a test; capsys is per test)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@settings(max_examples=60, deadline=None)
@given(path=st.sampled_from(FLOAT_PATHS), bad=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_any_float_parameter_given_nan_or_inf_by_set_exits_2(tmp_path_factory, path, bad):
    models = tmp_path_factory.mktemp("m")
    key = path[0]
    arg = f"{key}={_flow(_with(SMOKE[key], path[1:], bad))}"
    code, out, err = _quiet_main(["report", "--profile", "smoke", "--set", arg, "--dry-run",
                                  "--models-dir", str(models)])
    assert code == 2 and out == "", (arg, out)
    assert err.count("\n") == 1 and err.startswith("approx: error: "), err
    assert "finite" in err or "must be in" in err, (arg, err)


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(9))


def test_more_threads_than_cores_is_warned_of(capsys, tmp_path, monkeypatch):
    """64 threads on 2 cores ran each step 14× slower, without a word (a stranger's test,
    2026-12-07); as many as the cores, or a remote scheduler's, say nothing."""
    from approxlib import executors
    monkeypatch.setattr(executors, "cores", lambda: 2)
    for argv, warned in ((["--threads", "3"], True), (["--workers", "2", "--threads", "2"], True),
                         (["--threads", "2"], False), (["--workers", "2"], False)):
        code, out, err = run(capsys, "report", "--profile", "smoke", "--dry-run", "--sections",
                             "A", "--models-dir", str(tmp_path / "m"), *argv)
        assert code == 0 and ("threads (--workers × --threads) on this machine's 2 cores"
                              in err) == warned, (argv, err)


@pytest.mark.parametrize("argv, message", [
    (["--set", "ratio=.nan"], "ratio must be a finite number, got nan"),
    (["--set", "ratios=[.nan]"], "each of ratios must be a finite number, got nan"),
    (["--set", "lr=-.inf"], "lr must be a finite number, got -inf"),
    (["--set", "dc_sparsity={resnet18: .nan, mobilenetv2: 0.5}"], "sparsity must be a finite"),
    (["--set", "epochs=" + "9" * 5000], "Exceeds the limit (4300 digits)"),
    (["--set", "epochs=" + "9" * 4000], "epochs must be in [0, 10000], got an integer of about"),
    (["--set", "batch_size=1000000"], "batch_size must be in [2, 65536]"),
    (["--set", "h_seeds=" + BOMB], "anchors and aliases"),
    (["--set", "ratios=&a [0.5, *a]"], "anchors and aliases"),
    (["--set", "h_protocols={!!binary aGVsbG8=: {lr: 0.1}}"], "mapping keys must be strings"),
    (["--set", "h_protocols={1: {lr: 0.1}}"], "mapping keys must be strings, got 1 (int)"),
    (["--set", "dataset=!!binary Y2lmYXIxMA=="], "a bytes value"),
    (["--set", "dataset=2024-01-31"], "reads as a date"),
    (["--set", "ratios=" + "[" * 100 + "]" * 100], "nested more than 16 levels deep"),
    (["--set", "dataset=" + "x" * 20_000], "at most 10000"),
    (["--sections", ""], "--sections is empty"),
    (["--sections", " "], "--sections is empty"),
    (["--threads", "0"], "--threads must be at least 1, got 0"),
    (["--threads", "100000"], "--threads must be at most 1024"),
    (["--threads", "9" * 5000], "invalid int value"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --executor dask"),
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--workers", "1000"], "--workers 1000 is more than the"),
    (["--workers", "2", "--set", "latency_rounds=0"], "--workers above 1 needs latency_rounds"),
    (["--out", "{file}"], "is a file, not a folder"),
    (["--out", "{file}/report"], "is a file, not a folder"),
    (["--models-dir", "{file}/models"], "is a file, not a folder"),
    (["--models-dir", ""], "argument --models-dir: is empty"),
    (["--out", ""], "argument --out: is empty"),
    (["--data-dir", " "], "argument --data-dir: is empty"),
    (["--models-dir", "file://{file}/models"], "is a file, not a folder"),
    (["--models-dir", "nosuchprotocol://bucket/approx"], "cannot use this store"),
    (["--models-dir", "memory://no-such-bucket/approx"], "neither the store nor its parent"),
    (["--models-dir", "file://"], "store file:// names no folder: give its path"),
    (["--models-dir", "file:///"], "store file:/// names no folder"),
    (["--models-dir", "memory://"], "memory:// names no folder: give its path, e.g. memory://b"),
    (["--models-dir", "file://models"], "names an absolute path, file:///path/to/folder"),
])
def test_report_checks_everything_before_dry_run_returns(capsys, tmp_path, argv, message):
    (tmp_path / "file").write_text("not a folder")
    argv = [a.replace("{file}", str(tmp_path / "file")) for a in argv]
    before = set(tmp_path.rglob("*"))
    t0 = time.perf_counter()
    code, out, err = run(capsys, "report", "--profile", "smoke", "--dry-run",
                         "--models-dir", str(tmp_path / "m"), *argv)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("approx: error: ") and message in err, err
    assert len(err) < 400
    assert time.perf_counter() - t0 < 30
    assert set(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("command", [
    ["train", "--profile", "smoke", "--model", "resnet18"],
    ["prune", "--profile", "smoke", "--checkpoint", "{ck}", "--ratio", "0.5"],
    ["quantize", "--checkpoint", "{ck}"],
    ["compress", "--profile", "smoke", "--checkpoint", "{ck}"],
])
@pytest.mark.parametrize("where, message", [
    ("{tmp}/folder.apx", "is a folder; name the file to write"),
    ("{tmp}/file/x.apx", "is a file, not a folder"),
    ("{tmp}/file/deeper/x.apx", "is a file, not a folder"),
])
def test_unwritable_out_fails_before_any_work(capsys, tmp_path, r18, data_root, command, where,
                                              message):
    (tmp_path / "folder.apx").mkdir()
    (tmp_path / "file").write_text("not a folder")
    argv = [a.format(ck=r18) for a in command] + ["--out", where.format(tmp=tmp_path)]
    if command[0] != "quantize":  # the commands that train could start to
        argv += ["--data-dir", str(data_root), "--quiet", "--models-dir", str(tmp_path / "m")]
    before = set(tmp_path.rglob("*"))
    t0 = time.perf_counter()
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and message in err, err
    assert time.perf_counter() - t0 < 10  # training even the smoke baseline takes longer
    assert set(tmp_path.rglob("*")) == before  # no models/ folder, no lock, no temp file


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode-0555 folder")
def test_read_only_out_folder_fails_before_any_work(capsys, tmp_path, r18):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, out, err = run(capsys, "quantize", "--checkpoint", str(r18),
                             "--out", str(ro / "q.pt"))
    finally:
        ro.chmod(0o755)
    assert code == 2 and "cannot write in" in err and "Permission denied" in err
    assert list(ro.iterdir()) == []


def test_read_only_file_system_is_one_line(capsys, tmp_path, r18, monkeypatch):
    # Tests run as root, whom mode bits do not stop: the kernel's answer on a read-only mount
    # (EROFS from creating the probe file) is given by a stand-in instead.
    import approxlib.cli as cli

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), kwargs.get("dir"))
    monkeypatch.setattr(cli.tempfile, "mkstemp", read_only)
    code, out, err = run(capsys, "quantize", "--checkpoint", str(r18), "--out",
                         str(tmp_path / "new" / "q.pt"))
    assert code == 2 and err.count("\n") == 1
    assert f"--out {tmp_path / 'new' / 'q.pt'}: cannot write in {tmp_path}" in err
    assert "Read-only file system" in err and not (tmp_path / "new").exists()


def test_a_file_that_may_not_be_read_is_not_called_unwritable(tmp_path, monkeypatch):
    """An unreadable CIFAR batch was told to choose a folder it can write to (attack)."""
    from approxlib import cli
    f = tmp_path / "data_batch_1"
    f.write_bytes(b"x")
    monkeypatch.setattr(cli.os, "access", lambda path, mode: path != str(f))  # root reads all
    line = cli.os_error_line(PermissionError(errno.EACCES, "Permission denied", str(f)))
    assert line == f"Permission denied: {f} (you may not read this file: check its permissions)"
    folder = cli.os_error_line(PermissionError(errno.EACCES, "Permission denied", str(tmp_path)))
    assert folder.endswith("(choose a folder you can write to)")


def test_a_url_stores_local_copies_that_cannot_be_written_name_their_setting(tmp_path,
                                                                           monkeypatch):
    """A read-only home was told to choose another --out or --models-dir, neither of which
    moves a URL store's local copies (a stranger's test, 2026-12-07)."""
    from approxlib import cli
    from approxlib import store
    monkeypatch.setenv("APPROX_CACHE", str(tmp_path / "copies"))
    copies = store.Store("file:///srv/shared/store").root
    assert copies.parent == tmp_path / "copies"
    line = cli.os_error_line(PermissionError(errno.EACCES, "Permission denied", str(copies)))
    assert line.endswith(f"(a URL store's local copies are kept in {tmp_path / 'copies'}: set "
                         "APPROX_CACHE to another folder)")


@pytest.mark.parametrize("code_, text, expect", [
    (errno.ENOSPC, "No space left on device", "free some space"),
    (errno.EDQUOT, "Disk quota exceeded", "free some space"),
    (errno.EACCES, "Permission denied", "choose a folder you can write to"),
])
def test_os_error_during_the_work_is_one_line(capsys, tmp_path, r18, monkeypatch, code_, text,
                                              expect):
    # The disk fills up while the checkpoint is written: one line naming the file, exit 2, and
    # the atomic write leaves nothing behind.
    def full_disk(obj, f, *args, **kwargs):  # the store saves through a file object
        f.write(b"partial")
        raise OSError(code_, text, f.name)
    monkeypatch.setattr(torch, "save", full_disk)
    code, out, err = run(capsys, "quantize", "--checkpoint", str(r18), "--out",
                         str(tmp_path / "q.pt"))
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"approx: error: {text}: {tmp_path}") and expect in err, err
    assert list(tmp_path.iterdir()) == []


def test_interrupt_is_130_and_a_bug_keeps_its_traceback(capsys, tmp_path, r18, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", interrupted)
    code, _, err = run(capsys, "quantize", "--checkpoint", str(r18),
                       "--out", str(tmp_path / "q.pt"))
    assert code == 130 and err == "approx: interrupted\n"

    def bug(*args, **kwargs):
        raise TypeError("a bug")
    monkeypatch.setattr(torch, "save", bug)
    with pytest.raises(TypeError, match="a bug"):  # not swallowed into one line
        main(["quantize", "--checkpoint", str(r18), "--out", str(tmp_path / "q.pt")])
    assert list(tmp_path.iterdir()) == []


def test_os_error_line_names_both_paths_and_stays_one_line():
    from approxlib.cli import os_error_line
    e = OSError(errno.EXDEV, "Invalid cross-device link", "/a/x.tmp", None, "/b/x")
    assert os_error_line(e) == "Invalid cross-device link: /a/x.tmp → /b/x"
    assert os_error_line(FileNotFoundError("bucket/key\nnot found")) == "bucket/key not found"


def test_an_error_line_shows_escape_codes_as_escapes(capsys, tmp_path):
    """A folder's or file's name is not trusted: its escape codes would retitle the window or
    clear the screen; newlines would break the one line."""
    bad = tmp_path / "x\x1b]0;pwn\x07\x1b[2J\nname.pt"
    code, out, err = run(capsys, "evaluate", "--checkpoint", str(bad))
    assert code == 2 and err.count("\n") == 1 and "\x1b" not in err and "\x07" not in err
    assert "x\\x1b]0;pwn\\x07\\x1b[2J name.pt" in err


def test_verify_names_a_report_folder_given_for_the_models_folder(capsys, tmp_path):
    """A new user's `approx verify --models-dir reports/mine` listed every CSV as "recompute
    (no recorded digest)" and exited 1."""
    (tmp_path / "sparsity").mkdir()
    (tmp_path / "sparsity" / "resnet18.csv").write_text("layer,sparsity\n")
    code, out, err = run(capsys, "verify", "--models-dir", str(tmp_path))
    assert code == 2 and out == "" and "is it a report or an image folder?" in err
    assert len(err.splitlines()) == 1
    (tmp_path / "train").mkdir()  # a models folder whose only file lost its digest: listed
    (tmp_path / "train" / "0123.pt").write_bytes(b"x")
    code, out, err = run(capsys, "verify", "--models-dir", str(tmp_path))
    assert code == 1 and "0123.pt" in out
    (tmp_path / "m" / "train").mkdir(parents=True)  # a models folder, empty: nothing to do
    assert run(capsys, "verify", "--models-dir", str(tmp_path / "m"))[0] == 0
    (tmp_path / "m" / "metrics").write_text("x")  # a stray file with a kind's name
    (tmp_path / "m" / "train" / ".ipynb_checkpoints").mkdir()  # a hidden folder in a kind's
    assert run(capsys, "verify", "--models-dir", str(tmp_path / "m"))[0] == 0
    (tmp_path / "notes.txt").write_text("x")  # loose files and unknown folders alone: refused
    code, _, err = run(capsys, "verify", "--models-dir", str(tmp_path / "sparsity"))
    assert code == 2 and "is it a report or an image folder?" in err
    images = tmp_path / "images"  # an image folder: train/ is a kind's name, its cache hidden
    for part in ("train", "test"):
        (images / part / "cat").mkdir(parents=True)
    (images / ".approx-cache").mkdir()
    (images / ".approx-cache" / "train-0123.npz").write_bytes(b"x")
    code, out, err = run(capsys, "verify", "--models-dir", str(images))
    assert code == 2 and out == "" and "is it a report or an image folder?" in err


def test_a_home_folder_of_no_user_is_one_line(capsys, tmp_path):
    """`~nosuchuser/...` made Python raise RuntimeError, a traceback, wherever a path is read."""
    for argv in (["report", "--profile", "~nosuchuser/x.yaml", "--dry-run"],
                 ["report", "--profile", "smoke", "--set", "dataset=imagefolder:~nosuchuser/x",
                  "--dry-run", "--models-dir", str(tmp_path / "m")],
                 ["report", "--profile", "smoke", "--set", "init=~nosuchuser/w.pt", "--dry-run",
                  "--models-dir", str(tmp_path / "m")]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and err.startswith("approx: error: cannot expand '~nosuchuser/"), argv


def test_profiles_prints_every_key_a_run_would_take(tmp_path, capsys):
    """`approx profiles NAME` answers "what exactly does this run with": every key, its value
    after the profile, its base and --set, as YAML that reads back to what a run loads."""
    import yaml
    assert main(["profiles"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("smoke  A first look")
    assert main(["profiles", "smoke", "--set", "epochs=2", "--set", "kd=false"]) == 0
    text = capsys.readouterr().out
    # its name, what --set changed (a planner read smoke's header above other values) and
    # its purpose, as comments
    assert text.startswith("# smoke (with --set epochs=2 --set kd=false): A first look")
    want = load_profile("smoke", {"epochs": 2, "kd": False})
    got = yaml.safe_load(text)
    assert got == {k: v for k, v in want.items() if k not in ("profile", "description")}
    assert got["epochs"] == 2 and got["batch_size"] == 32 and "h_protocols" in got
    # saved, it is a profile file of its own that runs the same
    mine = tmp_path / "mine.yaml"
    mine.write_text(text)
    assert main(["profiles", str(mine)]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == got
    mine.write_text("base: smoke\nlr: 0.02\n")
    assert main(["profiles", str(mine)]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["lr"] == 0.02
    for args, msg in ((["profiles", "--set", "epochs=2"], "--set needs a profile"),
                      (["profiles", "smoke", "--set", "epoch=2"], "unknown parameter 'epoch'"),
                      (["profiles", "nope"], "unknown profile 'nope'")):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, err


def test_ctrl_c_with_helpers_is_one_line(tmp_path, data_root):
    """^C reaches the whole process group: a `--workers 2` helper printed its KeyboardInterrupt
    traceback above the run's one line (an interrupting stranger, 2026-12-07)."""
    import signal
    proc = subprocess.Popen(
        [sys.executable, "-m", "approxlib", "report", "--profile", "smoke", "--sections", "B",
         "--stages-only", "--quiet", "--workers", "2", "--threads", "1", "--models-dir",
         str(tmp_path / "m"), "--data-dir", str(data_root), "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "APPROX_OFFLINE": "1"},
        # as a terminal starts it: a background job (CI's, maybe) starts with ^C ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    while time.time() < deadline and proc.poll() is None and not (
            children.exists() and children.read_text().split()):
        time.sleep(0.2)  # until a helper (or the spawn machinery) has started
    time.sleep(3)  # inside its imports or its work
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and err == "approx: interrupted\n", err


def test_train_says_a_missing_cuda_before_a_missing_dataset(tmp_path, capsys, monkeypatch):
    """A GPU user trying `paper` on a CPU machine was told CIFAR-10 was missing, fixed that,
    and only then met the missing CUDA (2026-12-08); and nothing is left behind."""
    from approxlib import train as T
    if T.device_type("auto") == "cuda":
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("APPROX_OFFLINE", "1")
    code = main(["train", "--profile", "paper", "--model", "resnet18", "--out",
                 str(tmp_path / "x.pt"), "--set", "device=cuda", "--data-dir",
                 str(tmp_path / "data"), "--models-dir", str(tmp_path / "m")])
    assert code == 2 and "no CUDA device is available" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []
