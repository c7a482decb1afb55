"""The committed notebooks, and bad parameters passed through papermill."""
import json

import nbformat
import papermill as pm
import pytest

from approxlib import pipeline
from approxlib.cli import main
from approxlib.config import ConfigError
from approxlib.report import NOTEBOOKS
from approxlib.sections import SECTIONS

NBS = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_one_notebook_per_section_letter_first():
    assert [p.name[0] for p in NBS] == sorted(SECTIONS)  # one per registered section
    assert all(p.name[1] == "_" for p in NBS)


@pytest.mark.parametrize("path", NBS, ids=lambda p: p.name)
def test_committed_without_outputs_and_parameterized(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and code[0] is tagged[0]
    assert "profile = " in "".join(tagged[0]["source"])
    # thin: one import, every other code cell is a single call
    assert sum("import" in "".join(c["source"]) for c in code) == 1
    assert all(len("".join(c["source"]).strip().splitlines()) == 1 for c in code[2:])
    # the pipeline runs in run_section; the section class only formats what it returned
    setup = "".join(code[1]["source"])
    assert f'run = run_section("{path.name[0]}", ' in setup and "Section(run)" in setup


def cli_message(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    return capsys.readouterr().err.removeprefix("approx: error: ").strip()


@pytest.mark.parametrize("params, cli_args", [
    ({"model": "vgg"}, ["train", "--profile", "smoke", "--model", "vgg", "--out", "x.pt"]),
    ({"ratio": 1.5}, ["report", "--profile", "smoke", "--set", "ratio=1.5"]),
    ({"ratio": [0.5]}, ["report", "--profile", "smoke", "--set", "ratio=[0.5]"]),
])
def test_bad_parameters_fail_in_the_first_code_cell(tmp_path, capsys, params, cli_args):
    out = tmp_path / "out.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(NOTEBOOKS / "A_mobilenetv2_pruning.ipynb"), str(out),
                            parameters={"profile": "smoke", "models_dir": str(tmp_path / "m"),
                                        **params}, kernel_name="python3", progress_bar=False)
    assert e.value.ename == "ConfigError"
    assert e.value.evalue == cli_message(capsys, *cli_args)  # the CLI's words exactly
    nb = nbformat.read(out, as_version=4)
    failed = [c for c in nb.cells if c.cell_type == "code" and
              any(o.get("output_type") == "error" for o in c.outputs)]
    assert len(failed) == 1 and failed[0].source.startswith("from approxlib.report import Section")
    # one line, not the frames into the library (papermill printed 70-100 lines)
    error = next(o for o in failed[0].outputs if o.get("output_type") == "error")
    assert error["traceback"] == [f"ConfigError: {e.value.evalue}"]
    assert not (tmp_path / "m").exists()  # failed before any work


def test_paths_and_text_a_notebook_is_given_are_checked_before_any_work(tmp_path):
    """A papermill user's walkthrough (2026-12-07): `-p models_dir ''` made the repository root
    a store; `-p out FILE` failed after every stage had run; '{epochs: 2' was "not a dict"."""
    from approxlib import report
    from approxlib.config import ConfigError
    (tmp_path / "afile").write_text("x")
    for kw, match in [({"models_dir": ""}, r"^models_dir is empty \(an unset variable\?\)"),
                      ({"out": " "}, r"^out is empty"),
                      ({"out": str(tmp_path / "afile")}, r"^out \S+afile: \S+afile is a file, "
                                                         r"not a folder"),
                      ({"models_dir": str(tmp_path / "afile")}, r"^models_dir \S+afile: "),
                      ({"data_dir": str(tmp_path / "afile" / "d")}, r"^data_dir \S+afile/d: "
                                                                    r"\S+afile is a file"),
                      ({"ratios": "[0.5"}, r"^ratios: '\[0.5' is not valid YAML"),
                      ({"overrides": "{epochs: 2"}, r"^overrides: '\{epochs: 2' is not valid")]:
        with pytest.raises(ConfigError, match=match):
            report.run_section("C", "smoke", **kw)
    assert ConfigError("a\x1bb\nc")._render_traceback_() == ["ConfigError: a\\x1bb c"]


def test_list_parameters_accept_papermill_text(tmp_path, smoke_run, store_copy):
    """The README's command: papermill ... -p ratios '[0, 0.5, 0.9]' passes the list as text.
    (It trains a new ratio: into a copy of the shared store, which other workers read.)"""
    data_root, store = smoke_run[5], store_copy
    out = tmp_path / "c.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "C_resnet18_pruning_sweep.ipynb"), str(out),
                        parameters={"profile": "smoke", "ratios": "[0, 0.5, 0.9]",
                                    "models_dir": str(store.root), "data_dir": str(data_root),
                                    "out": str(tmp_path / "rep")},
                        kernel_name="python3", progress_bar=False)
    import pandas as pd
    df = pd.read_csv(tmp_path / "rep" / "results.csv")
    assert sorted(df[df.control == "none"].prune_ratio) == [0.0, 0.5, 0.9]
    assert df.loc[df.prune_ratio == 0.9, "sparsity"].item() == pytest.approx(0.9, abs=1e-6)


def test_seeds_average_a_section_and_pair_its_differences(tmp_path, smoke_run, store_copy):
    """`seeds: [0, 1]` repeats section A's variants per seed; its table shows the mean over seeds
    with a t-interval, and the findings pair pruned, control and baseline by seed."""
    data_root, store = smoke_run[5], store_copy
    out = tmp_path / "a.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "A_mobilenetv2_pruning.ipynb"), str(out),
                        parameters={"profile": "smoke", "overrides": "{seeds: [0, 1]}",
                                    "models_dir": str(store.root), "data_dir": str(data_root),
                                    "out": str(tmp_path / "rep")},
                        kernel_name="python3", progress_bar=False)
    import nbformat
    import pandas as pd
    text = "\n".join(str(o.get("data", {}).get("text/markdown", "")) + str(
        o.get("data", {}).get("text/html", "")) for c in nbformat.read(out, 4).cells
        if c.cell_type == "code" for o in c.outputs)
    assert "top-1 mean of 2 seeds (%)" in text and "paired by seed" in text
    line = next(x for x in text.splitlines() if "pruned − control" in x)
    assert all(f"{d} " in line for d in ("pruned − baseline", "control − baseline")), line
    assert "nan" not in line and line.count(" noise") == 3, line
    df = pd.read_csv(tmp_path / "rep" / "results.csv")
    assert sorted(df.seed.unique()) == [0, 1] and len(df) == 2 * 3  # baseline, pruned, control


def test_a_notebook_says_what_it_will_compute_and_makes_it_on_its_threads(tmp_path, capsys,
                                                                         store_copy):
    """A notebook run by hand computed for minutes without a word, and a mistyped models_dir
    trained from scratch in silence (2026-12-07): one line before the first entry it computes,
    on the `threads` it was given, torch's own setting left as it was; nothing where all is
    there."""
    from approxlib import report
    from approxlib import store as S
    from approxlib.config import load_profile
    import torch
    report.run_section("A", profile="smoke", models_dir=str(store_copy.root), out=str(tmp_path))
    assert capsys.readouterr().out == ""
    key = next(t["key"] for t in pipeline.dry_run(load_profile("smoke"), ["A"], store_copy)
               if t["stage"] == "evaluate")
    for f in store_copy.root.glob(f"metrics/{key}.*"):
        f.unlink()
    before = torch.get_num_threads()
    report.run_section("A", profile="smoke", models_dir=str(store_copy.root), out=str(tmp_path),
                       threads=before + 1)
    out = capsys.readouterr().out
    assert out.startswith(f"section A: evaluate {key} is not in {store_copy.root}; computing "
                          f"it and whatever else is missing now, on {before + 1} torch "
                          f"threads"), out
    assert torch.get_num_threads() == before
    assert S.Store(store_copy.root).peek_json("timing", key)["threads"] == before + 1
    report._announcer("A", S.Store(tmp_path / "typo"))("train", "k")
    assert "is not in " + str(tmp_path / "typo") + " (an empty models folder: a new one, or " \
        "a mistyped models_dir?)" in capsys.readouterr().out
    for bad in (0, "2", True, 2.0):
        with pytest.raises(ConfigError, match=r"^threads must be a whole number from 1 to"):
            report.run_section("A", profile="smoke", threads=bad,
                               models_dir=str(tmp_path / "m"))
