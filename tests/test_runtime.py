"""Section G's building blocks: static INT8, channel pruning, ONNX Runtime, latency and FLOPs."""
import math
import time

import pytest
import torch
from torch import nn

from approxlib import data
from approxlib import measure
from approxlib import models
from approxlib import quantize
from approxlib import runtime
from approxlib import runtimes
from approxlib import store
from approxlib import structured
from approxlib.config import ChannelConfig, DataConfig, MeasureConfig, ModelConfig, TrainConfig
from approxlib import train


@pytest.fixture(scope="module")
def trained(data_root):
    """A ResNet-18 trained for one short epoch on real images, and real held-out images."""
    splits = data.load(DataConfig("fashion-mnist", 1500, 200), data_root)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, schedule="onecycle", warmup=0.3)
    model, _ = train.train(models.build(ModelConfig("resnet18", 10, 1), seed=0), splits, cfg, "cpu",
                           progress=False)
    return model.eval(), splits


def snr_db(ref: torch.Tensor, approx: torch.Tensor) -> float:
    return 10 * math.log10(ref.pow(2).mean().item() / (ref - approx).pow(2).mean().item())


def test_static_int8_logits_stay_close_to_float(trained, tmp_path):
    """Per-channel 8-bit weights and 8-bit activations add roughly −40 to −50 dB of noise per
    layer; over ResNet-18's 20 quantized layers the logits should keep an SNR well above 20 dB
    (a wrong scale or a missed calibration gives < 10 dB)."""
    model, splits = trained
    calib = data.to_float(splits.train_x[:256])
    x = data.to_float(splits.test_x[:500])
    q = quantize.quantize_static(model, calib)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert snr_db(ref, out) > 20
    # saved as a state dict, rebuilt without pickled modules, identical outputs
    mc = ModelConfig("resnet18", 10, 1)
    store.save_checkpoint(q, tmp_path / "q.pt", mc, "int8-static")
    q2, info = store.load_checkpoint(tmp_path / "q.pt")
    assert info["quant"] == "int8-static"
    with torch.no_grad():
        assert torch.equal(q2(x), out)
    dense = tmp_path / "f.pt"
    store.save_checkpoint(model, dense, mc)
    assert dense.stat().st_size / (tmp_path / "q.pt").stat().st_size > 3.9


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv2"])
def test_channel_pruning_makes_a_smaller_dense_model_that_reloads(name, tmp_path):
    mc = ModelConfig(name, 10, 1)
    model = models.build(mc, seed=0).eval()
    before = sum(p.numel() for p in model.parameters())
    structured.channel_prune_(model, ChannelConfig(0.5), 1)
    after = sum(p.numel() for p in model.parameters())
    # the count follows from the layer sizes alone: recount it from `shapes`
    recount = 0
    sizes = structured.shapes(model)
    mods = dict(model.named_modules())
    for layer, size in sizes.items():
        m = mods[layer]
        if isinstance(m, nn.Conv2d):
            cin, cout, groups = size
            recount += cout * (cin // groups) * math.prod(m.kernel_size) + (cout if m.bias is not None else 0)
        elif isinstance(m, nn.BatchNorm2d):
            recount += 2 * size[0]
        else:
            recount += size[0] * size[1] + size[1]
    assert after == recount and after < 0.5 * before
    first, last = structured.stem_and_classifier(model)
    assert first.in_channels == 1 and last.out_features == 10  # stem input and classes kept
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1:
            assert m.groups == m.in_channels == m.out_channels  # depthwise stays depthwise
    x = torch.rand(3, 1, 28, 28)
    store.save_checkpoint(model, tmp_path / "c.pt", mc, shapes=sizes)
    again, info = store.load_checkpoint(tmp_path / "c.pt")
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    assert info["shapes"] == sizes


def test_onnx_runtime_matches_pytorch(trained, tmp_path):
    model, splits = trained
    runtime.export_onnx(model, tmp_path / "m.onnx", 1, 28)
    ort = runtime.OrtModel(tmp_path / "m.onnx")
    x = data.to_float(splits.test_x[:64])
    with torch.no_grad():
        ref = model(x)
    out = ort(x)
    assert torch.allclose(out, ref, rtol=1e-4, atol=1e-4)
    assert torch.equal(runtime.predict(ort, splits.test_x[:300]), runtime.predict(model, splits.test_x[:300]))
    # ONNX Runtime's own static INT8 stays close too (same bound and reason as PyTorch's)
    runtime.quantize_onnx(tmp_path / "m.onnx", tmp_path / "q.onnx", data.to_float(splits.train_x[:128]))
    assert snr_db(ref, runtime.OrtModel(tmp_path / "q.onnx")(x)) > 20
    with pytest.raises(store.CheckpointError, match="cannot load ONNX model"):
        (tmp_path / "bad.onnx").write_bytes(b"not onnx")
        runtime.OrtModel(tmp_path / "bad.onnx")


def test_latency_and_flops_are_sane_on_a_tiny_model():
    conv = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU())
    assert measure.flops(conv, (1, 10, 10)) == 2 * 8 * 8 * 8 * 9  # 2 × outputs × kernel taps
    cfg = MeasureConfig(threads=1, latency_warmup=2, latency_min_time=0.05, throughput_batch=64)
    t = measure.latency_ms(conv, (1, 10, 10), cfg)
    assert 0 < t["latency_ms"] < 1000 and 0 < t["latency_bs64_ms"] < 10_000
    assert t["throughput_img_s"] == pytest.approx(64 / t["latency_bs64_ms"] * 1e3)
    t2 = measure.latency_ms(lambda x: x * 2, (1, 10, 10), cfg)  # any callable (ONNX Runtime wrapper)
    assert t2["latency_ms"] > 0
    assert measure.peak_gflops(1, n=256, repeats=2) > 0.5
    # each runtime's own rate (ONNX Runtime's MLAS ran 2.2x MKL's on an AVX-512 EPYC): a
    # ceiling from PyTorch alone was exceeded by ONNX Runtime's float32 models
    assert runtime.matmul_gflops(1, n=256, repeats=2) > 0.5
    assert set(runtime.matmul_rates(1)) == set(runtimes.RUNTIMES)


def test_interleaved_timing_measures_each_model_in_turns():
    def busy(seconds):  # a model whose every call costs `seconds` of this CPU
        def call(x):
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                pass
        return call
    cfg = MeasureConfig(threads=1, latency_warmup=1, latency_min_time=0.08, throughput_batch=8)
    t = measure.interleaved_latency({"fast": busy(0.001), "slow": busy(0.003)}, (1, 4, 4), cfg,
                                    rounds=4)
    assert set(t) == {"fast", "slow"} and t["fast"]["rounds"] == t["slow"]["rounds"] == 4
    # a call lasts at least its cost; the upper bounds leave room for another process on the
    # same core, which preempts a longer call more often (the parallel suite runs up to two per
    # core: 1.00 and 4.61 ms were seen, and 4.5 for the ratio); a swapped or shared measurement
    # gives a ratio near 1/3 or 1
    assert 1.0 <= t["fast"]["latency_ms"] < 2.5 and 3.0 <= t["slow"]["latency_ms"] < 7.5
    assert 2.0 < t["slow"]["latency_bs64_ms"] / t["fast"]["latency_bs64_ms"] < 6.0
    assert t["fast"]["latency_iqr_ms"] >= 0
    assert t["fast"]["throughput_img_s"] == pytest.approx(8 / t["fast"]["latency_bs64_ms"] * 1e3)


@pytest.fixture(scope="module")
def mbv2_int8():
    """An untrained MobileNetV2 (17k channels over 2.2M weights: the per-channel bookkeeping is
    largest here) statically quantized on random images, and its float original."""
    torch.manual_seed(0)
    model = models.build(ModelConfig("mobilenetv2", 10, 1), seed=0).eval()
    return model, quantize.quantize_static(model, torch.rand(64, 1, 32, 32))


def test_packed_int8_checkpoint_is_lossless_and_near_a_quarter(mbv2_int8, tmp_path):
    model, q = mbv2_int8
    mc = ModelConfig("mobilenetv2", 10, 1)
    store.save_checkpoint(q, tmp_path / "q.pt", mc, "int8-static")
    q2, _ = store.load_checkpoint(tmp_path / "q.pt")
    sd, sd2 = q.state_dict(), q2.state_dict()
    assert sd.keys() == sd2.keys()
    for k, v in sd.items():
        if isinstance(v, torch.Tensor) and v.is_quantized:
            assert torch.equal(v.int_repr(), sd2[k].int_repr()), k
            assert torch.equal(v.q_per_channel_scales(), sd2[k].q_per_channel_scales()), k
            assert torch.equal(v.q_per_channel_zero_points(), sd2[k].q_per_channel_zero_points())
        elif isinstance(v, torch.Tensor):
            assert torch.equal(v, sd2[k]), k
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(q(x), q2(x))
    # torch.save's own layout of the same state dict (float64 scales, int64 zero points) is the
    # bound to beat; one int8 byte per weight plus float32 scale and bias per channel is the floor
    plain = tmp_path / "plain.pt"
    torch.save(sd, plain)
    packed = (tmp_path / "q.pt").stat().st_size
    assert packed < 0.92 * plain.stat().st_size
    weights = sum(v.numel() for v in sd.values() if isinstance(v, torch.Tensor) and v.is_quantized)
    assert packed < 1.08 * weights


def test_packed_layout_damage_is_one_clear_error(mbv2_int8, tmp_path):
    _, q = mbv2_int8
    packed = quantize.pack_state(q.state_dict())
    for broken in (
        {**packed, "layout": packed["layout"][:-5]},                       # truncated layout
        {**packed, "blobs": {k: v[:-1] for k, v in packed["blobs"].items()}},  # short data
        {**packed, "blobs": {}},                                           # no data
        {"layout": torch.zeros(8, dtype=torch.uint8), "blobs": packed["blobs"]},  # not zlib
    ):
        with pytest.raises(quantize.PackError):
            quantize.unpack_state(broken)
    mc = ModelConfig("mobilenetv2", 10, 1)
    path = tmp_path / "q.pt"
    store.save_checkpoint(q, path, mc, "int8-static")
    obj = torch.load(path, weights_only=True)
    obj["state_dict"]["blobs"]["int8"] = obj["state_dict"]["blobs"]["int8"][:100]
    torch.save(obj, path)
    with pytest.raises(store.CheckpointError, match="invalid packed state dict"):
        store.load_checkpoint(path)


def test_predict_runs_channels_last_and_leaves_a_model_that_still_trains():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x = torch.randint(0, 256, (7, 1, 8, 8), dtype=torch.uint8)
    expected = model(data.to_float(x)).argmax(1)
    assert torch.equal(runtime.predict(model, x, batch_size=3), expected)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.is_inference() for p in model.parameters())
    model.train()(torch.rand(2, 1, 8, 8)).sum().backward()  # inference tensors would refuse
    assert model[0].weight.grad is not None
