import copy
import dataclasses
import json
import subprocess
import sys
import warnings
import zlib

import pytest
import torch
from torch import nn
from torch.ao.quantization.fake_quantize import FakeQuantizeBase

from approxlib import measure
from approxlib import models
from approxlib import prune
from approxlib import quantize
from approxlib import store
from approxlib.config import ModelConfig, PruneConfig, QuantConfig


@pytest.mark.parametrize("method", ["int8-dynamic", "int8-static"])
def test_an_int8_checkpoint_loads_without_torch_warnings(tmp_path, method):
    """torch warns once per process when a checkpoint's quantized tensors are rebuilt; a fresh
    process (a Dask worker, `approx evaluate`, benchmarks/latency.py) loading one first showed
    that note to the user."""
    cfg = ModelConfig("resnet18", 10, 1)
    model = models.build(cfg).eval()
    q = (quantize.quantize(model, QuantConfig(method)) if method == "int8-dynamic"
         else quantize.quantize_static(model, torch.rand(8, 1, 28, 28)))
    store.save_checkpoint(q, tmp_path / "q.pt", cfg, method)
    load = "import sys; from approxlib import store; store.load_checkpoint(sys.argv[1])"
    res = subprocess.run([sys.executable, "-c", load, str(tmp_path / "q.pt")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "quantized tensor creation functions" not in res.stderr, res.stderr[-2000:]


def test_int8_dynamic_quantizes_the_classifier_only():
    torch.manual_seed(0)
    cfg = ModelConfig("resnet18", 10, 1)
    model = models.build(cfg).eval()
    q = quantize.quantize(model, QuantConfig("int8-dynamic"))
    assert type(q.fc).__module__.startswith("torch.ao.nn.quantized")
    assert isinstance(q.conv1, nn.Conv2d)  # convolutions stay fp32, as in the original
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        ref, out = model(x), q(x)
    snr_db = 10 * torch.log10(ref.pow(2).mean() / (ref - out).pow(2).mean())
    assert snr_db > 30  # int8 classifier with per-tensor scale: ~40 dB here


def test_quantized_checkpoint_reloads_with_weights_only(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig("resnet18", 10, 1)
    model = prune.prune_(models.build(cfg).eval(), PruneConfig(0.5))
    prune.make_permanent_(model)
    q = quantize.quantize(model, QuantConfig("int8-dynamic"))
    path = tmp_path / "q.pt"
    size = store.save_checkpoint(q, path, cfg, "int8-dynamic")
    with warnings.catch_warnings():  # torch's note on rebuilding a quantized tensor, which
        # store.load_checkpoint filters too (shown once a process: where this test ran first)
        warnings.filterwarnings("ignore", message="TypedStorage is deprecated")
        raw = torch.load(path, weights_only=True)  # no pickled module: plain tensors and values
    assert raw["quant"] == "int8-dynamic"
    back, info = store.load_checkpoint(path, expect=cfg)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(back(x), q(x))
    # Zeros survive int8 (symmetric scale: zero maps to zero), so sparsity is kept.
    assert measure.count_params(back)[1] == measure.count_params(q)[1]
    float_size = store.save_checkpoint(model, tmp_path / "f.pt", cfg)
    assert size < float_size  # only the 512×10 classifier shrinks: 3 bytes per weight
    assert float_size - size < 512 * 10 * 4


def test_packed_layout_is_bounded_and_type_checked():
    """Issue 14: a 64 MiB layout JSON took 2.4 GiB; it is capped (1 MiB) before parsing."""
    def packed(text: bytes, blobs=None) -> dict:
        layout = torch.frombuffer(bytearray(zlib.compress(text)), dtype=torch.uint8)
        return {"layout": layout, "blobs": {} if blobs is None else blobs}
    huge = b'{"tensors":{},"versions":{},"pad":[' + b"[]," * (1 << 20) + b"[]]}"
    for bad in (packed(huge), packed(b'{"tensors":{"a":{"tensor":["int8",0,' + b"9" * 5000
                                     + b']}},"versions":{}}'),
                {"layout": [1, 2], "blobs": {}}, ["not", "a", "dict"],
                packed(b'{"tensors":{},"versions":{}}', blobs={"int8": "text"}),
                packed(b'{"tensors":{"w":{"qpc":["int8",0,8],"qtype":"qint8","shape":[4,2],'
                       b'"axis":0,"scales":["float32",0,2],"zero_points":null}},"versions":{}}',
                       blobs={"int8": torch.zeros(8, dtype=torch.int8),
                              "float32": torch.ones(2)})):
        with pytest.raises(quantize.PackError) as e:
            quantize.unpack_state(bad)
        assert "\n" not in str(e.value)


def _fine_tune(prepared: nn.Module, steps: int = 2) -> nn.Module:
    """A few SGD steps on random images, handled as `train.train` handles a model (channels_last,
    the best epoch's state dict copied and loaded back, eval, back to the CPU)."""
    model = prepared.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    for _ in range(steps):
        x = torch.rand(8, 1, 32, 32).contiguous(memory_format=torch.channels_last)
        loss = nn.functional.cross_entropy(model(x), torch.randint(0, 10, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    model.load_state_dict(copy.deepcopy(model.state_dict()))
    return model.cpu().to(memory_format=torch.contiguous_format)


def _module_types(model: nn.Module) -> dict[str, str]:
    return {n: f"{type(m).__module__}.{type(m).__qualname__}" for n, m in model.named_modules()}


@pytest.fixture(scope="module", params=["resnet18", "mobilenetv2"])
def qat(request):
    """(float model, its QAT-fine-tuned INT8 model) for each study model, 1 channel, 32×32."""
    torch.manual_seed(0)
    float_model = models.build(ModelConfig(request.param, 10, 1, "imagenet"))
    prepared = quantize.prepare_qat(float_model)
    assert prepared.training
    return float_model, quantize.convert_qat(_fine_tune(prepared))


def test_qat_model_loads_into_the_static_int8_skeleton(qat):
    """The store saves a QAT model as "int8-static": rebuild's skeleton must be its exact shape."""
    float_model, converted = qat
    assert not converted.training
    skeleton = quantize.rebuild(float_model, "int8-static")
    assert skeleton.code == converted.code  # same graph: same fusions, same quantize points
    assert _module_types(skeleton) == _module_types(converted)
    skeleton.load_state_dict(converted.state_dict(), strict=True)
    x = torch.rand(16, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(skeleton(x), converted(x))


def test_qat_model_survives_the_packed_checkpoint(qat, tmp_path, request):
    float_model, converted = qat
    back = quantize.rebuild(float_model, "int8-static")
    back.load_state_dict(quantize.unpack_state(quantize.pack_state(converted.state_dict())), strict=True)
    x = torch.rand(16, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x), converted(x))
    # saved under its own name (the pipeline saves it as int8-static): packed as static INT8
    # is, and loaded to the same outputs (before the quantization classes: a traceback)
    cfg = ModelConfig(request.node.callspec.params["qat"], 10, 1, "imagenet")
    store.save_checkpoint(converted, tmp_path / "qat.pt", cfg, "int8-qat")
    loaded, info = store.load_checkpoint(tmp_path / "qat.pt", expect=cfg)
    assert info["quant"] == "int8-qat" and torch.load(tmp_path / "qat.pt")["packed"]
    with torch.no_grad():
        assert torch.equal(loaded(x), converted(x))


def test_qat_trains_through_fake_quantization():
    torch.manual_seed(0)
    float_model = models.build(ModelConfig("resnet18", 10, 1, "imagenet"))
    prepared = quantize.prepare_qat(float_model)
    layers = [m for m in prepared.modules() if hasattr(m, "weight_fake_quant")]
    # every convolution (BN folded in: ConvBn2d / ConvBnReLU2d) and the classifier
    assert len(layers) == sum(isinstance(m, (nn.Conv2d, nn.Linear))
                              for m in float_model.modules()) == 21
    with pytest.raises(ValueError, match="has not run"):
        quantize.convert_qat(prepared)  # no ranges yet: torch would give all-zero logits
    x = torch.rand(8, 1, 32, 32)
    nn.functional.cross_entropy(prepared(x), torch.randint(0, 10, (8,))).backward()
    for m in layers:  # the straight-through estimator passes gradients to the float weights
        assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0
        assert m.weight_fake_quant.scale.numel() == m.weight.shape[0]  # per-channel ranges
    # The logits themselves come out of a fake quantizer: on its uint8 grid.
    prepared.eval()
    with torch.no_grad():
        out = prepared(x)
    last = dict(prepared.named_modules())[prepared.graph.output_node().args[0].target]
    q = out / last.scale + last.zero_point
    assert torch.allclose(q, q.round(), atol=1e-3) and not torch.allclose(out, out.round())


def test_qat_ranges_move_in_train_mode_only():
    """A validation pass (eval mode) must not fit the activation ranges to validation images;
    the next training step moves them again."""
    torch.manual_seed(0)
    prepared = quantize.prepare_qat(models.build(ModelConfig("mobilenetv2", 10, 1, "imagenet")))
    x = torch.rand(8, 1, 32, 32)
    with torch.no_grad():
        prepared(x)

    def ranges():
        return [m.scale.clone() for m in prepared.modules()
                if isinstance(m, FakeQuantizeBase) and not m.is_per_channel]  # activations
    before = ranges()
    prepared.eval()
    with torch.no_grad():
        prepared(100 * x)  # far outside what the observers have seen
    assert all(torch.equal(a, b) for a, b in zip(before, ranges()))
    assert prepared.train() is prepared
    with torch.no_grad():
        prepared(100 * x)
    assert any(not torch.equal(a, b) for a, b in zip(before, ranges()))


def test_qat_freeze_schedule_stops_bn_statistics_and_ranges_at_its_steps():
    """After `freeze_schedule`'s steps, BatchNorm's running statistics and every range (weights
    and activations) stay put through further training steps and `.train()` calls."""
    torch.manual_seed(0)
    prepared = quantize.prepare_qat(models.build(ModelConfig("mobilenetv2", 10, 1, "imagenet")))
    hook = quantize.freeze_schedule(10, bn=0.2, ranges=0.3)  # after steps 2 and 3
    opt = torch.optim.SGD(prepared.parameters(), lr=0.01)
    bns = [m.bn for m in prepared.modules() if hasattr(m, "freeze_bn")]
    assert bns  # MobileNetV2's conv+BN pairs train fused

    def stats():
        return [b.running_mean.clone() for b in bns]

    def ranges():
        return [m.scale.clone() for m in prepared.modules() if isinstance(m, FakeQuantizeBase)]

    def step(scale=1.0):
        x = scale * torch.rand(8, 1, 32, 32)
        loss = nn.functional.cross_entropy(prepared(x), torch.randint(0, 10, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        hook(prepared)
    step()
    moving = stats()
    step()  # step 2: BN freezes
    assert any(not torch.equal(a, b) for a, b in zip(moving, stats()))
    frozen_stats, moving_ranges = stats(), ranges()
    prepared.eval()
    prepared.train()
    step(100.0)  # step 3: ranges still move, then freeze
    assert all(torch.equal(a, b) for a, b in zip(frozen_stats, stats()))
    assert any(not torch.equal(a, b) for a, b in zip(moving_ranges, ranges()))
    frozen_ranges = ranges()
    prepared.eval()
    prepared.train()  # must not switch the observers back on
    step(1000.0)
    assert all(torch.equal(a, b) for a, b in zip(frozen_ranges, ranges()))
    assert all(torch.equal(a, b) for a, b in zip(frozen_stats, stats()))
    assert all(not b.training for b in bns) and prepared.training


def test_int8_loads_copy_one_skeleton_and_leave_the_random_state_alone(tmp_path):
    """Int8 checkpoints load into a copy of one cached skeleton per architecture: each load is
    its own model with its own weights, and a load draws nothing from the global generator, so
    whether it hits the cache cannot change what a later draw gives."""
    cfg = ModelConfig("resnet18", 10, 1)
    x, calib = torch.rand(4, 1, 28, 28), torch.rand(16, 1, 28, 28)
    sources, paths = [], []
    for seed in (0, 1):
        q = quantize.quantize_static(models.build(cfg, seed=seed).eval(), calib)
        paths.append(tmp_path / f"q{seed}.pt")
        store.save_checkpoint(q, paths[-1], cfg, "int8-static")
        sources.append(q)
    store._int8_skeleton.cache_clear()
    state = torch.get_rng_state()
    loaded = [store.load_checkpoint(p, expect=cfg)[0] for p in paths]
    assert torch.equal(torch.get_rng_state(), state)
    assert store._int8_skeleton.cache_info().hits == 1  # the second load copied the first's
    skeleton = store._int8_skeleton(cfg, "int8-static", "{}")
    with torch.no_grad():
        before = skeleton(x)
        outs = [m(x) for m in loaded]
        assert torch.equal(outs[0], sources[0](x)) and torch.equal(outs[1], sources[1](x))
        assert not torch.equal(outs[0], outs[1])
        store.load_checkpoint(paths[1], expect=cfg)
        assert torch.equal(skeleton(x), before)  # loads fill copies, never the skeleton
        assert torch.equal(loaded[0](x), outs[0])  # nor a model loaded before


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory):
    """A static-INT8 MobileNetV2 checkpoint (built once for the crafted cases below)."""
    cfg = ModelConfig("mobilenetv2", 10, 1)
    q = quantize.quantize_static(models.build(cfg, seed=0).eval(), torch.rand(8, 1, 28, 28))
    path = tmp_path_factory.mktemp("int8") / "q.pt"
    store.save_checkpoint(q, path, cfg, "int8-static")
    return path


@pytest.mark.parametrize("shapes", [torch.tensor(0), [], 0, "", False])
def test_int8_checkpoint_with_non_dict_shapes_is_one_checkpoint_error(tmp_path, int8_file,
                                                                       shapes):
    """A falsy non-dict `shapes` (a zero tensor passes `if shapes:`) is refused before any
    structure is built, as every other malformed checkpoint is: one line."""
    obj = torch.load(int8_file, weights_only=True)
    obj["shapes"] = shapes
    torch.save(obj, tmp_path / "crafted.pt")
    with pytest.raises(store.CheckpointError, match="invalid layer sizes") as e:
        store.load_checkpoint(tmp_path / "crafted.pt")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", ["mobilenetv2", "vit_h_14"])
def test_int8_checkpoint_holding_too_little_is_refused_before_its_structure_is_built(
        tmp_path, int8_file, name, monkeypatch):
    """An int8 structure is built for real: a file holding only a classifier (here 51 KB, of
    the architecture it names or of ViT-H/14's 632 M weights) is one line before that build,
    which took 6.3 GB for ViT-H/14."""
    def built(*args):
        raise AssertionError("the int8 structure was built")
    monkeypatch.setattr(store, "_int8_structure", built)
    monkeypatch.setattr(store, "_int8_skeleton", built)
    cfg = ModelConfig(name, 10, 1)
    head = "heads.head" if name == "vit_h_14" else "classifier.1"  # both read 1,280 features
    obj = torch.load(int8_file, weights_only=True)
    state = {f"{head}.weight": torch.zeros(10, 1280), f"{head}.bias": torch.zeros(10)}
    shared = torch.zeros(10_000)  # 40 KB, viewed 300 times: counted once
    state.update({f"x{i}": shared[i:] for i in range(300)})
    obj.update(model=dataclasses.asdict(cfg), quant="int8-dynamic", packed=False,
               state_dict=state)
    torch.save(obj, tmp_path / "crafted.pt")
    with pytest.raises(store.CheckpointError, match="fewer than the .* weights") as e:
        store.load_checkpoint(tmp_path / "crafted.pt")
    assert "\n" not in str(e.value)
    # a packed (static INT8) file is counted as stored, before it is unpacked: a copy per
    # tensor made its unpacked bytes many times the file's (the review's 419 KB MobileNetV2)
    monkeypatch.setattr(quantize, "unpack_state", built)
    obj = torch.load(int8_file, weights_only=True)
    obj["model"] = dataclasses.asdict(ModelConfig("vit_h_14", 10, 1))
    torch.save(obj, tmp_path / "packed.pt")
    with pytest.raises(store.CheckpointError, match="fewer than the 629,739,520 weights"):
        store.load_checkpoint(tmp_path / "packed.pt")


def test_packed_slices_may_not_overlap():
    """Each packed tensor is copied out of its blob: slices taking more than the blob holds
    (overlapping) would unpack to many times the file (a review, 2026-12-07)."""
    packed = quantize.pack_state({"a": torch.arange(4.0), "b": torch.arange(4.0) + 4})
    assert torch.equal(quantize.unpack_state(packed)["b"], torch.arange(4.0) + 4)
    layout = json.loads(zlib.decompress(packed["layout"].numpy().tobytes()))
    layout["tensors"]["c"] = layout["tensors"]["b"] = layout["tensors"]["a"]
    packed["layout"] = torch.tensor(list(zlib.compress(json.dumps(layout).encode())),
                                    dtype=torch.uint8)
    with pytest.raises(quantize.PackError, match="float32 slices overlap: 12 elements from a "
                       "blob of 8"):
        quantize.unpack_state(packed)


def _stored_bits(model: nn.Module) -> dict[str, set[int]]:
    """Bits per stored weight of the model's conv and linear layers, as its tensors hold them."""
    bits: dict[str, set[int]] = {}
    for m in model.modules():
        w = getattr(m, "weight", None)
        name = type(m).__name__
        kind = "conv" if "Conv" in name else "fc" if "Linear" in name else None
        if w is None or kind is None:
            continue
        w = w() if callable(w) else w  # quantized modules unpack their weight
        bits.setdefault(kind, set()).add(w.element_size() * 8)
    return bits


@pytest.mark.parametrize("quant", ["none", "int8-dynamic", "int8-static"])
def test_the_weight_bits_column_is_what_each_quantization_stores(quant):
    """results.csv's `weight_bits` ("conv/fc") against the weights of a model so quantized
    (static INT8 once read 32/32)."""
    model = models.build(ModelConfig("resnet18", 10, 1), seed=0).eval()
    q = (quantize.quantize_static(model, torch.rand(8, 1, 28, 28)) if quant == "int8-static"
         else quantize.quantize(model, QuantConfig(quant)))
    conv, fc = quantize.METHODS[quant].bits.split("/")
    assert _stored_bits(q) == {"conv": {int(conv)}, "fc": {int(fc)}}


def test_the_weight_bits_column_of_qat_is_what_it_stores(qat):
    conv, fc = quantize.METHODS["int8-qat"].bits.split("/")
    assert _stored_bits(qat[1]) == {"conv": {int(conv)}, "fc": {int(fc)}}


def test_every_quantization_a_config_accepts_is_registered():
    from approxlib import quants
    assert set(quantize.METHODS) == set(quants.keys())
    assert all(m.name == name for name, m in quantize.METHODS.items())


def test_dynamic_int8_that_cannot_run_or_changes_nothing_is_said(caplog):
    """A new user's walkthrough (2026-12-07): `quantize` wrote a Swin file no command could
    evaluate (its attention reads a Linear's weight as a tensor), and left SqueezeNet, which
    has no Linear layer, as it was without a word."""
    import logging
    from approxlib.config import ConfigError
    swin = models.build(ModelConfig("swin_t", 10, 1), seed=0)
    with pytest.raises(ConfigError, match=r"^dynamic INT8 of SwinTransformer does not run "
                       r"\(TypeError: linear\(\): argument 'weight'") as e:
        quantize.quantize(swin, QuantConfig("int8-dynamic"))
    assert "\n" not in str(e.value)
    with caplog.at_level(logging.WARNING, "approxlib"):
        quantize.quantize(models.build(ModelConfig("squeezenet1_1", 10, 1), seed=0),
                          QuantConfig("int8-dynamic"))
    assert "SqueezeNet has no Linear layer: dynamic INT8" in caplog.text


def test_packed_blobs_hold_their_bytes_and_slices_are_not_negative():
    """Attack (2026-12-07): a 2.7 KB file whose 1-byte blob was expanded to 3 GB made `evaluate`
    allocate 3.7 GB; negative slice lengths took back what the overlap check had counted."""
    packed = quantize.pack_state({"a": torch.arange(4.0)})
    blob = packed["blobs"]["float32"]
    layout = json.loads(zlib.decompress(packed["layout"].numpy().tobytes()))

    def with_layout(tensors):
        text = zlib.compress(json.dumps({**layout, "tensors": tensors}).encode())
        return {"layout": torch.tensor(list(text), dtype=torch.uint8), "blobs": {"float32": blob}}
    with pytest.raises(quantize.PackError, match=r"blob float32 claims 3000000000 elements "
                       r"over 4 bytes"):
        quantize.unpack_state({**packed, "blobs": {"float32": torch.zeros(1).expand(3 * 10**9)}})
    pair = {"x": {"tensor": ["float32", 0, 4], "shape": [4]},
            "y": {"tensor": ["float32", 4, -4], "shape": [0]}}
    with pytest.raises(quantize.PackError, match=r"slice 4\+-4 outside a blob of 4"):
        quantize.unpack_state(with_layout(pair))
