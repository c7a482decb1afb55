import os
import pickle
import zipfile

import pytest
import torch

from approxlib import models
from approxlib import store
from approxlib.config import ModelConfig

CFG = ModelConfig("resnet18", 10, 1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = models.build(CFG).eval()
    path = tmp_path_factory.mktemp("ckpt") / "r18.pt"
    store.save_checkpoint(model, path, CFG, meta={"note": "test"})
    return model, path


def test_the_same_checkpoint_is_the_same_bytes_whoever_writes_it(saved, tmp_path, monkeypatch):
    """A file's size is a reported result: it may not depend on its name, the writer's host
    or pid (torch.save names its zip folder after the path it is given)."""
    model, path = saved
    monkeypatch.setattr(store, "HOST", "a-much-longer-host-name-than-before")
    other = tmp_path / "another" / "name-of-a-different-length.pt"
    store.save_checkpoint(model, other, CFG, meta={"note": "test"})
    assert other.read_bytes() == path.read_bytes()


def test_round_trip_is_bit_exact(saved):
    model, path = saved
    back, info = store.load_checkpoint(path, expect=CFG)
    assert info["meta"]["note"] == "test" and info["quant"] == "none"
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_missing_truncated_and_foreign_files(saved, tmp_path):
    _, path = saved
    with pytest.raises(store.CheckpointError, match="checkpoint not found"):
        store.load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(store.CheckpointError, match="checkpoint is a folder, not a file"):
        store.load_checkpoint(tmp_path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(store.CheckpointError, match="truncated or not a checkpoint"):
        store.load_checkpoint(cut)
    plain = tmp_path / "sd.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(store.CheckpointError, match="is not an approxlib checkpoint"):
        store.load_checkpoint(plain)


def test_an_entry_marked_a_folder_is_damage_though_its_crc_holds(saved):
    """torch's zip reader reads an entry flagged as a folder (MS-DOS attribute 0x10 in the
    central directory) as zeros; zipfile reads its bytes and its CRC holds. One flipped bit did
    it to a BatchNorm's running variance, and the model loaded."""
    _, path = saved
    raw = bytearray(path.read_bytes())
    name = next(n for n in zipfile.ZipFile(path).namelist() if "/data/" in n).encode()
    header = raw.index(b"PK\x01\x02")
    while raw[header + 46:header + 46 + len(name)] != name:  # this entry's central record
        header = raw.index(b"PK\x01\x02", header + 4)
    raw[header + 38] |= 0x10  # external file attributes, low byte: MS-DOS folder
    with pytest.raises(store.CheckpointError, match="is marked a folder"):
        store.load_checkpoint(path, data=bytes(raw))


def test_loading_never_runs_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(store.CheckpointError):
        store.load_checkpoint(bad)
    evil_zip = tmp_path / "evil_zip.pt"  # the same payload inside torch's zip container
    torch.save({"a": Evil()}, evil_zip)
    with pytest.raises(store.CheckpointError, match=r"holds pickled code \(posix\.system\)"):
        store.load_checkpoint(evil_zip)  # named as code, not as a truncated file
    assert not marker.exists()


def test_a_json_entry_nested_too_deep_is_a_reason_not_a_crash(tmp_path):
    """json parses 400 nested lists; the finite-number check then recursed past the limit
    (RecursionError out of `approx verify`)."""
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 400 + "]" * 400 + "}")
    assert store.read_json_entry(deep) == "JSON entry nested too deep"


def test_other_architecture_is_refused(saved):
    _, path = saved
    with pytest.raises(store.CheckpointError, match="holds resnet18 .* expected mobilenetv2"):
        store.load_checkpoint(path, expect=ModelConfig("mobilenetv2", 10, 1))


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    store.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with store.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temp file left


def test_the_library_refuses_models_it_would_handle_wrongly(saved, tmp_path):
    """A library user's walkthrough (2026-12-07): a model saved with its pruning masks attached
    wrote 89 MB that loading refused; sharing a masked model was undone by the next forward
    pass; a quantized model saved as float could not be loaded; pruning one ended deep in
    torch; prediction and measurement left a model in training in eval mode; float images were
    divided by 255 a second time; statistics took predictions for correctness and broadcast
    one label against every prediction."""
    import copy

    import numpy as np

    from approxlib import measure, prune, quantize, share, stats, train
    from approxlib.config import ConfigError, PruneConfig, QuantConfig, ShareConfig
    model, _ = saved
    masked = prune.prune_(copy.deepcopy(model), PruneConfig(0.5))
    with pytest.raises(ConfigError, match=r"folded into the weights first: prune.make_perm"):
        store.save_checkpoint(masked, tmp_path / "m.pt", CFG)
    with pytest.raises(ConfigError, match="^weight sharing needs the pruning masks folded"):
        share.share_weights_(masked, ShareConfig(2, 2))
    assert not (tmp_path / "m.pt").exists()
    dynamic = quantize.quantize(copy.deepcopy(model), QuantConfig())
    with pytest.raises(ConfigError, match="as a float checkpoint needs a float model; this one "
                                          "is quantized"):
        store.save_checkpoint(dynamic, tmp_path / "q.pt", CFG)
    with pytest.raises(ConfigError, match="^pruning needs a float model"):
        prune.prune_(dynamic, PruneConfig(0.5))
    training = copy.deepcopy(model).train()
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    train.predict(training, x)
    measure.flops(training, (1, 28, 28))
    assert training.training  # its mode as it was
    with pytest.raises(TypeError, match="images must be uint8"):
        train.predict(training, x.float() / 255)
    with pytest.raises(ValueError, match="accuracy of 0 images"):
        train.accuracy(training, x[:0], torch.zeros(0, dtype=torch.long))
    y = np.arange(50) % 10
    with pytest.raises(ValueError, match="unequal or no images"):
        stats.mcnemar(y[:1], y, y)
    with pytest.raises(ValueError, match="whether each image was right"):
        stats.paired_lower_bound(y, y)
    with pytest.raises(ValueError, match="counts of images, not an accuracy"):
        stats.wilson(0.78, 500)
    with pytest.raises(ValueError, match="holding NaN"):
        stats.mean_ci([0.7, float("nan")])
