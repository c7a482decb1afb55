"""Section specs: registered once, each with a notebook; a profile's `models` reaches every
section, so a torchvision model the study never named is added by profile entries alone."""
import pytest

from approxlib import pipeline
from approxlib import publish
from approxlib.config import ConfigError, load_profile
from approxlib.sections import SECTIONS, Spec, register


def test_every_spec_has_a_notebook_and_registers_once():
    assert set(publish.notebook_paths(list(SECTIONS))) == set(SECTIONS)
    with pytest.raises(ValueError, match="registered twice"):
        register(Spec("A", "again", ("resnet18",), lambda p, s, m, d: []))


def test_a_third_model_reaches_every_section_through_the_profile():
    three = ["resnet18", "mobilenetv2", "mobilenet_v3_small"]
    p = load_profile("smoke", {"models": three})
    variants = pipeline.plan(p, list(SECTIONS))
    for letter in SECTIONS:
        shown = {v.model for v in variants if v.section == letter}
        assert shown == set(three), letter
    for v in variants:  # every stage keyed and labelled; its per-model settings from `default`
        pipeline.stages(v, p)
    assert SECTIONS["E"].heading(three) == "ResNet-18 vs MobileNetV2 vs mobilenet_v3_small"
    # a section's title names the dataset it ran on (D's said "the 100-class dataset" on
    # Fashion-MNIST), the original's when none is given
    assert SECTIONS["D"].heading(["resnet18"], "fashion-mnist") == (
        "ResNet-18 on Fashion-MNIST: baseline vs pruned")
    assert "CIFAR-100" in SECTIONS["D"].heading(["resnet18"])
    default = load_profile("smoke")  # the built-in study keeps its own models per section
    assert {v.model for v in pipeline.plan(default, ["A"])} == {"mobilenetv2"}


def test_bad_models_are_one_line():
    with pytest.raises(ConfigError, match="unknown model 'resnet19'"):
        load_profile("smoke", {"models": ["resnet19"]})
    with pytest.raises(ConfigError, match="models must name at least one model"):
        load_profile("smoke", {"models": []})
    p = load_profile("smoke", {"models": ["vit_b_16"]})
    with pytest.raises(ConfigError, match="vit_b_16 cannot take 28×28 images"):
        pipeline.stages(pipeline.plan(p, ["B"])[0], p)  # before anything trains (dry runs say it too)


def test_scratch_controls_are_planned_at_each_of_scratch_ratios():
    """Section G trains the pruned shape from scratch at `scratch_ratios` (null: channel_ratio
    alone), each a ratio it also fine-tunes, so every control has its fine-tuned model."""
    def scratch_at(p):
        return sorted({v.prune_ratio for v in pipeline.plan(p, ["G"])
                       if v.control.startswith("scratch")})
    assert scratch_at(load_profile("smoke")) == [0.5]
    quick = load_profile("quick")
    planned = [v for v in pipeline.plan(quick, ["G"]) if v.control.startswith("scratch")]
    assert sorted({v.prune_ratio for v in planned}) == sorted(quick["scratch_ratios"])
    assert len(planned) == 2 * 2 * 3 * len(quick["scratch_ratios"])  # models × E/B × 3 forms
    # trimming the channel curve trims the scratch controls with it (the README's recipe)
    assert scratch_at(load_profile("quick", {"channel_ratios": []})) == [0.5]
    assert scratch_at(load_profile("quick", {"scratch": False, "channel_ratios": []})) == []
    with pytest.raises(ConfigError, match=r"scratch_ratios must name .*\(0\.5, 0\.7\), got \[0\.3\]"):
        load_profile("smoke", {"scratch_ratios": [0.3]})
    with pytest.raises(ConfigError, match="each of scratch_ratios must be in"):
        load_profile("smoke", {"scratch_ratios": [1.5]})
