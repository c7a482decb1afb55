"""Control kinds: one registered class each; the pipeline, the analysis and the names ask the
kind what it is, so a new control is a class, not a name tested in five modules."""
import pandas as pd
import pytest

from approxlib import analysis, controls, names, pipeline, sections
from approxlib.config import load_profile
from approxlib.sections import Variant


def test_each_kind_is_registered_once_under_the_key_results_csv_spells():
    assert list(controls.CONTROLS) == ["none", "equal-compute", "scratch-e", "scratch-b",
                                       "qat-float"]
    assert controls.scratch() == ("scratch-e", "scratch-b")
    assert [k for k, c in controls.CONTROLS.items() if c.candidate] == ["none", "scratch-e",
                                                                         "scratch-b"]
    assert [k for k, c in controls.CONTROLS.items() if c.reference] == ["equal-compute"]
    assert controls.of(float("nan")) is controls.NONE  # a row from before the column
    assert controls.label("scratch-b") == "Scratch-B" and controls.label("odd") == "odd"
    with pytest.raises(KeyError):
        controls.of("scratch-c")


def test_each_kind_names_its_variants():
    v = Variant("G", "resnet18", "fashion-mnist", 0.5, prune="channel-l1")
    label = {c: Variant(**{**v.__dict__, "control": c}).label for c in controls.CONTROLS}
    assert label == {
        "none": "resnet18 fashion-mnist pruned 50% channels",
        "equal-compute": "resnet18 fashion-mnist pruned 50% channels dense control of channel-l1",
        "scratch-e": "resnet18 fashion-mnist pruned 50% channels trained from scratch (Scratch-E)",
        "scratch-b": "resnet18 fashion-mnist pruned 50% channels trained from scratch (Scratch-B)",
        "qat-float": "resnet18 fashion-mnist pruned 50% channels fine-tuned as QAT, in float32"}


@pytest.fixture
def scratch_x(monkeypatch):
    """A control the package does not have: the pruned shape trained for twice the FLOPs."""
    kind = controls.ScratchControl("scratch-x", "Scratch-X", "flops")
    monkeypatch.setitem(controls.CONTROLS, kind.key, kind)
    return kind


def test_a_new_scratch_control_is_planned_priced_and_named_without_a_name_test(scratch_x):
    p = load_profile("smoke")
    v = Variant("G", "resnet18", "fashion-mnist", 0.5, prune="channel-l1", control="scratch-x")
    stages = pipeline.stages(v, p)
    assert [s.kind for s in stages] == ["train", "channel", "scratch", "evaluate"]
    assert stages[2].step.scratch.budget == "flops"
    assert v.label.endswith("trained from scratch (Scratch-X)")
    row = pd.Series({"model": "resnet18", "prune_ratio": 0.5, "prune_method": "channel-l1",
                     "quant": "none", "runtime": "pytorch", "codec": "none",
                     "control": "scratch-x"})
    assert names.variant_label(row) == "ResNet-18 Scratch-X of channels −50%"
    assert analysis.variant_name(row) == "channels −50% Scratch-X fp32 eager"
    planned = [v for v in sections.plan(p, ["G"]) if v.control == "scratch-x"]
    assert {(v.model, v.quant, v.runtime) for v in planned} == {
        (m, q, r) for m in ("resnet18", "mobilenetv2")
        for q, r in (("none", "pytorch"), ("none", "onnxruntime"), ("int8-static", "onnxruntime"))}
    rows = pd.DataFrame({"model": "resnet18", "prune_ratio": 0.5, "quant": "none",
                         "runtime": "pytorch", "kd": False, "control": ["none", "scratch-x"],
                         "variant_id": ["fine-tuned", "scratch"], "accuracy": [0.90, 0.88]})
    pairs = analysis.recovery_pairs(rows, 0.5)
    assert pairs[["kind", "comparison", "a", "b"]].values.tolist() == [
        ["scratch", "Scratch-X vs fine-tuned channels", "fine-tuned", "scratch"]]
    assert pairs["diff"].iloc[0] == pytest.approx(-0.02)


def test_what_the_analysis_counts_follows_the_kind(scratch_x):
    d = pd.DataFrame({"control": ["none", "equal-compute", "scratch-x", "qat-float", None]})
    assert analysis.speed_candidates(d).index.tolist() == [0, 2, 4]
    assert analysis.uncontrolled(d).tolist() == [True, False, False, False, True]
    assert analysis._scratch(d).tolist() == [False, False, True, False, False]
