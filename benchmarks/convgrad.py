"""`convgrad`'s weight gradient against oneDNN's, per layer and per training step, in one process.

Per layer: the weight gradient of the small-output convolutions of ResNet-18 and MobileNetV2 on
28×28 inputs (ImageNet stem), oneDNN's (`convolution_backward`) vs `convgrad.weight_grad`, and
a 4×4 and a 7×7 layer where oneDNN's wins (why `MAX_PIXELS` is 4); then forward + backward of
their one-pixel layers, `SmallConv` vs `OnePixelConv`, and of 1×1 layers, `SmallConv` vs
`pointwise_conv`. Per step: forward, backward
and SGD step of each model at batch 32 and 128 on 1×28×28 inputs, without and with
`convgrad.FastWeightGrads`, alternated so that a disturbance hits both. Medians of --steps
timed steps. Run alone: a second process on 2 cores slows PyTorch several-fold.

Last line: step_speedup_<model>_b<batch>=… for each model and batch.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from approxlib import cli  # noqa: E402
from approxlib import convgrad  # noqa: E402
from approxlib import models  # noqa: E402
from approxlib.config import ConfigError, ModelConfig  # noqa: E402

# (batch, channels, input size, groups, stride) of 3×3 convolutions at padding 1
LAYERS = [(32, 512, 1, 1, 1), (32, 256, 2, 1, 1), (32, 960, 1, 960, 1), (32, 384, 2, 384, 1),
          (32, 576, 2, 576, 2),
          (128, 512, 1, 1, 1), (32, 128, 4, 1, 1), (32, 144, 7, 144, 1)]


def median_ms(f, n: int = 15, skip: int = 3) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[skip:]) * 1000


def layer_row(n, c, size, groups, stride) -> str:
    x = torch.randn(n, c, size, size).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c // groups, 3, 3)
    out = (size - 1) // stride + 1
    g = torch.randn(n, c, out, out).contiguous(memory_format=torch.channels_last)
    args = ([stride] * 2, [1, 1], [1, 1])
    ref = median_ms(lambda: torch.ops.aten.convolution_backward(
        g, x, w, None, *args, False, [0, 0], groups, [False, True, False]))
    mine = median_ms(lambda: convgrad.weight_grad(g, x, w, stride, 1, 1, groups))
    return (f"batch {n:3d}, {c:3d} ch {'depthwise' if groups > 1 else 'dense':9s} "
            f"{size}x{size} -> {out}x{out}: oneDNN {ref:6.2f} ms, convgrad {mine:6.2f} ms "
            f"({ref / mine:.2f}x)")


# (batch, in channels, out channels, input size, kernel, stride, groups) of one-pixel outputs,
# at padding 1 for 3×3 kernels and 0 for 1×1: ResNet-18's last layers, MobileNetV2's last
ONE_PIXEL = [(32, 512, 512, 1, 3, 1, 1), (32, 256, 512, 2, 3, 2, 1),
             (32, 960, 960, 1, 3, 1, 960), (128, 512, 512, 1, 3, 1, 1)]


def one_pixel_row(n, c, k, size, kernel, stride, groups) -> str:
    """Forward and backward of one layer: autograd through `SmallConv` (oneDNN's forward and
    input gradient, `weight_grad`), as before `OnePixelConv`, against `OnePixelConv`."""
    x = torch.randn(n, c, size, size).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(k, c // groups, kernel, kernel).contiguous(memory_format=torch.channels_last)
    w.requires_grad_()
    pad = (kernel // 2,) * 2

    def run(fn):
        fn(x, w, None, (stride,) * 2, pad, (1, 1), groups).sum().backward()
        x.grad = w.grad = None
    ref = median_ms(lambda: run(convgrad.SmallConv.apply))
    mine = median_ms(lambda: run(lambda x, w, b, s, p, d, g:
                                 convgrad.OnePixelConv.apply(x, w, b, p, d, g)))
    return (f"batch {n:3d}, {c:3d}->{k:4d} {'depthwise' if groups > 1 else 'dense':9s} "
            f"{kernel}x{kernel} on {size}x{size} -> 1x1: SmallConv {ref:6.2f} ms, "
            f"OnePixelConv {mine:6.2f} ms ({ref / mine:.2f}x)")


# (batch, in channels, out channels, input size) of MobileNetV2's 1×1 layers on 2×2 maps
POINTWISE = [(32, 64, 384, 2), (32, 576, 96, 2), (128, 96, 576, 2), (128, 576, 96, 2)]


def pointwise_row(n, c, k, size) -> str:
    """Forward and backward of a 1×1 layer: `SmallConv` against `pointwise_conv`."""
    x = torch.randn(n, c, size, size).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(k, c, 1, 1).contiguous(memory_format=torch.channels_last).requires_grad_()

    def run(fn):
        fn().sum().backward()
        x.grad = w.grad = None
    ref = median_ms(lambda: run(lambda: convgrad.SmallConv.apply(x, w, None, (1, 1), (0, 0),
                                                                 (1, 1), 1)))
    mine = median_ms(lambda: run(lambda: convgrad.pointwise_conv(x, w, None, (1, 1))))
    return (f"batch {n:3d}, {c:3d}->{k:4d} 1x1 on {size}x{size}: SmallConv {ref:6.2f} ms, "
            f"pointwise_conv {mine:6.2f} ms ({ref / mine:.2f}x)")


def step_times(name: str, batch: int, steps: int) -> tuple[float, float]:
    torch.manual_seed(0)
    m = models.build(ModelConfig(name, 10, 1)).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    ce = nn.CrossEntropyLoss()
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step(fast: bool):
        t0 = time.perf_counter()
        if fast:
            with convgrad.FastWeightGrads():
                loss = ce(m(x), y)
        else:
            loss = ce(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0
    times = {False: [], True: []}
    for i in range(steps + 3):
        for fast in (False, True):
            t = step(fast)
            if i >= 3:
                times[fast].append(t)
    return statistics.median(times[False]), statistics.median(times[True])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=15, help="timed steps per model and batch")
    a = ap.parse_args(argv)
    if a.steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {a.steps}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for layer in LAYERS:
        print(layer_row(*layer), flush=True)
    for layer in ONE_PIXEL:
        print(one_pixel_row(*layer), flush=True)
    for layer in POINTWISE:
        print(pointwise_row(*layer), flush=True)
    last = []
    for name in ("resnet18", "mobilenetv2"):
        for batch in (32, 128):
            ref, fast = step_times(name, batch, a.steps)
            print(f"{name} batch {batch}: {batch / ref:.0f} -> {batch / fast:.0f} img/s "
                  f"({ref * 1000:.0f} -> {fast * 1000:.0f} ms a step)", flush=True)
            last.append(f"step_speedup_{name}_b{batch}={ref / fast:.2f}")
    print(" ".join(last))
    return 0


if __name__ == "__main__":
    sys.exit(cli.guarded("convgrad.py", main))
