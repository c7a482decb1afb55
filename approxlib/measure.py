"""Measurements that return plain numbers: latency, throughput, FLOPs, parameters, sparsity.

Accuracy is `train.accuracy`; a model's size is its saved file's (`store.save_checkpoint`
returns it)."""
from __future__ import annotations

import logging
import os
import platform
import time
from contextlib import contextmanager, nullcontext

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import MeasureConfig
from .models import evaluating, prunable, weight_of


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
    module = isinstance(model, nn.Module)
    if module:
        model = model.cpu()  # timed on the CPU: a module on a GPU is moved there
    x1 = torch.rand(1, *input_shape)
    xb = torch.rand(cfg.throughput_batch, *input_shape)
    with evaluating(model) if module else nullcontext(), num_threads(cfg.threads):
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


@torch.inference_mode()
def interleaved_latency(models: dict, input_shape: tuple[int, ...], cfg: MeasureConfig,
                        rounds: int) -> dict:
    """`latency_ms`'s numbers for several models timed in turns, round after round: the speed
    ratios between them then compare like with like.

    Timed one after another, minutes apart, as each evaluation does, batch-1 latency on a
    2-core machine drifts between identical graphs by more than the differences a section
    compares (README logbook, "Section G timed in turns"). Each round gives every model one
    untimed call and then `latency_min_time / rounds` seconds of single calls per batch size;
    a figure is the median over rounds of a round's median, its IQR that of the round
    medians. `models` maps a name to an nn.Module or a callable; each is warmed up first, at
    batch 1, with the thread count set (see `Runner._measure`)."""
    if rounds < 1 or not models:
        raise ValueError(f"interleaved_latency needs models and rounds >= 1, got "
                         f"{len(models)} and {rounds}")
    x1 = torch.rand(1, *input_shape)
    xb = torch.rand(cfg.throughput_batch, *input_shape)
    budget = cfg.latency_min_time / rounds
    times: dict = {name: ([], []) for name in models}
    with num_threads(cfg.threads):
        for m in models.values():
            for _ in range(cfg.latency_warmup):
                m(x1)
            m(xb)
        order = list(models)
        for r in range(rounds):  # the first model of each round spread over the whole list
            start = r * len(order) // rounds
            for name in order[start:] + order[:start]:
                for x, out in zip((x1, xb), times[name]):
                    out.append(_median_call(models[name], x, budget))
    return {name: _summary(b1, bb, cfg) for name, (b1, bb) in times.items()}


def _median_call(model, x: torch.Tensor, budget: float) -> float:
    """Median seconds of single calls over `budget` seconds (at least one call), after one
    untimed call that brings the model's weights back into the caches the other models used.
    Written here rather than with `Timer.blocked_autorange`: that sizes its blocks in steps of
    ten, so a batch-64 pass of 60 ms ran 600 ms blocks where a round had 25 ms (smoke's 29
    ResNet-18 variants: 69 s, against 15 s with this loop)."""
    model(x)
    times, end = [], time.perf_counter() + budget
    while True:
        t0 = time.perf_counter()
        model(x)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 >= end:
            return float(pd.Series(times).median())


def _summary(b1: list[float], bb: list[float], cfg: MeasureConfig) -> dict:
    s1, sb = pd.Series(b1), pd.Series(bb)
    return {"latency_ms": s1.median() * 1e3,
            "latency_iqr_ms": (s1.quantile(0.75) - s1.quantile(0.25)) * 1e3,
            "latency_bs64_ms": sb.median() * 1e3,
            "latency_bs64_iqr_ms": (sb.quantile(0.75) - sb.quantile(0.25)) * 1e3,
            "throughput_img_s": cfg.throughput_batch / sb.median(), "rounds": len(b1)}


def flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one image's forward pass (a multiply-add counts as 2), from
    `torch.utils.flop_counter` on the float model."""
    with torch.no_grad(), evaluating(model), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, *input_shape))
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
