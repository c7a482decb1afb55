"""Runtimes: one registered entry each; the recipe, the names and the figures read the entry,
so a runtime's name is tested nowhere in the library."""
import dataclasses

import pandas as pd

from approxlib import analysis, names, pipeline, runtimes
from approxlib.config import RUNTIMES, load_profile
from approxlib.sections import Variant


def test_the_registry_is_what_results_csv_spells_and_the_profile_accepts():
    assert RUNTIMES == tuple(runtimes.RUNTIMES) == ("pytorch", "onnxruntime")
    assert runtimes.REFERENCE == "pytorch"
    assert [r.short for r in runtimes.RUNTIMES.values()] == ["eager", "ORT"]
    assert runtimes.label("tvm") == "tvm"


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
