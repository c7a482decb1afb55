"""The hand-written weight gradient of small-output convolutions equals PyTorch's."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from approxlib import convgrad
from approxlib import models
from approxlib.config import ModelConfig

# (input N×C×H×W, weight K×C/g×kh×kw, stride, padding, dilation, groups)
CASES = [
    ((4, 8, 1, 1), (6, 8, 3, 3), 1, 1, 1, 1),     # ResNet-18's last layers on 28×28 images
    ((4, 8, 2, 2), (6, 8, 3, 3), 1, 1, 1, 1),
    ((4, 8, 2, 2), (8, 1, 3, 3), 2, 1, 1, 8),     # depthwise, stride 2
    ((3, 5, 4, 3), (5, 1, 3, 2), (2, 1), (1, 0), (1, 2), 5),  # depthwise, every size its own
    ((2, 4, 2, 2), (8, 1, 3, 3), 1, 1, 1, 4),     # two output channels per input channel
    ((2, 6, 5, 5), (6, 1, 3, 3), 2, 1, 1, 6),     # depthwise, strided to a 3×3 output
    ((2, 6, 7, 6), (6, 1, 3, 2), 2, 1, (2, 1), 6),  # depthwise, stride and dilation along H
    ((3, 5, 3, 3), (5, 1, 1, 1), 1, 0, 1, 5),     # depthwise 1×1
    ((3, 6, 3, 2), (4, 3, 2, 1), 1, 0, 1, 2),     # grouped, rectangular kernel and input
    ((2, 4, 5, 5), (4, 4, 3, 3), 2, 2, 2, 1),     # dilation
    ((2, 4, 1, 1), (5, 4, 1, 1), 1, 0, 1, 1),     # a 1×1 convolution
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CASES)
def test_weight_grad_equals_autograd(xs, ws, stride, padding, dilation, groups):
    torch.manual_seed(0)
    x = torch.randn(xs, dtype=torch.float64)
    w = torch.randn(ws, dtype=torch.float64, requires_grad=True)
    out = F.conv2d(x, w, None, stride, padding, dilation, groups)
    grad = torch.randn_like(out)
    (expected,) = torch.autograd.grad(out, w, grad)
    got = convgrad.weight_grad(grad, x, w.detach(), stride, padding, dilation, groups)
    assert got.shape == w.shape
    torch.testing.assert_close(got, expected)


def test_depthwise_layers_and_only_they_take_the_per_tap_sums(monkeypatch):
    taken = []
    per_tap = convgrad.depthwise_weight_grad
    monkeypatch.setattr(convgrad, "depthwise_weight_grad",
                        lambda grad, x, w, *a: taken.append(w.shape) or per_tap(grad, x, w, *a))
    for xs, ws, stride, padding, dilation, groups in CASES:
        x, w = torch.randn(xs), torch.randn(ws)
        grad = torch.randn_like(F.conv2d(x, w, None, stride, padding, dilation, groups))
        convgrad.weight_grad(grad, x, w, stride, padding, dilation, groups)
    assert taken == [torch.Size(ws) for xs, ws, *_, groups in CASES
                     if groups == ws[0] and ws[1] == 1]
    assert len(taken) == 5


def test_float32_channels_last_depthwise_gradient():
    """As training runs it: float32, channels_last (MobileNetV2's 2×2, 384-channel layer)."""
    torch.manual_seed(0)
    x = torch.randn(8, 384, 2, 2).contiguous(memory_format=torch.channels_last)
    w = torch.randn(384, 1, 3, 3, requires_grad=True)
    with convgrad.FastWeightGrads():
        out = F.conv2d(x, w, None, 1, 1, 1, 384)
    assert "SmallConv" in out.grad_fn.name()
    grad = torch.randn_like(out)
    (got,) = torch.autograd.grad(out, w, grad)
    (expected,) = torch.autograd.grad(F.conv2d(x, w, None, 1, 1, 1, 384), w, grad)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def grads(model: nn.Module, x: torch.Tensor, fast: bool) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same dropout mask in both passes
    if fast:
        with convgrad.FastWeightGrads():
            out = model(x)
    else:
        out = model(x)
    out.square().sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_a_models_gradients_are_unchanged(name):
    """Every parameter's gradient (input gradients flow through the layers) as PyTorch gives it,
    on the 28×28 inputs whose last layers have 1×1 outputs."""
    torch.manual_seed(0)
    model = models.build(ModelConfig(name, 10, 1)).double().train()
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected = grads(model, x, fast=False)
    model.load_state_dict(state)  # the first pass moved BatchNorm's running statistics
    got = grads(model, x, fast=True)
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], msg=n)


def test_routes_only_small_outputs_that_need_a_gradient():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    with convgrad.FastWeightGrads():
        small = conv(torch.randn(2, 4, 2, 2))
        large = conv(torch.randn(2, 4, 4, 4))
        with torch.no_grad():
            untracked = conv(torch.randn(2, 4, 1, 1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = conv(torch.randn(2, 4, 1, 1))
        keyword = F.conv2d(input=torch.randn(2, 4, 1, 1), weight=conv.weight, padding=1)
        same = F.conv2d(torch.randn(2, 4, 1, 1), conv.weight, padding="same")
    assert "SmallConv" in small.grad_fn.name()
    assert "OnePixelConv" in keyword.grad_fn.name()
    for out in (large, autocast, same):
        assert "SmallConv" not in out.grad_fn.name() and "OnePixel" not in out.grad_fn.name()
    assert untracked.grad_fn is None
    assert convgrad.output_pixels(torch.empty(1, 1, 28, 28), torch.empty(1, 1, 3, 3), 2, 1,
                                  1) == 14 * 14


def test_one_tuples_count_both_dimensions():
    """`conv2d` reads padding=(1,) as (1, 1): a 4×4 output is not routed, a 2×2 one is, and
    its gradients are PyTorch's."""
    x = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    w = torch.randn(2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    assert convgrad.output_pixels(x, w, (1,), (1,), (1,)) == 16
    with convgrad.FastWeightGrads():
        large = F.conv2d(x, w, None, 1, (1,), 1, 2)
        small = F.conv2d(x, w, None, (2,), (1,), (1,), 2)
    assert "SmallConv" not in large.grad_fn.name() and "SmallConv" in small.grad_fn.name()
    (got,) = torch.autograd.grad(small.sum(), w)
    (expected,) = torch.autograd.grad(F.conv2d(x, w, None, 2, 1, 1, 2).sum(), w)
    torch.testing.assert_close(got, expected)


# One-pixel outputs: (input, weight, stride, padding, dilation, groups), each with a bias
ONE_PIXEL = [
    ((4, 8, 1, 1), (6, 8, 3, 3), 1, 1, 1, 1),      # ResNet-18's last 3×3 layers: the centre tap
    ((4, 8, 2, 2), (6, 8, 3, 3), 2, 1, 1, 1),      # ... their strided first one: 4 live taps
    ((4, 8, 1, 1), (8, 1, 3, 3), 1, 1, 1, 8),      # MobileNetV2's depthwise layer on a 1×1 map
    ((3, 5, 2, 3), (5, 1, 3, 3), (2, 3), 1, 1, 5),  # depthwise, strides of their own
    ((2, 4, 3, 3), (5, 4, 3, 3), 1, 0, 1, 1),      # no padding: every tap lives
    ((2, 4, 3, 3), (3, 4, 3, 3), 3, 2, 2, 1),      # dilation: taps 1 and 2 read pixels 0 and 2
    ((2, 3, 2, 3), (4, 3, 3, 2), (2, 3), (1, 0), 1, 1),  # rectangular kernel, padding, strides
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", ONE_PIXEL)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_one_pixel_convolution_equals_pytorchs(xs, ws, stride, padding, dilation, groups,
                                               layout):
    torch.manual_seed(0)
    x = torch.randn(xs, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    w = torch.randn(ws, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    b = torch.randn(ws[0], dtype=torch.float64, requires_grad=True)
    with convgrad.FastWeightGrads():
        got = F.conv2d(x, w, b, stride, padding, dilation, groups)
    assert "OnePixelConv" in got.grad_fn.name()
    expected = F.conv2d(x, w, b, stride, padding, dilation, groups)
    torch.testing.assert_close(got, expected)
    grad = torch.randn_like(expected)
    for g, e, t in zip(torch.autograd.grad(got, (x, w, b), grad),
                       torch.autograd.grad(expected, (x, w, b), grad), (x, w, b)):
        torch.testing.assert_close(g, e)
        assert g.stride() == t.stride()  # no copy into the parameter's layout afterwards


def test_only_dense_and_depthwise_layers_with_a_live_tap_take_the_product():
    def routed(xs, ws, stride, padding, groups=1):
        x, w = torch.randn(xs, requires_grad=True), torch.randn(ws)
        with convgrad.FastWeightGrads():
            return F.conv2d(x, w, None, stride, padding, 1, groups).grad_fn.name()
    assert "OnePixelConv" in routed((2, 4, 1, 1), (6, 4, 3, 3), 1, 1)
    assert "OnePixelConv" in routed((2, 4, 1, 1), (4, 1, 3, 3), 1, 1, groups=4)
    assert "SmallConv" in routed((2, 4, 1, 1), (6, 2, 3, 3), 1, 1, groups=2)  # grouped
    assert "SmallConv" in routed((2, 4, 1, 1), (6, 4, 1, 1), 3, 1)  # its one tap reads padding
    assert "SmallConv" in routed((2, 4, 2, 2), (6, 4, 3, 3), 1, 1)  # four pixels


# 1×1 kernels without padding: (input, weight, stride)
POINTWISE = [((4, 8, 2, 2), (6, 8, 1, 1), 1),   # MobileNetV2's expansions and projections
             ((4, 8, 2, 2), (6, 8, 1, 1), 2),   # ResNet-18's last shortcut: one input pixel
             ((3, 5, 3, 4), (7, 5, 1, 1), (2, 3))]


@pytest.mark.parametrize("xs, ws, stride", POINTWISE)
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_pointwise_convolution_is_a_linear_layer_with_pytorchs_gradients(xs, ws, stride, layout,
                                                                         monkeypatch):
    taken = []
    linear = convgrad.pointwise_conv
    monkeypatch.setattr(convgrad, "pointwise_conv", lambda *a: taken.append(1) or linear(*a))
    torch.manual_seed(0)
    x = torch.randn(xs, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    w = torch.randn(ws, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_()
    b = torch.randn(ws[0], dtype=torch.float64, requires_grad=True)
    with convgrad.FastWeightGrads():
        got = F.conv2d(x, w, b, stride)
        F.conv2d(x, w, b, 2, padding=1)  # padded: not a linear layer
    assert taken == [1]
    expected = F.conv2d(x, w, b, stride)
    torch.testing.assert_close(got, expected)
    grad = torch.randn_like(expected)
    for g, e in zip(torch.autograd.grad(got, (x, w, b), grad),
                    torch.autograd.grad(expected, (x, w, b), grad)):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("kernel, groups", [(3, 1), (3, 8), (1, 1)])
def test_an_in_place_activation_may_follow(kernel, groups):
    """A BatchNorm-folded model runs ReLU in place on a convolution's output."""
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Conv2d(8, 8, kernel, padding=kernel // 2, groups=groups),
                           nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(8, 2)).double()
    x = torch.randn(4, 8, 1, 1, dtype=torch.float64)
    expected = grads(layers, x, fast=False)
    got = grads(layers, x, fast=True)
    for n in expected:
        torch.testing.assert_close(got[n], expected[n], msg=n)


def test_a_kernel_larger_than_its_input_fails_as_outside_the_mode():
    """Both sides of the output negative multiply to one pixel: still PyTorch's error."""
    x, w = torch.randn(2, 4, 1, 1, requires_grad=True), torch.randn(6, 4, 3, 3)
    assert convgrad.output_pixels(x, w, 1, 0, 1) == 0
    with convgrad.FastWeightGrads(), pytest.raises(RuntimeError, match="[Kk]ernel size"):
        F.conv2d(x, w)


@pytest.mark.parametrize("size, stride", [(2, 1), (4, 2)])
def test_a_pointwise_output_keeps_its_inputs_layout(size, stride):
    x, w = torch.randn(2, 4, size, size, requires_grad=True), torch.randn(3, 4, 1, 1)
    with convgrad.FastWeightGrads():
        plain = F.conv2d(x, w, stride=stride)
        last = F.conv2d(x.contiguous(memory_format=torch.channels_last), w, stride=stride)
    assert plain.shape[-2:] == (2, 2)
    assert plain.is_contiguous() and last.is_contiguous(memory_format=torch.channels_last)
