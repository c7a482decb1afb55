"""Faster convolutions for outputs of at most four pixels (2×2) in training, on the CPU.

oneDNN, which PyTorch uses for CPU convolutions, computes the weight gradient of such layers
5–30× slower than their size warrants: for ResNet-18's last 3×3 convolutions on Fashion-MNIST's
28×28 images (512 channels on a 1×1 map, batch 32) 30 ms a call where a matrix product takes 4,
and 9 ms for MobileNetV2's depthwise 960-channel layer against 1 (2-core AMD EPYC, torch 2.14;
`benchmarks/convgrad.py`). Those few layers were half of a training step. No library offers
another CPU kernel for them, so this module computes that one gradient by hand, as the matrix
product it is (im2col with `unfold`, then `einsum`), or for depthwise layers as one sum per kernel
tap; the input gradient and the forward pass stay PyTorch's (`SmallConv`). A layer whose output
is one pixel is, all of it, one matrix product over the kernel taps that land on the input
(`OnePixelConv`): a 3×3 kernel on a 1×1 map is its centre tap, 9× less work than oneDNN does;
a 1×1 kernel is a linear layer over the channels of each pixel (`pointwise_conv`).

`FastWeightGrads()` is a `TorchFunctionMode`: inside it, `conv2d` calls that need a gradient
and produce at most `MAX_PIXELS` output pixels go through one of these; every other call,
every model and every state dict is untouched.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

# Output pixels (H×W) up to which the hand-written weight gradient is faster: measured 1.1–8.4×
# faster at 1×1 and 2×2, and 3–28× slower at 4×4 and 7×7, where oneDNN's is fine.
MAX_PIXELS = 4


def weight_grad(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride, padding,
                dilation, groups: int) -> torch.Tensor:
    """d loss / d weight of `conv2d(x, weight, …)` given d loss / d output `grad`: the sum over
    images and output pixels of each output channel's gradient times its input patch."""
    n, k = grad.shape[:2]
    if groups == k and weight.shape[1] == 1:
        return depthwise_weight_grad(grad, x, weight, stride, padding, dilation)
    patches = F.unfold(x, weight.shape[-2:], dilation=dilation, padding=padding, stride=stride)
    pixels = patches.shape[-1]
    patches = patches.view(n, groups, -1, pixels)
    grad = grad.reshape(n, groups, k // groups, pixels)
    return torch.einsum("ngkp,ngcp->gkc", grad, patches).reshape(weight.shape)


def depthwise_weight_grad(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, stride,
                          padding, dilation) -> torch.Tensor:
    """`weight_grad` of a depthwise convolution (one input channel per output channel), one
    kernel tap at a time: the input pixels under that tap times the gradient, summed. With one
    row per group, `weight_grad`'s batched product ran 5–10× slower than a 3×3 kernel's 9 sums."""
    (kh, kw), (oh, ow) = weight.shape[-2:], grad.shape[-2:]
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    x = F.pad(x, (pw, pw, ph, ph))
    taps = [(x[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
             * grad).sum((0, 2, 3)) for i in range(kh) for j in range(kw)]
    return torch.stack(taps, 1).reshape(weight.shape)


class SmallConv(torch.autograd.Function):
    """`conv2d` with `weight_grad` as its weight gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.nn.grad.conv2d_input(x.shape, weight, grad, stride, padding, dilation,
                                            groups)
        if ctx.needs_input_grad[1]:
            gw = weight_grad(grad, x, weight, stride, padding, dilation, groups)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None


def _live_taps(size: int, taps: int, padding: int, dilation: int) -> range:
    """The kernel taps along one axis that land on the input (not on padding) for the first
    output position: tap i reads input position i × dilation − padding."""
    first = -(-padding // dilation)
    return range(first, min(taps, (size - 1 + padding) // dilation + 1))


def _rows(t: torch.Tensor) -> torch.Tensor:
    """N×C×H×W as N rows of H×W×C: channels-last order, in which training keeps activations
    and weights, so the rows are views or copies of whole runs (C×H×W order made the copies of
    ResNet-18's strided 2×2 window 1.8 ms each, a quarter of the layer)."""
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1)


def _unrows(rows: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """`_rows` undone: N rows of H×W×C back to an N×C×H×W view."""
    n, c, h, w = shape
    return rows.view(n, h, w, c).permute(0, 3, 1, 2)


class OnePixelConv(torch.autograd.Function):
    """`conv2d` whose output is a single pixel, as what it is: a matrix product over the kernel
    taps that land on the input (every other tap multiplies padding zeros), or for a depthwise
    layer one product and sum per channel. oneDNN computes the whole padded kernel, forward and
    backward: ResNet-18's last 3×3 layers on a 1×1 map do 9× the work, at its slow small-map
    speed. The gradient of a dead tap is exactly zero, as it is for the convolution; gradients
    are written in the layout of their tensor (channels-last weights stay so, with no copy)."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding, dilation, groups):
        (ph, pw), (dh, dw) = padding, dilation
        rows = _live_taps(x.shape[-2], weight.shape[-2], ph, dh)
        cols = _live_taps(x.shape[-1], weight.shape[-1], pw, dw)
        ctx.window = (..., slice(rows.start * dh - ph, (rows.stop - 1) * dh - ph + 1, dh),
                      slice(cols.start * dw - pw, (cols.stop - 1) * dw - pw + 1, dw))
        ctx.taps = (..., slice(rows.start, rows.stop), slice(cols.start, cols.stop))
        ctx.dense, ctx.has_bias = groups == 1, bias is not None
        ctx.save_for_backward(x, weight)
        patch, w = x[ctx.window], weight[ctx.taps]
        n, k = x.shape[0], weight.shape[0]
        if ctx.dense:
            # Written through a view, returned whole: the next layer may modify it in place
            # (ReLU in a BatchNorm-folded model), which autograd forbids on a view made here.
            out = x.new_empty(n, k, 1, 1)
            rows, weights = _rows(patch), _rows(w).t()
            if bias is None:
                torch.mm(rows, weights, out=out.view(n, k))
            else:
                torch.addmm(bias, rows, weights, out=out.view(n, k))
            return out
        out = (patch * w.transpose(0, 1)).sum((2, 3), keepdim=True)  # depthwise: k channels
        return out if bias is None else out + bias.view(1, k, 1, 1)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        patch, w = x[ctx.window], weight[ctx.taps]
        n, k = grad.shape[:2]
        g = grad.reshape(n, k)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.zeros_like(x)
            gx[ctx.window] = (_unrows(g @ _rows(w), patch.shape) if ctx.dense
                              else g.view(n, k, 1, 1) * w.transpose(0, 1))
        if ctx.needs_input_grad[1]:
            gw = torch.zeros_like(weight)
            gw[ctx.taps] = (_unrows(g.t() @ _rows(patch), w.shape) if ctx.dense
                            else (g.view(n, k, 1, 1) * patch).sum(0).unsqueeze(1))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb, None, None, None


def _pair(v) -> tuple[int, int]:
    """`conv2d`'s spelling of a per-dimension size (an int, a 1-tuple or a pair) as a pair."""
    v = (v,) if isinstance(v, int) else tuple(v)
    return v * 2 if len(v) == 1 else v


def output_pixels(x: torch.Tensor, weight: torch.Tensor, stride, padding, dilation) -> int:
    """H×W of `conv2d`'s output for a 4-d input (PyTorch's formula); 0 where the kernel does
    not fit, so that `conv2d` itself raises its error (two negative sides multiply to one)."""
    size = 1
    for i, s, p, d, k in zip(x.shape[-2:], _pair(stride), _pair(padding), _pair(dilation),
                             weight.shape[-2:]):
        size *= max(0, (i + 2 * p - d * (k - 1) - 1) // s + 1)
    return size


ARGUMENTS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
DEFAULTS = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def _applies(a: dict) -> bool:
    x, weight = a["input"], a["weight"]
    return (x.dim() == 4 and x.device.type == "cpu" and not isinstance(a["padding"], str)
            and not torch.is_autocast_enabled("cpu") and torch.is_grad_enabled()
            and (x.requires_grad or weight.requires_grad)
            and output_pixels(x, weight, a["stride"], a["padding"], a["dilation"]) <= MAX_PIXELS)


def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias, stride) -> torch.Tensor:
    """A 1×1 convolution without padding, as the linear layer over channels it is: on
    channels-last tensors each pixel is a row of the input and of the output, with no copy.
    On 2×2 maps forward + backward ran 2.0–3.1× faster so than oneDNN's forward and input
    gradient with `SmallConv`'s weight gradient (MobileNetV2's 64–576-channel layers, batch 32
    and 128); autograd differentiates it. The output has the input's layout, as `conv2d`'s."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last)
    x = x[:, :, ::stride[0], ::stride[1]]
    k, c = weight.shape[:2]
    out = F.linear(x.permute(0, 2, 3, 1), weight.reshape(k, c), bias).permute(0, 3, 1, 2)
    return out if channels_last else out.contiguous()


def _pointwise(a: dict) -> bool:
    return (a["groups"] == 1 and tuple(a["weight"].shape[-2:]) == (1, 1)
            and a["padding"] == (0, 0))


def _one_pixel(a: dict) -> bool:
    """A single output pixel from a dense or depthwise layer with some tap on the input."""
    x, weight, groups = a["input"], a["weight"], a["groups"]
    if output_pixels(x, weight, a["stride"], a["padding"], a["dilation"]) != 1:
        return False
    if groups != 1 and not (groups == weight.shape[0] == x.shape[1] and weight.shape[1] == 1):
        return False
    return all(len(_live_taps(x.shape[i], weight.shape[i], a["padding"][i - 2],
                              a["dilation"][i - 2])) for i in (2, 3))


class FastWeightGrads(TorchFunctionMode):
    """Route small-output `conv2d` calls through `pointwise_conv`, `OnePixelConv` or `SmallConv`
    while active (a training step's forward pass)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.conv2d:
            a = {**DEFAULTS, **dict(zip(ARGUMENTS, args)), **kwargs}
            if _applies(a):
                a.update({k: _pair(a[k]) for k in ("stride", "padding", "dilation")})
                if _pointwise(a):
                    return pointwise_conv(a["input"], a["weight"], a["bias"], a["stride"])
                if _one_pixel(a):
                    return OnePixelConv.apply(a["input"], a["weight"], a["bias"], a["padding"],
                                              a["dilation"], a["groups"])
                return SmallConv.apply(*(a[name] for name in ARGUMENTS))
        return func(*args, **kwargs)
