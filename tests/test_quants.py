"""Quantizations: one registered entry each owns how the report writes it; the code that stores
(`quantize.METHODS`) and makes them (`pipeline.QUANTIZINGS`), the profile's checks, the names,
the analysis and the figures read the entry."""
import dataclasses

import pandas as pd
import pytest

from approxlib import analysis, config, names, pipeline, plots, quantize, quants, runtimes
from approxlib.sections import Variant


def row(**kw):
    return pd.Series({"model": "resnet18", "prune_ratio": 0.0, "quant": "none",
                      "prune_method": "none", "runtime": runtimes.REFERENCE, "codec": "none",
                      "control": "none", "kd": False, **kw})


def test_every_stored_quantization_has_an_entry_and_the_profile_accepts_exactly_those():
    assert set(quantize.METHODS) == set(quants.QUANTS)
    assert all(q.quant.key == k for k, q in pipeline.QUANTIZINGS.items())
    assert quants.PRECISIONS == ("none", "int8-static", "int8-qat")
    assert [runtimes.EAGER.marker(q) for q in quants.PRECISIONS] == list(runtimes.EAGER.markers)
    assert plots._legend_markers()[-1] == (quants.QAT.key, runtimes.ORT.key)


def test_a_new_entry_renames_a_quantization_everywhere(monkeypatch):
    renamed = dataclasses.replace(quants.STATIC, label="static INT8 (FX)", precision="S8")
    monkeypatch.setitem(quants.QUANTS, renamed.key, renamed)
    assert names.variant_label(row(quant=renamed.key)) == "ResNet-18 baseline + static INT8 (FX)"
    assert analysis.variant_name(row(quant=renamed.key)) == "dense S8 eager"
    assert analysis.variant_name(row(quant=renamed.key, prune_ratio=0.5,
                                     prune_method="channel-l1", runtime=runtimes.ORT.key)) == \
        "channels −50% S8 ORT"


def test_a_quantization_not_listed_is_written_as_spelled_and_refused_by_the_profile():
    assert names.variant_label(row(quant="int4-awq")) == "ResNet-18 baseline + int4-awq"
    assert analysis.variant_name(row(quant="int4-awq")) == "dense int4-awq eager"
    assert analysis.variant_name(row(quant=quants.DYNAMIC.key)) == "dense int8-dynamic eager"
    assert runtimes.ORT.marker("int4-awq") == runtimes.ORT.markers[0]
    with pytest.raises(config.ConfigError, match="int4-awq"):
        config.QuantConfig("int4-awq")


def test_an_entry_registered_after_import_is_accepted(monkeypatch):
    awq = quants.Quant("int4-awq", "AWQ INT4", "INT4")
    monkeypatch.setitem(quants.QUANTS, awq.key, awq)
    assert config.QuantConfig(awq.key).method == awq.key
    assert names.variant_label(row(quant=awq.key)) == "ResNet-18 baseline + AWQ INT4"
    assert analysis.variant_name(row(quant=awq.key)) == "dense INT4 eager"


def test_a_quantization_trained_as_it_quantizes_is_held_to_its_float_twin(monkeypatch):
    int4 = quants.Quant("int4-qat", "INT4 (QAT)", "QAT-INT4", trained=True)
    monkeypatch.setitem(quants.QUANTS, int4.key, int4)
    assert Variant("G", "resnet18", "fashion-mnist", quant=int4.key).qat_trained
    assert not Variant("G", "resnet18", "fashion-mnist", quant=quants.STATIC.key).qat_trained
    base = dict(model="m", prune_ratio=0.0, quant="none", runtime=runtimes.REFERENCE,
                codec="none", kd=False, control="none", accuracy=0.90, val_accuracy=0.89)
    d = pd.DataFrame([base, dict(base, control="qat-float", accuracy=0.905, val_accuracy=0.891),
                      dict(base, quant=int4.key, accuracy=0.88),
                      dict(base, quant=quants.STATIC.key, accuracy=0.885)])
    assert analysis.int8_reference(d, d.iloc[2]).control == "qat-float"
    assert analysis.int8_reference(d, d.iloc[3]).control == "none"  # post-training: the baseline
