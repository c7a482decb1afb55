import math

import torch

from approxlib import measure
from approxlib import models
from approxlib import prune
from approxlib.config import MeasureConfig, ModelConfig, PruneConfig


def test_latency_numbers_are_sane():
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    r = measure.latency_ms(m, (1, 8, 8), MeasureConfig(threads=1, latency_warmup=2,
                                                       latency_min_time=0.05, throughput_batch=8))
    assert 0 < r["latency_ms"] < 100 and math.isfinite(r["latency_ms"])
    assert r["throughput_img_s"] > 0 and r["threads"] == 1 and r["latency_runs"] >= 1
    assert torch.get_num_threads() >= 1


def test_counts_and_layer_table():
    torch.manual_seed(0)
    m = models.build(ModelConfig("mobilenetv2", 10, 1))
    total, zeros = measure.count_params(m)
    assert total == sum(p.numel() for p in m.parameters())
    prune.prune_(m, PruneConfig(0.5))
    prune.make_permanent_(m)
    table = measure.layer_sparsity(m)
    assert list(table.columns) == ["layer", "shape", "total", "zeros", "sparsity"]
    assert table["total"].sum() == prune.global_sparsity(m)[1]
    assert table["zeros"].sum() == prune.global_sparsity(m)[0] == round(0.5 * table["total"].sum())
    assert measure.count_params(m)[1] >= table["zeros"].sum()
    assert table.loc[table.layer == "classifier.1", "shape"].item() == "10x1280"
