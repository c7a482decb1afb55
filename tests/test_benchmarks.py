"""The scripts in benchmarks/, run as the README gives them, answer bad input as `approx` does:
one line on stderr and exit status 2 (a stranger met tracebacks from six of them, 2026-12-07)."""
import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch

from approxlib import cli
from approxlib.config import ConfigError

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(tmp: Path) -> dict:
    """Inputs a user may hand a script by mistake."""
    (tmp / "folder").mkdir()
    (tmp / "empty.csv").write_text("")
    pd.DataFrame({"section": ["A"], "model": ["resnet18"]}).to_csv(tmp / "old.csv", index=False)
    pd.DataFrame({"section": ["A"], "model": ["resnet18"], "val_lo": [0.5],
                  "codec": ["none"], "artifact": ["x.pt"], "control": ["none"],
                  "prune_ratio": [0.0]}).to_csv(tmp / "a_only.csv", index=False)
    torch.save({"x": torch.zeros(2)}, tmp / "model.pt")
    return {k: str(tmp / v) for k, v in [("folder", "folder"), ("empty", "empty.csv"),
                                         ("old", "old.csv"), ("a_only", "a_only.csv"),
                                         ("pt", "model.pt"), ("none", "nothing.csv")]}


CASES = [
    ("targets", ["--results", "{none}"], "nothing.csv not found"),
    ("targets", ["--results", "{folder}"], "folder is a folder, not a file"),
    ("targets", ["--results", "{empty}"], "empty.csv is not a results.csv"),
    ("targets", ["--results", "{old}"], "has no val_lo column"),
    ("targets", ["--results", "{a_only}"], "no rows of sections F and G: nothing to check"),
    ("latency", ["--results", "{a_only}"], "has no section G rows"),
    ("latency", ["--input", "1,28", "--artifact", "{pt}"], "--input 1,28: give channels"),
    ("latency", ["--rounds", "0"], "--rounds must be at least 1"),
    ("latency", ["--artifact", "{none}"], "checkpoint not found"),
    ("entropy", ["{pt}"], "not an .apx file"),
    ("entropy", ["{a_only}"], "lists no Huffman-coded .apx file"),
    ("entropy", ["{folder}"], "is a folder"),
    ("stage_summary", ["--models-dir", "{none}"], "nothing.csv not found"),
    ("stage_summary", ["--models-dir", "{empty}"], "is not a folder"),
    ("stage_summary", ["--profile", "nope"], "unknown profile"),
    ("recovery", ["--models-dir", "{empty}", "--profile", "smoke"], "--models-dir"),
    ("convgrad", ["--steps", "0"], "--steps must be at least 1"),
    ("train_throughput", ["--epochs", "0"], "--epochs and --ref-epochs must be at least 1"),
]


@pytest.mark.parametrize("name,argv,expected", CASES)
def test_bad_input_is_one_line_and_exit_2(name, argv, expected, tmp_path, capsys):
    files = _files(tmp_path)
    main = script(name).main
    code = cli.guarded(f"{name}.py", lambda: main([a.format(**files) for a in argv]))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith(f"{name}.py: error: ") and expected in err


def test_gpu_training_without_a_gpu_is_one_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    main = script("gpu_train").main
    assert cli.guarded("gpu_train.py", lambda: main([])) == 2
    assert capsys.readouterr().err == "gpu_train.py: error: needs a CUDA GPU (torch sees none): " \
                                      "it measures GPU training\n"


def test_targets_check_section_g_at_the_profiles_channel_ratio():
    """The main channel ratio is the one section G's QAT and scratch controls ran at, not a
    fixed 0.5; a ratio the rows lack is named with those they have."""
    pick = script("targets").main_channel_ratio
    rows = pd.DataFrame({"section": ["G"] * 4, "prune_ratio": [0.0, 0.3, 0.7, 0.7],
                         "quant": ["none", "none", "none", "int8-qat"],
                         "control": ["none", "none", "scratch-e", "none"]})
    assert pick(rows, None) == 0.7 and pick(rows, 0.3) == 0.3
    with pytest.raises(ConfigError, match=r"--channel-ratio 0.5: section G's rows have channel "
                                          r"ratios 0.3, 0.7"):
        pick(rows, 0.5)
    plain = rows.assign(quant="none", control="none")
    with pytest.raises(ConfigError, match="name the profile's channel_ratio"):
        pick(plain, None)  # two ratios and nothing to tell the main one by
    assert pick(plain[plain.prune_ratio != 0.3], None) == 0.7
    assert pick(rows[rows.prune_ratio == 0], None) is None  # no channel pruning: no such line
