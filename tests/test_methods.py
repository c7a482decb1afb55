"""Pruning methods: one registered entry each owns how the report writes it; the code that
prunes (`prune.score_and_spread`, `pipeline.PRUNINGS`) and the code that writes labels read the
entry, so no method's name is tested in the library."""
import dataclasses
from types import SimpleNamespace

import pandas as pd

from approxlib import analysis, config, methods, names, pipeline, prune, report
from approxlib.sections import Variant


def row(**kw):
    base = dict(model="resnet18", prune_ratio=0.5, quant="none", prune_method="l1-unstructured",
                control="none", runtime="pytorch", codec="none", kd=False)
    return SimpleNamespace(**{**base, **kw})


def test_every_method_that_prunes_has_an_entry_and_the_reference_is_the_originals():
    assert set(methods.one_shot()) == {"l1-unstructured", "random-unstructured", "l1-layerwise",
                                       "l1-sensitivity"}
    assert set(pipeline.PRUNINGS) <= set(methods.METHODS)
    assert not set(pipeline.PRUNINGS) & set(methods.one_shot())
    assert all(p.method.key == k for k, p in pipeline.PRUNINGS.items())
    assert methods.REFERENCE == "l1-unstructured" == config.PruneConfig(0.5).method
    assert prune.score_and_spread(methods.REFERENCE) == ("l1", "global")


def test_each_shipped_method_is_written_from_its_entry():
    v = Variant("G", "resnet18", "fashion-mnist", 0.5, prune=methods.CHANNEL.key)
    assert v.label == "resnet18 fashion-mnist pruned 50% channels"
    assert pipeline.layer_csv_name(v) == "resnet18_fashion-mnist_p50_channels_none.csv"
    assert report.pruned_words(row(prune_method=methods.CHANNEL.key)) == "50% channels"
    reference = Variant("B", "resnet18", "fashion-mnist", 0.7)
    assert pipeline.layer_csv_name(reference) == "resnet18_fashion-mnist_p70_none.csv"
    assert report.pruned_words(row()) == "50% one-shot"
    assert pipeline.layer_csv_name(dataclasses.replace(reference, prune="l1-layerwise")) == \
        "resnet18_fashion-mnist_p70_l1-layerwise_none.csv"
    assert report.pruned_words(row(prune_method="l1-layerwise")) == "50% l1-layerwise"
    # two dense controls of one length, told apart by their learning rate (a review found F's
    # and B's named alike); rows written before the column read as before
    control = dict(prune_method="none", prune_ratio=0.0, control="equal-compute",
                   finetune_epochs=1)
    assert report.pruned_words(row(**control, control_lr=0.02)) == \
        "dense control (+1 epoch at lr 0.02)"
    assert report.pruned_words(row(**control)) == "dense control (+1 epoch)"
    assert report.pruned_words(row(**control, control_lr=float("nan"))) == \
        "dense control (+1 epoch)"
    p = config.load_profile("smoke")  # smoke: finetune_lr 0.01, dc_lr 0.02
    lrs = {(v.section, pipeline.control_lr(v, p)) for v in pipeline.plan(p, ["B", "F"])
           if v.is_dense_control and not v.kd}
    assert lrs == {("B", 0.01), ("F", 0.02)}
    assert methods.of("l1-sensitivity").color == "#55A868"


def test_a_new_entry_renames_a_method_everywhere(monkeypatch):
    renamed = dataclasses.replace(methods.METHODS["random-unstructured"], label="random (uniform)",
                                  short="random", adverb=" at random", suffix="_rnd")
    monkeypatch.setitem(methods.METHODS, renamed.key, renamed)
    v = Variant("H", "resnet18", "fashion-mnist", 0.5, prune=renamed.key)
    assert v.label == "resnet18 fashion-mnist pruned 50% at random"
    assert pipeline.layer_csv_name(v) == "resnet18_fashion-mnist_p50_rnd_none.csv"
    assert names.variant_label(row(prune_method=renamed.key)) == \
        "ResNet-18 pruned 50% (random (uniform))"
    assert names.method(renamed.key) == "random (uniform)"
    assert report.pruned_words(row(prune_method=renamed.key, kd=True)) == "50% random + KD"


def test_section_gs_names_read_the_channel_entry(monkeypatch):
    renamed = dataclasses.replace(methods.CHANNEL, words="{ratio} of channels removed")
    monkeypatch.setitem(methods.METHODS, renamed.key, renamed)
    r = pd.Series(dict(row(prune_method=renamed.key, quant="int8-static",
                           runtime="onnxruntime").__dict__))
    assert analysis.variant_name(r) == "50% of channels removed INT8 ORT"
    assert names.variant_label(r) == \
        "ResNet-18 50% of channels removed + static INT8 (ONNX Runtime)"


def test_a_method_from_a_new_score_needs_no_entry(monkeypatch):
    monkeypatch.setitem(prune.SCORES, "largest", prune.SCORES["l1"])
    key = "largest-layerwise"
    config.PruneConfig(0.5, key)  # the profile accepts it
    v = Variant("H", "resnet18", "fashion-mnist", 0.5, prune=key)
    # named in the label, as every method but the reference is: four methods' evaluations
    # were listed alike in a dry run (a contributor, 2026-12-07)
    assert v.label == f"resnet18 fashion-mnist pruned 50% ({key})"
    assert Variant("H", "resnet18", "fashion-mnist", 0.5).label == \
        "resnet18 fashion-mnist pruned 50%"
    assert Variant("H", "resnet18", "fashion-mnist", 0.5, prune="random-unstructured").label \
        == "resnet18 fashion-mnist pruned 50% (random)"
    assert pipeline.layer_csv_name(v) == f"resnet18_fashion-mnist_p50_{key}_none.csv"
    assert names.variant_label(row(prune_method=key)) == f"ResNet-18 pruned 50% ({key})"
    assert report.pruned_words(row(prune_method=key)) == f"50% {key}"
    assert methods.of(key).color is None  # the figure gives it a colour of its own


def test_the_summary_tells_dense_controls_apart_by_their_fine_tuning():
    """A section's summary lists a model's dense controls of different lengths (section F's
    6 epochs, G's 4 and QAT's float twin): each cell says how long it fine-tuned."""
    dense = {"prune_ratio": 0.0, "control": "equal-compute"}
    assert report.pruned_words(row(**dense, finetune_epochs=6)) == "dense control (+6 epochs)"
    assert report.pruned_words(row(**dense, finetune_epochs=1, kd=True)) == \
        "dense control (+1 epoch) + KD"
    assert report.pruned_words(row(prune_ratio=0.0, control="qat-float", finetune_epochs=5)) \
        == "QAT's float twin (+5 epochs)"
    assert report.pruned_words(row(prune_method=methods.CHANNEL.key, control="scratch-b",
                                   finetune_epochs=0)) == "50% channels, Scratch-B"


def test_the_summary_shows_the_latency_of_the_first_section_it_lists():
    """A report of section C over a results.csv an earlier run left B's rows in: the row of the
    shared baseline lists this report's sections only, and its latency is the first one's
    (it listed B, whose 6.45 ms it did not show, beside C's 6.12; a notebook user, 2026-12-07)."""
    import pandas as pd
    from approxlib import publish
    base = dict(model="resnet18", dataset="fashion-mnist", prune_method="none", prune_ratio=0.0,
                quant="none", codec="none", qp=float("nan"), runtime="pytorch",
                control="none", kd=False, artifact_key="k0", seed=0, accuracy=0.8,
                size_bytes=44_000_000, compression_ratio=1.0, sparsity=0.0,
                finetune_epochs=0, epochs=3, init=None, protocol="profile")
    results = pd.DataFrame([{**base, "section": "B", "latency_ms": 6.45},
                            {**base, "section": "C", "latency_ms": 6.12},
                            {**base, "section": "D", "latency_ms": 6.30}])
    html = publish.summary_table(results, ["C", "D"])
    assert "<td>C,D</td>" in html and "<td>6.12</td>" in html
    assert "B," not in html and "6.45" not in html and "6.3" not in html


def test_a_report_of_section_h_alone_has_no_empty_summary_or_findings():
    """`--sections H` opened with "Every distinct model variant of section  (" over an empty
    table (a contributor adding a section, 2026-12-08); with B too, the summary covers B and
    says H's runs are in H's own tables."""
    from approxlib import publish
    base = dict(model="resnet18", dataset="fashion-mnist", prune_method="none", prune_ratio=0.0,
                quant="none", codec="none", qp=float("nan"), runtime="pytorch",
                control="none", kd=False, artifact_key="k0", seed=0, accuracy=0.8,
                size_bytes=44_000_000, compression_ratio=1.0, sparsity=0.0, latency_ms=6.0,
                finetune_epochs=0, epochs=3, init=None, protocol="profile", test_images=1000)
    results = pd.DataFrame([{**base, "section": "B"}, {**base, "section": "H"}])
    assert publish.summary_text(results, ["H"]) is None
    text = publish.summary_text(results, ["B", "H"])
    assert text.startswith("## Summary\n\nEvery distinct model variant of section B (top-1")
    assert "; the runs of section H are summarized in its own tables)." in text
    p = config.load_profile("smoke")
    assert publish.findings_text(results, ["H"], p, None) is None
