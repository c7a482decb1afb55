import zlib

import pytest
import torch
from torch import nn

from approxlib import measure as ME
from approxlib import models as M
from approxlib import prune as P
from approxlib import quantize as Q
from approxlib import store as S
from approxlib.config import ModelConfig, PruneConfig, QuantConfig


def test_int8_dynamic_quantizes_the_classifier_only():
    torch.manual_seed(0)
    cfg = ModelConfig("resnet18", 10, 1)
    model = M.build(cfg).eval()
    q = Q.quantize(model, QuantConfig("int8-dynamic"))
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
    model = P.prune_(M.build(cfg).eval(), PruneConfig(0.5))
    P.make_permanent_(model)
    q = Q.quantize(model, QuantConfig("int8-dynamic"))
    path = tmp_path / "q.pt"
    size = S.save_checkpoint(q, path, cfg, "int8-dynamic")
    raw = torch.load(path, weights_only=True)  # no pickled module: plain tensors and values
    assert raw["quant"] == "int8-dynamic"
    back, info = S.load_checkpoint(path, expect=cfg)
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(back(x), q(x))
    # Zeros survive int8 (symmetric scale: zero maps to zero), so sparsity is kept.
    assert ME.count_params(back)[1] == ME.count_params(q)[1]
    float_size = S.save_checkpoint(model, tmp_path / "f.pt", cfg)
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
        with pytest.raises(Q.PackError) as e:
            Q.unpack_state(bad)
        assert "\n" not in str(e.value)
