"""Display names: one module, known values, and a fallback for names it does not list."""
from types import SimpleNamespace

from approxlib import names


def row(**kw):
    base = dict(model="resnet18", prune_ratio=0.0, quant="none", prune_method="none",
                control="none", runtime="pytorch", codec="none")
    return SimpleNamespace(**{**base, **kw})


def test_rows_are_named_as_a_reader_names_them():
    assert names.variant_label(row()) == "ResNet-18 baseline"
    assert names.variant_label(row(prune_ratio=0.5, prune_method="l1-unstructured",
                                   quant="int8-static")) == "ResNet-18 pruned 50% + static INT8"
    assert names.variant_label(row(prune_ratio=0.5, prune_method="gradual-l1", quant="kmeans",
                                   codec="huffman")) == \
        "ResNet-18 pruned 50% (gradual) + k-means + Huffman .apx"
    assert names.variant_label(row(model="mobilenetv2", prune_ratio=0.25,
                                   prune_method="channel-l1", runtime="onnxruntime")) == \
        "MobileNetV2 channels −25% (ONNX Runtime)"
    assert names.variant_label(row(control="equal-compute")) == "ResNet-18 dense control"
    assert names.variant_label(row(prune_ratio=0.7, prune_method="random-unstructured",
                                   quant="int8-dynamic")) == "ResNet-18 pruned 70% (random) + INT8"


def test_a_name_not_listed_is_shown_as_spelled():
    assert names.model("efficientnet_b0") == "efficientnet_b0"
    assert names.dataset("imagefolder") == "imagefolder"
    assert names.variant_label(row(model="vit_b_16")) == "vit_b_16 baseline"
    assert names.variant_label(row(prune_ratio=0.5, prune_method="largest-layerwise")) == \
        "ResNet-18 pruned 50% (largest-layerwise)"


def test_the_short_words_a_report_uses_are_spelled_out_once():
    text = ("ResNet-18 39.8× (channels −70% Scratch-B INT8 ORT, 0.08 ms), dense QAT-INT8 eager, "
            "50% one-shot; NNCodec qp −26; batch 1 1.21× (within timing noise)")
    used = ["ORT", "QAT", "Scratch-B", "qp", "one-shot", "within timing noise"]  # TERMS' order
    assert names.terms_used(text) == (
        "Terms: " + "; ".join(f"{k} = {names.TERMS[k]}" for k in used) + ".")
    assert names.TERMS["within timing noise"] == (
        "a change of latency no larger than the two timings' interquartile ranges over rounds, "
        "or than 3% (25% where fewer than 5 rounds were timed: in 3 rounds, one architecture "
        "timed twice differed by 16%)")
    assert names.TERMS["Scratch-B"] == (
        "the same architecture trained from scratch for the FLOPs of baseline + fine-tuning, or "
        "fewer where its epochs reach their cap (twice Scratch-E's by default)")
    assert names.terms_used("SORT of a QATAR scratch-board") == ""


def test_a_protocols_settings_read_as_words_not_profile_keys():
    """Section H's protocol sentence printed "nesterov False, weight_decay 0.0005"."""
    assert [names.setting(k, v) for k, v in [
        ("nesterov", False), ("weight_decay", 5e-4), ("finetune_schedule", "constant"),
        ("schedule", "onecycle"), ("epochs", 3), ("mystery", 1)]] == [
        "Nesterov momentum off", "weight decay 0.0005", "fine-tuning with constant lr",
        "one-cycle schedule", "3 epochs", "mystery 1"]
    # every key a protocol may set has words of its own
    from approxlib.config import PROTOCOL_KEYS
    assert set(PROTOCOL_KEYS) <= set(names.SETTINGS), set(PROTOCOL_KEYS) - set(names.SETTINGS)


def test_counts_and_lists_are_written_as_words():
    """"epoch(s)" read as unfinished text (a review of the smoke report, 2026-12-07)."""
    import numpy as np
    assert [names.count(n, "epoch") for n in (1, 2, 0, 0.5, 1.0, np.int64(1), np.int64(3))] == [
        "1 epoch", "2 epochs", "0 epochs", "0.5 epochs", "1 epoch", "1 epoch", "3 epochs"]
    assert names.count(12000, "image") == "12,000 images"
    assert names.setting("finetune_epochs", 1) == "1 fine-tuning epoch"
    assert [names.joined(x) for x in (["A"], ["A", "B"], ["A", "B", "C"])] == [
        "A", "A and B", "A, B and C"]


def test_report_parameters_are_written_as_a_profile_writes_them():
    from approxlib import publish
    assert [publish._yaml(v) for v in (None, True, 0.9, 5e-4, "fashion-mnist", "a: b",
                                       {"resnet18": 0.9, "default": None}, [0.3, 0.5])] == [
        "null", "true", "0.9", "0.0005", "fashion-mnist", "'a: b'",
        "{resnet18: 0.9, default: null}", "[0.3, 0.5]"]
