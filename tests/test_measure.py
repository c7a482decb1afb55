import math

import torch

from approxlib import measure as ME
from approxlib import models as M
from approxlib import prune as P
from approxlib.config import MeasureConfig, ModelConfig, PruneConfig


def test_latency_numbers_are_sane():
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    r = ME.latency_ms(m, (1, 8, 8), MeasureConfig(threads=1, latency_warmup=2,
                                                  latency_min_time=0.05, throughput_batch=8))
    assert 0 < r["latency_ms"] < 100 and math.isfinite(r["latency_ms"])
    assert r["throughput_img_s"] > 0 and r["threads"] == 1 and r["latency_runs"] >= 1
    assert torch.get_num_threads() >= 1


def test_counts_and_layer_table():
    torch.manual_seed(0)
    m = M.build(ModelConfig("mobilenetv2", 10, 1))
    total, zeros = ME.count_params(m)
    assert total == sum(p.numel() for p in m.parameters())
    P.prune_(m, PruneConfig(0.5))
    P.make_permanent_(m)
    table = ME.layer_sparsity(m)
    assert list(table.columns) == ["layer", "shape", "total", "zeros", "sparsity"]
    assert table["total"].sum() == P.global_sparsity(m)[1]
    assert table["zeros"].sum() == P.global_sparsity(m)[0] == round(0.5 * table["total"].sum())
    assert ME.count_params(m)[1] >= table["zeros"].sum()
    assert table.loc[table.layer == "classifier.1", "shape"].item() == "10x1280"
