"""An executed notebook is reused only while everything it reads is unchanged, and only intact."""
import nbformat
import pandas as pd
import pytest

from approxlib import accounting
from approxlib import executed
from approxlib import store as S
from approxlib.config import load_profile


@pytest.fixture
def section(tmp_path):
    """Section B of smoke: a notebook, two sections' rows, a cache with one entry B reads."""
    nb = tmp_path / "B_x.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")]), nb)
    out = tmp_path / "out"
    out.mkdir()
    pd.DataFrame({"section": ["B", "C"], "accuracy": [0.9, 0.8]}).to_csv(out / "results.csv",
                                                                       index=False)
    p = load_profile("smoke")
    key = accounting.entries(p, ["B"])[0]["key"]
    cache = S.Store(tmp_path / "models")
    (cache.root / "train").mkdir(parents=True)
    for name in (key, "0" * 16):  # an entry section B reads, and one it does not
        (cache.root / "train" / f"{name}.pt").write_bytes(b"0123456789")
        (cache.root / "train" / f"{name}.pt.sha256").write_text("ab" * 32 + " 10\n")
    params = {"profile": "smoke", "overrides": {}, "out": str(out)}
    return nb, "B", params, p, out, cache, key


def digest(section, **change):
    nb, letter, params, p, out, cache, _ = section
    args = {"notebook": nb, "letter": letter, "params": params, "p": p, "out": out,
            "cache": cache, **change}
    return executed.inputs_digest(**args)


def test_the_digest_follows_what_the_section_reads(section):
    nb, letter, params, p, out, cache, key = section
    before = digest(section)
    assert digest(section) == before  # nothing changed: the same digest
    # another section's rows and a cache entry the section does not read change nothing
    df = pd.read_csv(out / "results.csv")
    df.loc[df.section == "C", "accuracy"] = 0.1
    df.to_csv(out / "results.csv", index=False)
    (cache.root / "train" / ("0" * 16 + ".pt.sha256")).write_text("cd" * 32 + " 10\n")
    (cache.root / "train" / ("1" * 16 + ".pt")).write_bytes(b"new")
    assert digest(section) == before
    # each thing it does read changes it
    changed = {digest(section, params={**params, "out": "/elsewhere"}),
               digest(section, p=load_profile("smoke", {"seed": 1})),
               digest(section, letter="C")}
    df.loc[df.section == "B", "accuracy"] = 0.91
    df.to_csv(out / "results.csv", index=False)
    changed.add(digest(section))
    (cache.root / "train" / f"{key}.pt.sha256").write_text("ef" * 32 + " 10\n")  # recomputed
    changed.add(digest(section))
    (cache.root / "train" / f"{key}.pt.sha256").unlink()  # set aside by a run sharing the store
    changed.add(digest(section))
    nb.write_text(nb.read_text().replace("1 + 1", "1 + 2"))
    changed.add(digest(section))
    assert before not in changed and len(changed) == 7


def test_a_stamped_notebook_is_reused_only_intact_and_for_its_inputs(section, tmp_path):
    nb = section[0]
    ran = tmp_path / "ran.ipynb"
    node = nbformat.read(nb, as_version=4)
    node.cells[0].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "2"},
                                                    execution_count=1)]
    nbformat.write(node, ran)
    out = tmp_path / "out"
    assert not executed.reusable(ran, "d1", out)  # executed without a stamp: run again
    executed.stamp(ran, "d1", executed.written_since(out, 0.0))
    assert executed.reusable(ran, "d1", out) and not executed.reusable(ran, "d2", out)
    edited = nbformat.read(ran, as_version=4)
    edited.cells[0].outputs[0]["data"]["text/plain"] = "3"  # an output changed after the run
    nbformat.write(edited, ran)
    assert not executed.reusable(ran, "d1", out)
    for damaged in (b"", b"{not json", b"[]", b'{"cells": 1}', b"\xff\xfe"):
        ran.write_bytes(damaged)
        assert not executed.reusable(ran, "d1", out)
    assert not executed.reusable(tmp_path / "missing.ipynb", "d1", out)


def test_a_notebook_whose_output_files_are_gone_is_executed_again(section, tmp_path):
    out = section[4]
    since = 0.0
    (out / "notebooks").mkdir()
    (out / "notebooks" / "B_x.ipynb").write_text("{}")  # the executed notebooks: not outputs
    (out / ".results.csv.lock").write_text("")  # hidden: not an output
    (out / "layers.csv").write_text("layer\n")
    written = executed.written_since(out, since)
    assert written == ["layers.csv", "results.csv"]
    assert executed.written_since(out, (out / "layers.csv").stat().st_mtime + 1) == []
    ran = tmp_path / "ran.ipynb"
    nbformat.write(nbformat.read(section[0], as_version=4), ran)
    executed.stamp(ran, "d1", written)
    assert executed.reusable(ran, "d1", out)
    (out / "layers.csv").unlink()
    assert not executed.reusable(ran, "d1", out)


def test_a_malformed_stamp_is_not_trusted(section, tmp_path):
    ran = tmp_path / "ran.ipynb"
    node = nbformat.read(section[0], as_version=4)
    for meta in ("d1", ["d1"], {"version": executed.VERSION, "inputs": "d1"}, None):
        node.metadata[executed.META] = meta
        nbformat.write(node, ran)
        assert not executed.reusable(ran, "d1", tmp_path)
