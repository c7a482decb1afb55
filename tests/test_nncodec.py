"""NNCodec (MPEG NNC) as section F's reference codec: run through its own environment on a small
real model; what cannot run is one line."""
import pytest
import torch

from approxlib import nncodec, pipeline
from approxlib.compress import skeleton
from approxlib.config import ConfigError, ModelConfig, load_profile
from approxlib.models import build, prunable
from approxlib.store import CheckpointError

MC = ModelConfig("mobilenet_v3_small", 10, 1, "imagenet")

needs_nncodec = pytest.mark.skipif(not nncodec.python().is_file(),
                                   reason="NNCodec's environment is missing: make nncodec")


@pytest.fixture(scope="module")
def sparse_model():
    model = build(MC, seed=0).eval()
    with torch.no_grad():
        for _, m in prunable(model):  # 80% zeros, as section F's gradually pruned models
            w = m.weight
            w[w.abs() < w.abs().flatten().quantile(0.8)] = 0
        model(torch.randn(8, 1, 32, 32))  # BatchNorm statistics that are not the identity
    return model


@needs_nncodec
def test_a_bitstream_decodes_to_the_folded_model_within_its_quantization_step(
        tmp_path, sparse_model):
    path = tmp_path / "m.nnc"
    result = nncodec.encode(sparse_model, path, qp=-38, qp_density=2, expect=MC)
    assert result["bytes"] == path.stat().st_size > 0 and result["encode_seconds"] > 0
    assert result["decode_seconds"] > 0
    decoded, info = nncodec.load(path, MC)
    folded = nncodec.float_state(sparse_model)
    state = decoded.state_dict()
    assert set(state) == set(folded) == set(skeleton(MC, "folded").state_dict())
    step = 2 ** (-38 / 4)
    zeros = kept = 0
    for name, want in folded.items():
        got = state[name].numpy()
        if name.endswith("weight") and want.ndim > 1:  # weights: the qp's uniform step
            assert abs(got - want).max() <= 2 * step, name
            zeros, kept = zeros + (want == 0).sum(), kept + (got[want == 0] == 0).sum()
    # dependent quantization gives a few pruned weights ±1 step (0.85% at qp −26, measured)
    assert kept / zeros >= 0.97
    assert info["meta"]["decode_seconds"] > 0
    # the weights are the model's: predictions agree with the float model's almost everywhere
    x = torch.randn(64, 1, 32, 32)
    with torch.no_grad():
        agree = (decoded(x).argmax(1) == sparse_model.eval()(x).argmax(1)).float().mean()
    assert agree >= 0.9
    # a coarser step, a smaller file
    coarse = nncodec.encode(sparse_model, tmp_path / "c.nnc", qp=-20, qp_density=2, expect=MC)
    assert coarse["bytes"] < result["bytes"]


@needs_nncodec
def test_a_damaged_bitstream_is_one_line(tmp_path, sparse_model):
    path = tmp_path / "m.nnc"
    nncodec.encode(sparse_model, path, qp=-26, qp_density=2, expect=MC)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="NNCodec"):
        nncodec.load(path, MC)
    with pytest.raises(CheckpointError, match="not found"):
        nncodec.load(tmp_path / "missing.nnc", MC)


def test_an_interpreter_that_is_not_nncodec_is_one_line(monkeypatch, tmp_path, sparse_model):
    import sys
    monkeypatch.setenv("APPROX_NNCODEC_PYTHON", sys.executable)  # no nncodec module here
    with pytest.raises(CheckpointError, match="NNCodec encode failed"):
        nncodec.encode(sparse_model, tmp_path / "m.nnc", qp=-26, qp_density=2, expect=MC)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_missing_environment_is_one_line_before_anything_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("APPROX_NNCODEC_PYTHON", str(tmp_path / "no" / "python"))
    p = load_profile("smoke")
    v = next(v for v in pipeline.plan(p, ["F"]) if v.codec == "nncodec")
    with pytest.raises(ConfigError, match="make nncodec"):
        pipeline.recipe(v, p)
    p = load_profile("smoke", {"nncodec_qps": []})
    assert not any(v.codec == "nncodec" for v in pipeline.plan(p, ["F"]))


@pytest.mark.parametrize("qps", [[-26, -26], [5], "x", [-26.5]])
def test_bad_nncodec_settings_are_refused(qps):
    with pytest.raises(ConfigError, match="nncodec"):
        load_profile("smoke", {"nncodec_qps": qps})
