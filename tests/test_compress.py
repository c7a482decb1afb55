"""The .apx codec: bit-exact round trips, exact accuracy after decoding, and a decoder that
rejects every damaged file with ApxError (never a crash, a hang or a huge allocation)."""
import copy
import dataclasses
import json
import pickle
import random
import struct
import warnings
import zlib

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from approxlib import compress, config
from approxlib import models
from approxlib import prune
from approxlib import share
from approxlib import store
from approxlib import train
from approxlib.config import CodecConfig, ModelConfig, ShareConfig

MC = ModelConfig("resnet18", 10, 1)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def same_bits(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(bits(sa[k]), bits(sb[k])) for k in sa)


@pytest.fixture(scope="module")
def compressed():
    """A ResNet-18 as Deep Compression leaves it: BatchNorm folded, 90% pruned, 4-bit shared."""
    model = share.fold_batchnorm(models.build(MC, seed=0))
    prune.magnitude_prune_(model, 0.9)
    share.share_weights_(model, ShareConfig(4, 4))
    share.round_biases_(model)
    return model.eval()


@pytest.fixture(scope="module")
def apx_bytes(compressed):
    data, _ = compress.encode(compressed, MC, CodecConfig("huffman"))
    return data


# ------------------------------------------------------------------------------ round trips

@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5000), max_size=400, unique=True), st.integers(1, 12))
def test_relative_indices_round_trip(positions, index_bits):
    pos = np.array(sorted(positions), dtype=np.int64)
    sym = compress.gaps_of(pos, index_bits)
    assert sym.max(initial=0) < (1 << index_bits)
    assert np.array_equal(compress.positions_of(sym, index_bits, len(pos), 5001), pos)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 300), max_size=500), st.integers(9, 16))
def test_fixed_and_huffman_streams_round_trip(symbols, width):
    s = np.array(symbols, dtype=np.int64)
    assert np.array_equal(compress.unpack_fixed(compress.pack_fixed(s, width), width, len(s)), s)
    data, table = compress.huffman_encode(s)
    assert np.array_equal(compress.huffman_decode(data, table, len(s), 301), s)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.0, 1.0), st.integers(1, 300),
       st.sampled_from(["sparse", "packed", "huffman"]))
def test_random_tensors_round_trip_bit_exact(seed, density, distinct, codec):
    """Any float32 values (−0.0, NaN, infinities included) come back bit for bit."""
    g = torch.Generator().manual_seed(seed)
    book = torch.randn(distinct, generator=g)
    book[0] = -0.0
    if distinct > 2:
        book[1], book[2] = float("nan"), float("inf")
    w = book[torch.randint(0, distinct, (7, 5, 3, 3), generator=g)]
    w[torch.rand(w.shape, generator=g) >= density] = 0.0
    writer = compress._Writer()
    rec = compress._encode_sparse(writer, w, CodecConfig(codec, index_bits=3))
    payload = writer.buf.getvalue()
    secs = [payload[o:o + n] for o, n, _ in writer.sections]
    out = compress._decode_tensor({"name": "w", **rec}, tuple(w.shape), torch.float32, secs)
    assert torch.equal(out.view(torch.int32), w.view(torch.int32))


@pytest.mark.parametrize("codec", ["sparse", "packed", "huffman"])
def test_model_round_trip_is_bit_exact(compressed, codec, tmp_path):
    assert tuple(compress.APX) == config.APX_CODECS  # every .apx codec a config accepts
    compress.save(compressed, tmp_path / "m.apx", CodecConfig(codec), MC)
    decoded, header = compress.load(tmp_path / "m.apx")
    assert header["structure"] == "folded" and header["codec"] == codec
    assert same_bits(compressed, decoded)


class _Same(torch.nn.Module):
    def forward(self, w):
        return w


def test_tensors_registered_in_another_order_are_written_in_the_architectures(compressed,
                                                                              tmp_path):
    """Codebook fine-tuning removes a parametrization, which registers the weight again after
    the bias (`approx compress` encoded such a model, and the file did not load)."""
    model = copy.deepcopy(compressed)
    for _, m in models.prunable(model):
        parametrize.register_parametrization(m, "weight", _Same())
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    assert list(model.state_dict()) != list(compressed.state_dict())
    data, _ = compress.encode(model, MC, CodecConfig("huffman"))
    assert data == compress.encode(compressed, MC, CodecConfig("huffman"))[0]
    assert same_bits(compressed, compress.decode(data)[0])


def test_plain_model_with_batchnorm_round_trips(tmp_path):
    model = models.build(ModelConfig("mobilenetv2", 10, 1), seed=1).eval()
    prune.magnitude_prune_(model, 0.5)
    compress.save(model, tmp_path / "m.apx", CodecConfig("sparse"), ModelConfig("mobilenetv2", 10, 1))
    decoded, header = compress.load(tmp_path / "m.apx")
    assert header["structure"] == "plain" and same_bits(model, decoded)


def test_a_folded_model_that_keeps_batchnorms_round_trips(tmp_path):
    """DenseNet's BatchNorms before a convolution stay when the others are folded: "any
    BatchNorm left means unfolded" called it plain, and `approx compress` failed at its end
    (a new user's walkthrough, 2026-12-07)."""
    mc = ModelConfig("densenet121", 10, 1)
    model = share.fold_batchnorm(models.build(mc, seed=1).eval())
    assert share.has_batchnorm(model)  # norm5 and every layer's first norm stay
    prune.magnitude_prune_(model, 0.5)
    data, _ = compress.encode(model, mc, CodecConfig("sparse"))
    decoded, header = compress.decode(data)
    assert header["structure"] == "folded" and same_bits(model, decoded)


def test_values_beyond_float16_stay_float32_without_a_warning(tmp_path):
    """A BatchNorm variance past float16's range (65,504) is stored in float32, bit for bit,
    and the trial cast that finds out prints no overflow warning to the user."""
    model = models.build(ModelConfig("mobilenetv2", 10, 1), seed=1).eval()
    model.features[0][1].running_var.fill_(1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compress.save(model, tmp_path / "m.apx", CodecConfig("sparse"),
                      ModelConfig("mobilenetv2", 10, 1))
    decoded, _ = compress.load(tmp_path / "m.apx")
    assert same_bits(model, decoded)


def test_decoded_accuracy_equals_encoded_accuracy(compressed, fmnist_test, tmp_path):
    x, y = fmnist_test[0][:1000], fmnist_test[1][:1000]
    compress.save(compressed, tmp_path / "m.apx", CodecConfig("huffman"), MC)
    decoded, _ = compress.load(tmp_path / "m.apx")
    before, after = train.predict(compressed, x), train.predict(decoded, x)
    assert torch.equal(before, after)
    assert (before == y).float().mean().item() == (after == y).float().mean().item()


def test_huffman_file_is_smaller_and_ratio_is_real_bytes(compressed, tmp_path):
    sizes = {}
    for codec in ("sparse", "packed", "huffman"):
        compress.save(compressed, tmp_path / f"{codec}.apx", CodecConfig(codec), MC)
        sizes[codec] = (tmp_path / f"{codec}.apx").stat().st_size
    assert sizes["huffman"] < sizes["packed"] < sizes["sparse"]
    dense = compress.dense_state_dict_bytes(MC)
    # 10% of 11.2M weights at 4 bits + gaps cannot take more than ~2 bytes each: well over 15×.
    assert dense / sizes["huffman"] > 15


def test_encoder_refuses_a_model_its_config_does_not_describe(compressed):
    with pytest.raises(Exception, match="match neither the BatchNorm-folded nor the plain "
                       "structure of resnet18"):
        compress.encode(compressed, ModelConfig("resnet18", 100, 1), CodecConfig("huffman"))


# ----------------------------------------------------------------------------- bad files

def test_fuzz_mutated_truncated_extended_files_raise_only_apx_error(apx_bytes):
    """Thousands of damaged files in seconds: every one is rejected with ApxError."""
    rng = random.Random(0)
    cases = 0
    for _ in range(1500):
        data = bytearray(apx_bytes)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        cases += _rejects(bytes(data))
    for _ in range(600):
        cases += _rejects(apx_bytes[:rng.randrange(len(apx_bytes))])
    for _ in range(300):
        cases += _rejects(apx_bytes + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))))
    assert cases == 2400


def _rejects(data: bytes) -> int:
    with pytest.raises(compress.ApxError):
        compress.decode(data)
    return 1


def _repack(header: dict, payload: bytes, version: int = compress.FORMAT_VERSION) -> bytes:
    h = zlib.compress(json.dumps(header).encode())
    return compress.PREFIX.pack(compress.MAGIC, version, 0, len(h), zlib.crc32(h)) + h + payload


def _split(data: bytes) -> tuple[dict, bytes]:
    _, _, _, hlen, _ = compress.PREFIX.unpack_from(data)
    header = json.loads(zlib.decompress(data[compress.PREFIX.size:compress.PREFIX.size + hlen]))
    return header, data[compress.PREFIX.size + hlen:]


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.text(max_size=5),
                 st.lists(st.integers(-3, 70000), max_size=4), st.floats(allow_nan=True))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_header_with_valid_checksums_raises_only_apx_error(apx_bytes, data):
    """A hostile header that passes the checksums still gets a clear error, not a crash or a
    huge allocation: every count, offset and shape is checked against the architecture."""
    header, payload = _split(apx_bytes)
    recs = header["tensors"]
    rec = recs[data.draw(st.integers(0, len(recs) - 1))]
    target = data.draw(st.sampled_from(["tensor", "stream", "top", "section"]))
    if target == "tensor":
        rec[data.draw(st.sampled_from(sorted(rec)))] = data.draw(JUNK)
    elif target == "stream" and rec["enc"] == "sparse":
        stream = rec[data.draw(st.sampled_from(["gaps", "values"]))]
        stream[data.draw(st.sampled_from(sorted(stream)))] = data.draw(JUNK)
    elif target == "section":
        sec = header["sections"][data.draw(st.integers(0, len(header["sections"]) - 1))]
        sec[data.draw(st.integers(0, 1))] = data.draw(st.integers(-10, 2**40))
    else:
        header[data.draw(st.sampled_from(sorted(header)))] = data.draw(JUNK)
    try:
        compress.decode(_repack(header, payload))
    except compress.ApxError:
        pass  # the documented error; a harmless edit (e.g. meta) may also decode fine


def test_future_version_foreign_and_empty_files_are_rejected(apx_bytes, tmp_path):
    header, payload = _split(apx_bytes)
    with pytest.raises(compress.ApxError, match="version 2; this approxlib reads version 1"):
        compress.decode(_repack(header, payload, version=2))
    with pytest.raises(compress.ApxError, match="bad magic"):
        compress.decode(b"")
    ckpt = tmp_path / "m.pt"
    torch.save({"a": torch.zeros(3)}, ckpt)
    with pytest.raises(compress.ApxError, match="bad magic"):
        compress.load(ckpt)
    with pytest.raises(compress.ApxError, match="not found"):
        compress.load(tmp_path / "missing.apx")


def test_huge_claimed_sizes_are_refused_before_allocating(apx_bytes):
    header, payload = _split(apx_bytes)
    rec = next(r for r in header["tensors"] if r["enc"] == "sparse")
    rec["gaps"]["n"] = 2**40
    with pytest.raises(compress.ApxError):
        compress.decode(_repack(header, payload))
    header, payload = _split(apx_bytes)
    huge = compress.PREFIX.pack(compress.MAGIC, 1, 0, 2**31, 0) + b"x" * 100
    with pytest.raises(compress.ApxError, match="truncated or corrupt header"):
        compress.decode(huge)


def test_decoder_never_unpickles(apx_bytes, monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("the .apx decoder must not unpickle")
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    model, _ = compress.decode(apx_bytes)
    assert isinstance(model, torch.nn.Module)


def test_general_purpose_codecs_round_trip():
    data = bytes(range(256)) * 100 + b"\0" * 5000
    assert tuple(compress.GENERAL) == config.GENERAL_CODECS  # every codec a config accepts
    for codec in config.GENERAL_CODECS:
        packed = compress.general_compress(data, codec)
        assert len(packed) < len(data)
        assert compress.general_decompress(packed, codec) == data
    suffixes = [c.suffix for c in compress.GENERAL.values()]
    assert len(set(suffixes)) == len(suffixes)  # a file's suffix names its codec
    with pytest.raises(store.CheckpointError):
        compress.general_decompress(b"not xz", "xz")
    with pytest.raises(ValueError, match="valid: gzip, xz, zstd"):
        compress.general_compress(data, "bzip2")


def test_each_general_effort_is_a_setting_of_every_tool_and_keeps_the_default_keys():
    """`general_effort` (smoke: fast) picks each tool's quick setting: a larger file than the
    strongest one, read back by the same decoder; unset, it leaves every encode key as before."""
    data = bytes(range(256)) * 400 + b"\0" * 20000 + bytes(np.random.default_rng(0).integers(
        0, 4, 200_000, dtype=np.uint8))
    for codec in compress.GENERAL.values():
        assert set(codec.levels) == {None, *config.GENERAL_EFFORTS}, codec.name
        strongest = compress.general_compress(data, codec.name)
        for effort in config.GENERAL_EFFORTS:
            quick = compress.general_compress(data, codec.name, effort)
            assert compress.general_decompress(quick, codec.name) == data
            assert len(quick) >= len(strongest), (codec.name, effort)
            assert codec.setting(effort) != codec.setting(), codec.name
    p = config.load_profile("quick")
    assert p["general_effort"] is None
    assert config.codec_config(p, "xz") == config.CodecConfig("xz", p["dc_index_bits"])
    # unset, the field is neither hashed nor recorded in a file's header: keys and bytes as
    # before it existed
    assert config.config_hash(config.CodecConfig("xz", 8)) == config.config_hash(
        {"__type__": "CodecConfig", "codec": "xz", "index_bits": 8})
    assert config.config_fields(config.CodecConfig("xz", 8)) == {"codec": "xz", "index_bits": 8}
    assert config.config_fields(config.CodecConfig("xz", 8, "fast"))["effort"] == "fast"
    fast = config.codec_config({**p, "general_effort": "fast"}, "xz")
    assert config.config_hash(fast) != config.config_hash(config.codec_config(p, "xz"))
    assert config.codec_config({**p, "general_effort": "fast"}, "huffman").effort is None
    with pytest.raises(config.ConfigError, match="valid: null .*fast"):
        config.load_profile("smoke", {"general_effort": "max"})
    with pytest.raises(config.ConfigError, match="applies to gzip, xz, zstd"):
        config.CodecConfig("huffman", 8, "fast")


def test_every_codec_a_config_accepts_writes_a_file_that_reads_back(tmp_path):
    """One registry: each codec name a profile may give is a `compress.Codec` whose file
    ends in a suffix no other codec's ends in, written bit-exact and read back through
    `pipeline.load_artifact` by that suffix alone."""
    from approxlib import pipeline
    assert set(compress.CODECS) == set(config.CODECS) - {"none"}
    ends = [c.file_suffix for c in compress.CODECS.values()]
    assert not any(a != b and b.endswith(a) for a in set(ends) for b in set(ends))
    mc = config.ModelConfig("shufflenet_v2_x0_5", 10, 1)  # 0.35M weights: xz -9e in a second
    model = models.build(mc, seed=0)
    source = tmp_path / "m.pt"
    store.save_checkpoint(model, source, mc, "none", {})
    efforts = {n: [None, *(config.GENERAL_EFFORTS if n in config.GENERAL_CODECS else ())]
               for n in compress.CODECS}
    for name, codec, effort in [(n, c, e) for n, c in compress.CODECS.items() for e in efforts[n]]:
        data, _, _, _, exact = codec.write(source, mc, config.CodecConfig(name, 8, effort), {})
        assert exact, name
        for path in (tmp_path / f"m{codec.file_suffix}", tmp_path / f"n{codec.suffix}"):
            path.write_bytes(data)  # a user's file may end in .gz alone
            back, _ = pipeline.load_artifact(path, expect=mc)
            assert models.fingerprint(back) == models.fingerprint(model), (name, path.name)


def test_prefix_layout_is_documented():
    assert compress.PREFIX.size == 20 and struct.calcsize("<8sHHII") == 20 and len(compress.MAGIC) == 8


# ------------------------------------------------------------------ issue 14: bounded decoding

def test_header_integers_sizes_and_expectations_are_checked_first(apx_bytes, tmp_path):
    header, payload = _split(apx_bytes)
    text = b'{"format":"approxlib.apx","payload_bytes":' + b"9" * 5000 + b"}"
    h = zlib.compress(text)
    with pytest.raises(compress.ApxError, match="5000-digit integer") as e:
        compress.decode(compress.PREFIX.pack(compress.MAGIC, 1, 0, len(h), zlib.crc32(h)) + h)
    assert "\n" not in str(e.value)
    header["payload_bytes"] = 10**12  # more than ResNet-18 can need: refused before reading
    (tmp_path / "big.apx").write_bytes(_repack(header, payload))
    with pytest.raises(compress.ApxError, match="architecture needs at most"):
        compress.load(tmp_path / "big.apx")
    (tmp_path / "ok.apx").write_bytes(apx_bytes)
    with pytest.raises(compress.ApxError, match="holds resnet18 .* expected resnet18 .*100 classes"):
        compress.load(tmp_path / "ok.apx", expect=ModelConfig("resnet18", 100, 1))
    assert same_bits(compress.load(tmp_path / "ok.apx", expect=MC)[0], compress.decode(apx_bytes)[0])


def test_a_file_over_the_bound_is_refused_unread(tmp_path):
    sparse = tmp_path / "huge.apx"
    with sparse.open("wb") as f:
        f.truncate(compress.MAX_FILE + 1)  # a hole: no disk, but read_bytes would take 4 GiB
    with pytest.raises(compress.ApxError, match="larger than any model"):
        compress.load(sparse)


def test_encoder_refuses_a_header_no_reader_accepts(compressed, monkeypatch):
    monkeypatch.setattr(compress, "MAX_HEADER_TEXT", 1000)
    with pytest.raises(compress.ConfigError, match="more than a reader accepts"):
        compress.encode(compressed, MC, CodecConfig("huffman"))


def test_huffman_count_beyond_its_bits_is_refused_before_allocating():
    data, table = compress.huffman_encode(np.array([1, 2, 2, 3]))
    with pytest.raises(compress.ApxError, match="malformed Huffman table"):
        compress.huffman_decode(data, table, 10**12, 4)  # a code is ≥ 1 bit: n ≤ nbits


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 32), st.lists(st.integers(0, 2**32 - 1), max_size=300))
def test_fixed_width_streams_of_every_width_round_trip(width, values):
    s = np.array(values, dtype=np.int64) % (1 << width)
    assert np.array_equal(compress.unpack_fixed(compress.pack_fixed(s, width), width, len(s)), s)


def test_a_general_codec_names_the_errors_its_decompressor_raises(monkeypatch):
    """A contributor's new tool (brotli, lz4) raises errors of its own on damaged data: they
    escaped `general_decompress`'s fixed list as tracebacks (2026-12-07); each entry names its
    own now."""
    class ToolError(Exception):
        pass

    def pieces(data):
        raise ToolError("bad block")
        yield b""
    level = compress.Level("tool -9", lambda d: d)
    tool = compress.GeneralCodec("tool", ".tl", {None: level}, pieces, (ToolError,))
    monkeypatch.setitem(compress.GENERAL, "tool", tool)
    with pytest.raises(store.CheckpointError, match=r"cannot decompress \(tool\): bad block"):
        compress.general_decompress(b"x", "tool")
    monkeypatch.setitem(compress.GENERAL, "tool", dataclasses.replace(tool, errors=()))
    with pytest.raises(ToolError):  # a bug, not damage: its traceback stays
        compress.general_decompress(b"x", "tool")
