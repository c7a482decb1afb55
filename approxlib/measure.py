"""Measurements that return plain numbers: accuracy, size, latency, throughput, sparsity."""
from __future__ import annotations

import logging
import os
import platform
import time
from contextlib import contextmanager

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import MeasureConfig
from .models import prunable, weight_of


@contextmanager
def num_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@torch.inference_mode()
def latency_ms(model, input_shape: tuple[int, ...], cfg: MeasureConfig) -> dict:
    """CPU latency at batch 1 and throughput at `cfg.throughput_batch`, threads fixed.

    `model` is an nn.Module or any callable on a float tensor (an ONNX Runtime session wrapper,
    whose own thread count is fixed when it is created).

    `torch.utils.benchmark.Timer.blocked_autorange` runs the forward pass in blocks until
    `latency_min_time` seconds have passed and reports the median block time per call; we warm
    up first (the original: 10 untimed passes) so one-off allocations are not timed.
    """
    # Importing torch.utils.benchmark probes for a CUDA toolkit and warns on machines that have
    # nvcc but no GPU; that warning is noise for a CPU measurement.
    # So it is imported here, after the warning is silenced, not at the top.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    from torch.utils import benchmark
    if isinstance(model, nn.Module):
        model = model.cpu().eval()
    x1 = torch.rand(1, *input_shape)
    xb = torch.rand(cfg.throughput_batch, *input_shape)
    with num_threads(cfg.threads):
        for _ in range(cfg.latency_warmup):
            model(x1)
        t1 = benchmark.Timer("model(x)", globals={"model": model, "x": x1},
                             num_threads=cfg.threads).blocked_autorange(
                                 min_run_time=cfg.latency_min_time)
        model(xb)
        tb = benchmark.Timer("model(x)", globals={"model": model, "x": xb},
                             num_threads=cfg.threads).blocked_autorange(
                                 min_run_time=cfg.latency_min_time)
    return {"latency_ms": t1.median * 1e3, "latency_iqr_ms": t1.iqr * 1e3,
            "latency_runs": t1.number_per_run * len(t1.times),
            "latency_bs64_ms": tb.median * 1e3, "latency_bs64_iqr_ms": tb.iqr * 1e3,
            "throughput_img_s": cfg.throughput_batch / tb.median, "threads": cfg.threads}


def flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one image's forward pass (a multiply-add counts as 2), from
    `torch.utils.flop_counter` on the float model."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.rand(1, *input_shape))
    return int(counter.get_total_flops())


@torch.no_grad()
def peak_gflops(threads: int = 1, n: int = 1024, repeats: int = 5) -> float:
    """This CPU's float32 matrix-multiply rate (GFLOP/s) with `threads` threads: a practical
    arithmetic ceiling for the same kernels, measured rather than looked up."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    with num_threads(threads):
        a @ b
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def count_params(model: nn.Module) -> tuple[int, int]:
    """(parameters, exactly-zero parameters); quantized Linear weights count as parameters and a
    pruned layer's masked weight (not its `weight_orig`) is what counts."""
    layers = {id(m) for _, m in prunable(model)}
    total = zeros = 0
    for m in model.modules():
        if id(m) in layers:
            bias = m.bias() if callable(getattr(m, "bias", None)) else m.bias
            tensors = [weight_of(m)] + ([bias] if bias is not None else [])
        else:
            tensors = list(m.parameters(recurse=False))
        for t in tensors:
            total += t.numel()
            zeros += int((t == 0).sum())
    return total, zeros


def layer_sparsity(model: nn.Module) -> pd.DataFrame:
    """The original's per-layer CSV: layer, shape, total, zeros, sparsity (Conv2d + Linear)."""
    rows = []
    for name, m in prunable(model):
        w = weight_of(m)
        zeros = int((w == 0).sum())
        rows.append({"layer": name, "shape": "x".join(map(str, w.shape)), "total": w.numel(),
                     "zeros": zeros, "sparsity": zeros / w.numel()})
    return pd.DataFrame(rows, columns=["layer", "shape", "total", "zeros", "sparsity"])


def hardware() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"}
