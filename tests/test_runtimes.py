"""Runtimes: one registered entry each; the recipe, the names and the figures read the entry,
so a runtime's name is tested nowhere in the library."""
import dataclasses

import pandas as pd
import pytest

from approxlib import analysis, names, pipeline, runtimes, sections
from approxlib.config import ConfigError, StaticQuantConfig, load_profile
from approxlib.sections import Variant


def test_the_registry_is_what_results_csv_spells_and_the_profile_accepts():
    assert tuple(runtimes.RUNTIMES) == ("pytorch", "onnxruntime")
    assert runtimes.REFERENCE == "pytorch"
    assert [r.short for r in runtimes.RUNTIMES.values()] == ["eager", "ORT"]
    assert runtimes.label("tvm") == runtimes.short("tvm") == "tvm"
    assert [runtimes.ORT.marker(q) for q in ("none", "int8-static", "int8-qat", "kmeans")] == \
        ["^", "D", "X", "^"]
    StaticQuantConfig(runtime="onnxruntime")
    with pytest.raises(ConfigError, match="runtime"):
        StaticQuantConfig(runtime="tvm")


def test_a_new_exported_runtime_is_planned_and_named_from_its_entry(monkeypatch):
    gpu = dataclasses.replace(runtimes.ORT, key="onnxruntime-gpu", label="ONNX Runtime (CUDA)",
                              short="ORT-GPU")
    monkeypatch.setitem(runtimes.RUNTIMES, gpu.key, gpu)
    p = load_profile("smoke")
    v = Variant("G", "resnet18", "fashion-mnist", runtime=gpu.key)
    assert [s.kind for s in pipeline.stages(v, p)] == ["train", "onnx", "evaluate"]
    row = pd.Series({"model": "resnet18", "prune_ratio": 0.0, "quant": "none",
                     "runtime": gpu.key, "codec": "none", "control": "none"})
    assert names.variant_label(row) == "ResNet-18 baseline (ONNX Runtime (CUDA))"
    assert analysis.variant_name(row) == "dense fp32 ORT-GPU"
    eager = Variant("G", "resnet18", "fashion-mnist")
    assert [s.kind for s in pipeline.stages(eager, p)] == ["train", "evaluate"]
    planned = {(v.prune_ratio, v.quant) for v in sections.plan(p, ["G"])
               if v.runtime == gpu.key and v.model == "resnet18" and not v.is_control}
    assert planned == {(0.0, "none"), (0.0, "int8-static"), (0.0, "int8-qat"), (0.5, "none"),
                       (0.5, "int8-static"), (0.5, "int8-qat"), (0.7, "none"),
                       (0.7, "int8-static")}
