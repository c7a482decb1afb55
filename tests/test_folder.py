"""Your own images and weights: `imagefolder:PATH` datasets and `init:` weights (issue 16).

The folder holds real Fashion-MNIST images written as RGB PNGs of 32×32, 10 classes."""
import dataclasses
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms as tvt

from approxlib import data as D
from approxlib import folder as F
from approxlib import models
from approxlib import parallel
from approxlib import pipeline
from approxlib import store as S
from approxlib.config import ConfigError, DataConfig, ModelConfig, load_profile

TRAIN, TEST = 40, 12  # images per class


def _write(root: Path, x: torch.Tensor, y: torch.Tensor, per_class: int, part: str) -> None:
    for c in range(10):
        d = root / part / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in torch.nonzero(y == c).flatten()[:per_class].tolist():
            img = Image.fromarray(x[i, 0].numpy()).resize((32, 32), Image.BILINEAR)
            img.convert("RGB").save(d / f"{i}.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_root) -> Path:
    root = tmp_path_factory.mktemp("images") / "fashion"
    x, y = D.load_split("fashion-mnist", True, data_root)
    _write(root, x, y, TRAIN, "train")
    xt, yt = D.load_split("fashion-mnist", False, data_root)
    _write(root, xt, yt, TEST, "test")
    return root


def _copy(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(F.CACHE))
    return dst


def test_folder_decodes_to_the_pixels_of_its_pngs(folder):
    src = D.source(f"imagefolder:{folder}")
    assert (src.classes, src.channels, src.size, src.builtin) == (10, 3, 32, False)
    x, y = src.split("test")
    assert x.dtype == torch.uint8 and x.shape == (10 * TEST, 3, 32, 32)
    first = min((folder / "test").glob("*/*.png"))
    expect = np.asarray(Image.open(first).convert("RGB")).transpose(2, 0, 1)
    assert torch.equal(x[0], torch.from_numpy(expect.copy()))
    assert y.tolist() == sorted(y.tolist()) and set(y.tolist()) == set(range(10))
    assert torch.equal(src.labels("test"), y)


def test_splits_carve_validation_from_train_or_use_val(folder, tmp_path):
    s = D.load(DataConfig(f"imagefolder:{folder}", None, 50, 0))
    assert len(s.val_y) == 50 and len(s.train_y) == 10 * TRAIN - 50
    assert (s.num_classes, s.in_channels) == (10, 3)
    assert torch.bincount(s.val_y).tolist() == [5] * 10  # class-balanced
    own = _copy(folder, tmp_path / "withval")
    (own / "test").rename(own / "val")
    _copy(folder / "test", own / "test")
    s = D.load(DataConfig(f"imagefolder:{own}", None, 50, 0))
    assert len(s.val_y) == 10 * TEST and len(s.train_y) == 10 * TRAIN


def test_cache_is_used_verified_and_rebuilt_when_damaged(folder, tmp_path, monkeypatch, caplog):
    own = _copy(folder, tmp_path / "own")
    src = F.ImageFolder(path=str(own))
    x, _ = src.split("test")
    cached = list((own / F.CACHE).glob("test-*.npz"))
    assert len(cached) == 1 and cached[0].with_name(cached[0].name + ".sha256").is_file()
    fresh = F.ImageFolder(path=str(own))
    monkeypatch.setattr(F, "_decode_one", lambda *a: pytest.fail("decoded despite the cache"))
    assert torch.equal(fresh.split("test")[0], x)
    monkeypatch.undo()
    data = bytearray(cached[0].read_bytes())
    data[-100] ^= 0xFF
    cached[0].write_bytes(bytes(data))
    assert torch.equal(F.ImageFolder(path=str(own)).split("test")[0], x)
    assert "damaged" in caplog.text


def test_changed_image_changes_the_contents_digest(folder, tmp_path):
    own = _copy(folder, tmp_path / "own")
    before = F.ImageFolder(path=str(own)).contents
    png = min((own / "train" / "class3").glob("*.png"))
    Image.new("RGB", (32, 32), (7, 7, 7)).save(png)
    assert F.ImageFolder(path=str(own)).contents != before
    assert D.identify(DataConfig("fashion-mnist", 10, 10)).contents is None


def test_a_changed_test_image_rescores_the_models_without_training_them(folder, tmp_path):
    """The test part's digest is hashed by the evaluations alone: one test image replaced
    retrained every fine-tuned model (a stranger's test, 2026-12-07). A training image
    replaced changes every stage; a run planned before either change refuses to read it."""
    own = _copy(folder, tmp_path / "own")
    profile = tmp_path / "mine.yaml"
    profile.write_text(f"base: smoke\ndataset: imagefolder:{own}\nval_size: 50\n"
                       f"train_size: null\nmodels: [resnet18]\n")
    p = load_profile(str(profile))

    def stages() -> dict[str, str]:
        D.refresh()  # what pipeline.run does first
        return {st.key: st.kind for _, st in pipeline.distinct_stages(p, ["B"])}
    before = stages()
    planned = D.identify(DataConfig(f"imagefolder:{own}", None, 50))
    Image.new("RGB", (32, 32), (7, 7, 7)).save(min((own / "test" / "class3").glob("*.png")))
    rescored = stages()
    gone = [before[k] for k in before.keys() - rescored.keys()]
    assert gone and set(gone) == {"evaluate"} == set(before.values()) - {
        kind for key, kind in before.items() if key in rescored}
    with pytest.raises(ConfigError, match="changed after this run was planned"):
        D.load(planned, tmp_path)
    Image.new("RGB", (32, 32), (7, 7, 7)).save(min((own / "train" / "class3").glob("*.png")))
    assert not stages().keys() & rescored.keys()


def test_a_folder_is_looked_at_again_at_each_run(folder, tmp_path):
    own = _copy(folder, tmp_path / "own")
    name = f"imagefolder:{own}"
    D.refresh()
    first = D.source(name)
    assert D.source(name) is first  # one scan per run, not per variant
    before = first.contents, first.test_contents
    Image.new("RGB", (32, 32), (9, 9, 9)).save(min((own / "test" / "class5").glob("*.png")))
    assert (D.source(name).contents, D.source(name).test_contents) == before  # as planned
    D.refresh()  # what pipeline.run does first
    assert D.source(name).contents == before[0] and D.source(name).test_contents != before[1]


def _expect_error(path: Path, match: str, image_size=None) -> None:
    src = F.ImageFolder(image_size=image_size, path=str(path))
    with pytest.raises(ConfigError, match=match):
        src.classes, src.channels, src.size, src.split("train")


def test_bad_folders_get_one_line(folder, tmp_path, no_hang):
    _expect_error(tmp_path / "nothing", "image folder .*nothing not found")
    (tmp_path / "file").write_text("x")
    _expect_error(tmp_path / "file", "file is not a folder")
    (tmp_path / "bare").mkdir()
    _expect_error(tmp_path / "bare", "needs train/ and test/ folders")
    own = _copy(folder, tmp_path / "empty")
    (own / "train" / "class9").mkdir(exist_ok=True)
    for f in (own / "train" / "class9").glob("*.png"):
        f.unlink()
    _expect_error(own, r"Found no valid file for the classes class9.* \(images end in \.jpg, "
                       r".*; hidden files are skipped\)$")
    own = _copy(folder, tmp_path / "mixed")
    Image.new("RGB", (40, 40)).save(own / "train" / "class0" / "big.png")
    _expect_error(own, r"images of different sizes in \S+mixed \(32×32 train/class0/\d+\.png, "
                       r"40×40 train/class0/big\.png\); set image_size")
    assert F.ImageFolder(image_size=24, path=str(own)).split("train")[0].shape[1:] == (3, 24, 24)
    own = _copy(folder, tmp_path / "broken")
    (own / "test" / "class1" / "notes.png").write_text("not an image")
    _expect_error(own, r"cannot read image .*notes\.png")
    for i in range(5):  # all at once: a user fixing them found each only when the last was fixed
        (own / "train" / "class3" / f"bad{i}.png").write_text("not an image")
    _expect_error(own, r"^6 images cannot be used: cannot read image \S+bad0\.png: .*; also "
                       r"\S+bad1\.png, \S+bad2\.png, \S+bad3\.png and 2 more$")
    own = _copy(folder, tmp_path / "truncated")  # headers whole, pixels cut off
    for f in sorted((own / "train" / "class4").glob("*.png"))[:2]:
        f.write_bytes(f.read_bytes()[:-60])
    _expect_error(own, r"^2 images cannot be used: cannot decode image \S+\.png: .*; also "
                       r"\S+class4/\S+\.png$")
    (own / "train" / "class0" / "notes.png").write_text("not an image")  # and one unreadable
    _expect_error(own, r"^3 images cannot be used: cannot read image \S+notes\.png: .*; also "
                       r"\S+class4/\S+\.png, \S+class4/\S+\.png$")  # both kinds in one run
    own = _copy(folder, tmp_path / "classes")
    (own / "test" / "class0").rename(own / "test" / "class0 ")  # what differs is shown
    _expect_error(own, r"\(missing class0; not in train/: 'class0 '; names that differ only in "
                       r"Unicode normalization \(a folder copied from macOS\) or in spaces")
    (own / "test" / "class0 ").rename(own / "test" / "class0")
    (own / "test" / "class0").rename(own / "test" / "zero")
    _expect_error(own, r"other classes than .*train \(missing class0; not in train/: zero\)$")
    for c in range(1, 8):  # seven missing: five named, the rest counted (it cut the list at 3)
        (own / "test" / f"class{c}").rename(own / "test" / f"z{c}")
    _expect_error(own, r"\(missing class0, class1, class2, class3, class4 and 3 more; not in "
                       r"train/: z1, z2, z3, z4, z5 and 3 more\)$")
    own = _copy(folder, tmp_path / "apple")  # macOS's AppleDouble files beside each image
    (own / "train" / "class0" / "._1.png").write_bytes(b"\x00\x05\x16\x07 metadata")
    (own / "train" / ".ipynb_checkpoints").mkdir()  # Jupyter's: no class of its own
    (own / "train" / "class1" / ".hidden").mkdir()  # nor images in a hidden folder
    (own / "train" / "class1" / ".hidden" / "x.png").write_text("not an image")
    apple = F.ImageFolder(path=str(own))
    assert apple.split("train")[0].shape[0] == 10 * TRAIN and apple.classes == 10
    own = _copy(folder, tmp_path / "latin")  # a class folder named in Latin-1, not UTF-8
    for part in ("train", "test"):
        os.rename(os.fsencode(own / part / "class9"), os.fsencode(own / part) + b"/caf\xe9")
    latin = F.ImageFolder(path=str(own))
    assert latin.classes == 10 and len(latin.contents) == 16 and "caf\udce9" in latin.class_names
    own = _copy(folder, tmp_path / "fifo")  # reading it would block for ever
    os.mkfifo(own / "train" / "class2" / "x.png")
    _expect_error(own, r"x\.png is not a regular file")


def test_an_image_that_cannot_be_decoded_stops_a_run_before_its_first_stage(folder, tmp_path):
    """Its header reads, its pixels do not: found when a stage first decoded the images, after
    others (the given weights' copy, a timing) were stored."""
    own = _copy(folder, tmp_path / "cut")
    f = min((own / "train" / "class5").glob("*.png"))
    f.write_bytes(f.read_bytes()[:-60])
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), tmp_path / "r18.pt")
    p = load_profile("smoke", {"dataset": f"imagefolder:{own}", "val_size": 50,
                               "train_size": None, "models": ["resnet18"], "ratios": [0.5],
                               "init": str(tmp_path / "r18.pt")})
    store = S.Store(tmp_path / "models")
    with pytest.raises(ConfigError, match=rf"cannot decode image \S+{f.name}"):
        pipeline.run(p, ["C"], store, tmp_path / "out", None, progress=False)
    assert not [x for x in store.root.rglob("*") if x.is_file()] and not (tmp_path / "out").exists()
    # ... and before any helper starts (they started first, and read the images as stored,
    # so a folder of mixed sizes with image_size set was refused for its sizes)
    Image.new("RGB", (40, 40)).save(own / "test" / "class1" / "big.png")
    g = min((own / "test" / "class2").glob("*.png"))
    g.write_bytes(g.read_bytes()[:-60])  # a second part's: named in the same line
    with pytest.raises(ConfigError, match=rf"^2 images cannot be used: cannot decode image "
                                          rf"\S+{f.name}: .*; also \S+class2/{g.name}$"):
        parallel.run({**p, "image_size": 32}, ["C"], store.root, tmp_path / "out", None,
                     progress=False, workers=2, threads=1)
    assert not [x for x in store.root.rglob("*") if x.is_file()] and not (tmp_path / "out").exists()


def test_grayscale_images_give_one_channel(folder, tmp_path, caplog):
    own = tmp_path / "gray"
    for f in folder.glob("*/*/*.png"):
        target = own / f.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(f).convert("L").save(target)
    src = F.ImageFolder(path=str(own))
    assert src.channels == 1 and src.split("test")[0].shape[1] == 1
    with caplog.at_level(logging.WARNING, logger="approxlib.folder"):
        assert not caplog.records
        # one colour image makes every image RGB: said, naming it (one WebP, which Pillow
        # writes in colour, did so without a word)
        Image.open(next(own.glob("train/class3/*.png"))).convert("RGB").save(
            own / "train" / "class3" / "colour.webp")
        assert F.ImageFolder(path=str(own)).channels == 3
        assert any("1 in colour, 520 grayscale (the first in colour: train/class3/colour.webp)"
                   in r.getMessage() for r in caplog.records)
        # a val/ folder by another name, and images beside the class folders: left out, said
        caplog.clear()
        (own / "valid").mkdir()
        Image.new("L", (32, 32)).save(own / "train" / "stray.png")
        assert F.ImageFolder(path=str(own)).parts == ("train", "test")
        F.ImageFolder(path=str(own)).class_names
        said = " | ".join(r.getMessage() for r in caplog.records)
        assert "valid is not read: validation images are read from a folder named val/" in said
        assert "train: 1 image outside the class folders (stray.png) is left out" in said
        caplog.clear()  # names as a terminal shows them: an escape code is written out
        Image.new("L", (32, 32)).save(own / "test" / "\x1b[31mred.png")
        F.ImageFolder(path=str(own)).class_names
        assert "(\\x1b[31mred.png) is left out" in caplog.text and "\x1b" not in caplog.text


def _plain_torchvision(folder: Path, path: Path) -> float:
    """What a user does without approxlib: train, save the state dict, measure test accuracy."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    train = torchvision.datasets.ImageFolder(folder / "train", transform=tvt.ToTensor())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(3):
        for xb, yb in torch.utils.data.DataLoader(train, batch_size=32, shuffle=True):
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(model.state_dict(), path)
    test = torchvision.datasets.ImageFolder(folder / "test", transform=tvt.ToTensor())
    model.eval()
    with torch.no_grad():
        right = sum((model(xb).argmax(1) == yb).sum().item()
                    for xb, yb in torch.utils.data.DataLoader(test, batch_size=64))
    return right / len(test)


def test_given_state_dict_is_evaluated_as_plain_torchvision_does(folder, tmp_path, data_root,
                                                                 capsys):
    weights = tmp_path / "mine.pt"
    expected = _plain_torchvision(folder, weights)
    assert expected > 0.2  # a model that learned something, so equal accuracy means something
    p = load_profile("smoke", {"dataset": f"imagefolder:{folder}", "val_size": 50,
                               "train_size": None, "models": ["resnet18"], "init": str(weights),
                               "ratios": [0.5], "controls": False})
    df, _ = pipeline.run(p, ["C"], S.Store(tmp_path / "models"), tmp_path / "out", data_root,
                         progress=False)
    base = df[df.prune_ratio == 0].iloc[0]
    assert round(base.accuracy * base.test_images) == round(expected * 10 * TEST)
    assert base.init == "mine.pt" and base.epochs == 0
    stages = pipeline.dry_run(p, ["C"], S.Store(tmp_path / "models"))
    assert {s["stage"] for s in stages} >= {"given"} and "train" not in {s["stage"] for s in stages}
    # the same weights saved again under another name and copied over (other bytes: the zip's
    # folder is named after the file) are the same stage; they made every stage again (a
    # stranger's test, 2026-12-07)
    first = S.digest_file(weights)
    torch.save(torch.load(weights, weights_only=True), tmp_path / "again.pt")
    weights.write_bytes((tmp_path / "again.pt").read_bytes())
    assert S.digest_file(weights) != first
    assert all(s["cached"] for s in pipeline.dry_run(p, ["C"], S.Store(tmp_path / "models")))
    # the same weights evaluated from the command line, as a report starts from them
    from approxlib import cli
    common = ["--profile", "smoke", "--checkpoint", str(weights), "--data-dir", str(data_root)]
    assert cli.main(["evaluate", *common]) == 2
    assert "name it with --model" in capsys.readouterr().err
    assert cli.main(["evaluate", *common, "--model", "resnet18", "--dataset",
                     f"imagefolder:{folder}"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert round(out["accuracy"] * 10 * TEST) == round(expected * 10 * TEST)
    weights.rename(weights.with_suffix(".pth"))  # PyTorch's other usual name: read by content
    assert cli.main(["evaluate", *common[:3], str(weights.with_suffix(".pth")), *common[4:],
                     "--model", "resnet18", "--dataset", f"imagefolder:{folder}"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == out["accuracy"]


def test_a_model_scored_on_other_classes_is_warned_of(folder, tmp_path, data_root, caplog):
    """Checkpoints record an image folder's class names: scored on a folder whose classes
    differ (as many of them), the number means nothing, and the command says so."""
    weights = tmp_path / "mine.pt"
    torch.save(models.build(ModelConfig("resnet18", 10, 3)).state_dict(), weights)
    p = load_profile("smoke", {"dataset": f"imagefolder:{folder}", "val_size": 50,
                               "train_size": None, "models": ["resnet18"], "init": str(weights)})
    runner = pipeline.Runner(p, S.Store(tmp_path / "models"), data_root, progress=False)
    pruned = next(v for v in pipeline.plan(p, ["C"]) if v.prune_ratio)
    first = next(st for st in pipeline.stages(pruned, p)  # the given weights record no data
                 if any(isinstance(c, DataConfig) for c in st.step.configs()))
    path = runner.artifact(first)
    _, info = S.load_checkpoint(path)
    assert info["meta"]["classes"] == [f"class{c}" for c in range(10)]
    other = _copy(folder, tmp_path / "other")
    for part in ("train", "test"):
        (other / part / "class0").rename(other / part / "shirt")
    from approxlib import cli
    common = ["evaluate", "--profile", "smoke", "--checkpoint", str(path), "--data-dir",
              str(data_root), "--set", "test_size=20", "--dataset"]
    with caplog.at_level(logging.WARNING, "approxlib"):
        assert cli.main([*common, f"imagefolder:{folder}"]) == 0
        assert "other classes" not in caplog.text
        assert cli.main([*common, f"imagefolder:{other}"]) == 0
    assert (f"trained on other classes than imagefolder:{other} has (missing class0; extra: "
            f"shirt)") in caplog.text


def test_weights_holding_nan_or_infinity_are_refused_in_one_line(tmp_path):
    """Such a model predicts one class: it scored 10% without a word (attack)."""
    from approxlib.config import ModelConfig
    cfg = ModelConfig("resnet18", 7, 3)
    state = torchvision.models.resnet18(num_classes=7).state_dict()
    state["layer2.0.bn1.running_var"][3] = float("inf")
    state["fc.weight"][0, :2] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(S.CheckpointError, match=r"nan.pt: layer2.0.bn1.running_var holds 1 NaN "
                       r"or infinite value \(did its training diverge\?\)$"):
        S.load_weights(tmp_path / "nan.pt", cfg)
    model = torchvision.models.resnet18(num_classes=7)
    model.fc.weight.data[0, :2] = float("nan")
    S.save_checkpoint(model, tmp_path / "ckpt.pt", cfg)
    with pytest.raises(S.CheckpointError, match=r"fc.weight holds 2 NaN or infinite values"):
        S.load_weights(tmp_path / "ckpt.pt", cfg)


@pytest.mark.filterwarnings("ignore:.*torch.jit.trace:FutureWarning")  # the TorchScript file
def test_weights_that_do_not_fit_name_the_tensor(tmp_path):
    from approxlib.config import ModelConfig
    path = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=7).state_dict(), path)
    with pytest.raises(S.CheckpointError, match=r"fc.weight is torch.float32 \[7, 512\]"):
        S.load_weights(path, ModelConfig("resnet18", 10, 3))
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    with pytest.raises(S.CheckpointError, match=r"pickled code \(torch\.nn\.modules\.linear"):
        S.load_weights(tmp_path / "pickled.pt", ModelConfig("resnet18", 10, 3))
    # a whole model, as torch.save(model) writes it: one line, no escape codes, and never
    # torch's advice to load it unsafely
    torch.save(torchvision.models.resnet18(num_classes=7), tmp_path / "whole.pt")
    with pytest.raises(S.CheckpointError) as e:
        S.load_weights(tmp_path / "whole.pt", ModelConfig("resnet18", 7, 3))
    text = str(e.value)
    assert "torchvision.models.resnet.ResNet" in text and "model.state_dict()" in text
    assert "\n" not in text and "\x1b" not in text and "weights_only" not in text
    ok = S.load_weights(path, ModelConfig("resnet18", 7, 3))
    assert torch.equal(ok.fc.weight, torch.load(path)["fc.weight"])
    # two common ways of saving, each with its fix (they failed on a tensor's name)
    state = torch.load(path)
    torch.save({"epoch": 3, "state_dict": state, "best": 0.9}, tmp_path / "ckpt.pt")
    with pytest.raises(S.CheckpointError, match=r"is a training checkpoint \(entries 'epoch', "
                       r"'state_dict', 'best'\); save its weights alone: "
                       r"torch.save\(checkpoint\['state_dict'\], path\)$"):
        S.load_weights(tmp_path / "ckpt.pt", ModelConfig("resnet18", 7, 3))
    # Lightning's: its names also carry the module's prefix, and one line fixes both (the
    # advice to save checkpoint['state_dict'] led to a second refusal, for the prefix)
    torch.save({"epoch": 3, "state_dict": {f"model.{k}": v for k, v in state.items()}},
               tmp_path / "lightning.ckpt")
    with pytest.raises(S.CheckpointError, match=r"save its weights alone: torch.save\(\{k."
                       r"removeprefix\('model.'\): v for k, v in checkpoint\['state_dict'\]."
                       r"items\(\)\}, path\)$"):
        S.load_weights(tmp_path / "lightning.ckpt", ModelConfig("resnet18", 7, 3))
    # torch's format before 1.6 is refused as such, with the line that converts it (it read
    # "truncated or not a checkpoint: File is not a zip file")
    torch.save(state, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    with pytest.raises(S.CheckpointError, match=r"legacy.pth is in torch's legacy format "
                       r"\(before torch 1.6\).*torch.save\(torch.load\(path, weights_only=True\)"):
        S.load_weights(tmp_path / "legacy.pth", ModelConfig("resnet18", 7, 3))
    torch.save(state, tmp_path / "legacy4.pth", _use_new_zipfile_serialization=False,
               pickle_protocol=4)  # which torch's safe loader cannot read: another line
    with pytest.raises(S.CheckpointError, match=r"its pickle protocol 4 is one torch's safe "
                       r"loader cannot read, so save the weights again where they were made"):
        S.load_weights(tmp_path / "legacy4.pth", ModelConfig("resnet18", 7, 3))
    os.mkfifo(tmp_path / "pipe.pt")  # never opened: a read would block
    with pytest.raises(S.CheckpointError, match=r"weights is not a regular file \(a pipe"):
        S.load_weights(tmp_path / "pipe.pt", ModelConfig("resnet18", 7, 3))
    # other formats, named: TorchScript read as "compressed, a possible bomb", safetensors as
    # "File is not a zip file" (a stranger's test, 2026-12-07); written as their libraries do
    # (safetensors: 8-byte header length, the header's JSON, the raw bytes)
    torch.jit.trace(torchvision.models.resnet18(num_classes=7).eval(),
                    torch.zeros(1, 3, 32, 32)).save(str(tmp_path / "traced.pt"))
    header = json.dumps({"fc.bias": {"dtype": "F32", "shape": [7], "data_offsets": [0, 28]}})
    (tmp_path / "w.safetensors").write_bytes(len(header).to_bytes(8, "little")
                                             + header.encode() + bytes(28))
    for name, what in (("traced.pt", "a TorchScript"), ("w.safetensors", "a safetensors")):
        with pytest.raises(S.CheckpointError, match=f"{name} is {what} file.*, which is not "
                           r"read here.*torch.save\(model.state_dict\(\), path\)$"):
            S.load_weights(tmp_path / name, ModelConfig("resnet18", 7, 3))
    # ... but a state dict with one nested extra is named by that entry
    torch.save({**state, "ema": {"fc.weight": state["fc.weight"]}}, tmp_path / "extra.pt")
    with pytest.raises(S.CheckpointError, match=r"state_dict entry ema is a dict, not a tensor"):
        S.load_weights(tmp_path / "extra.pt", ModelConfig("resnet18", 7, 3))
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pt")
    with pytest.raises(S.CheckpointError, match=r"DataParallel .* save model.module.state_dict"):
        S.load_weights(tmp_path / "dp.pt", ModelConfig("resnet18", 7, 3))
    for prefix, fix in (("_orig_mod", r"torch.compile .* save model._orig_mod.state_dict\(\)"),
                        ("net", r"saved from a wrapper \(every name starts with 'net.'\); "
                                r"save the wrapped model's state_dict\(\)$")):
        torch.save({f"{prefix}.{k}": v for k, v in state.items()}, tmp_path / "w.pt")
        with pytest.raises(S.CheckpointError, match=fix):
            S.load_weights(tmp_path / "w.pt", ModelConfig("resnet18", 7, 3))
    mixed = {f"module.{k}" if i % 2 else k: v for i, (k, v) in enumerate(state.items())}
    torch.save(mixed, tmp_path / "mixed.pt")
    with pytest.raises(S.CheckpointError, match=rf"of which {len(state) // 2} of {len(state)} "
                       r"start with 'module.' \(saved from DataParallel\); strip it from every "
                       r"name: \{k.removeprefix\('module.'\): v for k, v in state.items\(\)\}$"):
        S.load_weights(tmp_path / "mixed.pt", ModelConfig("resnet18", 7, 3))
    for name in ("mobilenet_v2", "squeezenet1_0", "alexnet"):  # weights under few modules
        assert S._saved_otherwise(getattr(torchvision.models, name)().state_dict()) is None
    # a mismatch that a setting explains says which: the stem, or the data's channels
    with pytest.raises(S.CheckpointError, match=r"conv1.weight is torch.float32 \[64, 3, 7, 7\], "
                       r"the architecture's torch.float32 \[64, 3, 3, 3\] \(weights of another "
                       r"first layer: try --set stem=imagenet\)$"):
        S.load_weights(path, ModelConfig("resnet18", 7, 3, "cifar"))
    with pytest.raises(S.CheckpointError, match=r"\(1 channel, 7 classes, imagenet stem\): .* "
                       r"\(the data has 1-channel images; the weights take 3\)$"):
        S.load_weights(path, ModelConfig("resnet18", 7, 1))
    with pytest.raises(S.CheckpointError, match=r"fc.weight is torch.float32 \[7, 512\], .* "
                       r"\(the weights classify 7 classes; the data has 10\)$"):
        S.load_weights(path, ModelConfig("resnet18", 10, 3))
    # BatchNorm's step counters left out, as many published weights do: 0, as torch loads them
    torch.save({k: v for k, v in state.items() if "num_batches_tracked" not in k},
               tmp_path / "nobt.pt")
    got = S.load_weights(tmp_path / "nobt.pt", ModelConfig("resnet18", 7, 3))
    assert int(got.bn1.num_batches_tracked) == 0 and torch.equal(got.fc.weight, state["fc.weight"])
    torch.save({3: state["fc.weight"]}, tmp_path / "intkey.pt")
    with pytest.raises(S.CheckpointError, match=r"has a key of type int \(3\), not a name"):
        S.load_weights(tmp_path / "intkey.pt", ModelConfig("resnet18", 7, 3))
    # what `approx evaluate` asks before it asks for --model
    assert S.is_checkpoint(path) is False
    with pytest.raises(S.CheckpointError, match="is a training checkpoint"):
        S.is_checkpoint(tmp_path / "ckpt.pt")


@pytest.mark.slow
def test_report_for_a_third_architecture_on_the_folder(folder, tmp_path, data_root):
    """Every section that applies to your own images, for mobilenet_v3_small, rendered.
    Left out is what does not depend on the architecture and is tested on the built-in models:
    distillation and NNCodec (a loss and a state dict), a second channel ratio, a second
    protocol and curve methods other than magnitude and sensitivity (the same steps with other
    numbers). QAT and the scratch control, which trace or rebuild the architecture, stay."""
    from approxlib import publish
    profile = tmp_path / "mine.yaml"
    profile.write_text(f"base: smoke\ndataset: imagefolder:{folder}\nval_size: 50\n"
                       f"train_size: null\nkd: false\nnncodec_qps: []\nchannel_ratios: []\n"
                       f"h_protocols: {{own: {{}}}}\n"
                       f"h_curve_methods: [l1-unstructured, l1-sensitivity]\n"
                       f"models: [mobilenet_v3_small]\nh_curve_models: [mobilenet_v3_small]\n")
    p = load_profile(str(profile))
    sections = pipeline.parse_sections(None, p)
    assert sections == ["C", "F", "G", "H"]
    store = os.environ.get("APPROX_TEST_STORE_FOLDER") or tmp_path / "models"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "report.pdf").write_bytes(b"%PDF- an earlier run's")
    made = publish.build(str(profile), sections, {}, tmp_path / "out", store, data_root,
                        pdf=False, progress=False)
    # no PDF of an earlier run is left under the name of the page it does not show
    assert "pdf" not in made and not (tmp_path / "out" / "report.pdf").exists()
    assert [f.read_bytes() for f in (tmp_path / "out").glob("report-*.pdf")] == [
        b"%PDF- an earlier run's"]
    html = made["index"].read_text()
    for letter in sections:
        assert f'id="section-{letter}"' in html
    assert 'id="section-A"' not in html
    assert "mobilenet_v3_small" in html and "fashion (imagefolder)" in html
    assert f"10 classes ({10 * TRAIN:,} images in train/, {10 * TEST:,} images in test/)" in html
    assert "stand-in" not in html
    # the file's label, not the path as given: a run from another folder, or one whose
    # notebooks are reused, writes the same results.csv
    assert pd.read_csv(made["results"]).profile.unique().tolist() == ["mine"]
    assert "profile <strong>mine</strong>" in html  # a file without a description: no "()"
    assert "profile <strong>mine</strong> (" not in html


def test_images_are_opened_only_in_image_formats_and_8_bit(folder, tmp_path):
    own = _copy(folder, tmp_path / "eps")
    # Pillow guesses formats from the bytes: this would open as EPS and run Ghostscript
    (own / "test" / "class2" / "eps.png").write_bytes(
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 32\nshowpage\n")
    _expect_error(own, r"cannot read image .*eps\.png")
    own = _copy(folder, tmp_path / "deep")
    Image.fromarray(np.full((32, 32), 1000, dtype=np.uint16)).save(
        own / "train" / "class4" / "deep.png")
    _expect_error(own, r"deep\.png has I;16 pixels \(16-bit or float\)")


def test_file_names_of_a_folder_dataset_stay_in_their_folder(folder):
    name = f"imagefolder:{folder}/../../x"
    label = D.file_label(name)
    assert "/" not in label and ":" not in label and label.startswith("imagefolder-x-")
    assert D.file_label("fashion-mnist") == "fashion-mnist"


def test_init_that_does_not_fit_a_model_fails_before_training(folder, tmp_path):
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), weights)
    p = load_profile("smoke", {"dataset": f"imagefolder:{folder}", "val_size": 50,
                               "train_size": None, "models": ["resnet18", "mobilenetv2"],
                               "init": str(weights)})
    with pytest.raises(ConfigError, match=r"init for mobilenetv2: .* does not match"):
        pipeline.dry_run(p, ["C"], S.Store(tmp_path / "models"))
    p = load_profile("smoke", {"dataset": f"imagefolder:{folder}", "val_size": 50,
                               "train_size": None, "models": ["resnet18", "mobilenetv2"],
                               "init": {"resnet18": str(weights), "default": None}})
    kinds = {s["stage"] for s in pipeline.dry_run(p, ["C"], S.Store(tmp_path / "models"))}
    assert {"given", "train"} <= kinds  # resnet18 given, mobilenetv2 trained


def test_profile_files_are_checked_like_profiles(tmp_path, monkeypatch):
    from approxlib.config import load_profile as load
    from approxlib.config import profile_label
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: [quick]\n")
    with pytest.raises(ConfigError, match="unknown base"):
        load(str(bad))
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="key: value"):
        load(str(bad))
    with pytest.raises(ConfigError, match="mine.yaml not found$"):
        load(str(tmp_path / "mine.yaml"))
    monkeypatch.chdir(tmp_path)  # a relative path says where it was looked for
    with pytest.raises(ConfigError, match=rf"^profile file mine.yaml not found \(relative paths "
                       rf"are read from {re.escape(str(tmp_path))}, the folder approx runs in\)$"):
        load("mine.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="dir.yaml is not a regular file of at most 1 MiB"):
        load(str(tmp_path / "dir.yaml"))
    assert profile_label(str(tmp_path / "quick.yaml")) == "quick-file"
    assert profile_label(str(tmp_path / "mine.yml")) == "mine"


def test_init_for_a_model_the_profile_does_not_run_is_refused(folder, tmp_path):
    """Weights named for a model no section runs (another model, or the other spelling of
    MobileNetV2) were silently unused, that model trained from scratch."""
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), weights)
    for names, named in [(["resnet18"], "mobilenet_v3_small"), (None, "mobilenet_v2")]:
        p = load_profile("smoke", {"models": names, "init": {named: str(weights),
                                                              "default": None}})
        with pytest.raises(ConfigError, match=f"init gives weights for {named}, which this "
                                              "profile does not run"):
            pipeline.dry_run(p, ["C"], S.Store(tmp_path / "models"))
    # a notebook's chosen models count as run
    p = load_profile("smoke", {"init": {"mobilenet_v3_small": str(weights), "default": None}})
    assert pipeline.plan(p, ["C"], {"C": ["mobilenet_v3_small"]})


def test_split_sizes_that_do_not_fit_fail_at_planning(folder, tmp_path, monkeypatch):
    """A folder with fewer training images than val_size (or train_size) passed the dry run and
    failed after decoding every image; its file list alone decides it."""
    folder = _copy(folder, tmp_path / "few")
    monkeypatch.setattr(F.ImageFolder, "_decoded", lambda *a: pytest.fail("decoded"))
    for ov, match in [({"val_size": 10 * TRAIN}, rf"val_size {10 * TRAIN} must be below the "
                                                  rf"{10 * TRAIN} training images"),
                      ({"val_size": 50, "train_size": 10 * TRAIN},
                       rf"train_size {10 * TRAIN} exceeds the {10 * TRAIN - 50} training")]:
        p = load_profile("smoke", {"dataset": f"imagefolder:{folder}", **ov})
        with pytest.raises(ConfigError, match=match):
            pipeline.dry_run(p, ["C"], S.Store(tmp_path / "models"))
    # section H takes its subset from h_train_size, and says so (train_size null told a user
    # "train_size 2000 exceeds …")
    p = load_profile("smoke", {"dataset": f"imagefolder:{folder}", "val_size": 50,
                               "train_size": None, "h_train_size": 10 * TRAIN})
    with pytest.raises(ConfigError, match=rf"^section H's runs \(h_train_size {10 * TRAIN}\): "
                                          rf"train_size {10 * TRAIN} exceeds"):
        pipeline.dry_run(p, ["H"], S.Store(tmp_path / "models"))
    # ... and only where h_train_size is the cause: null (H takes train_size), or another size
    for ov, match in [({"h_train_size": None, "train_size": 10 * TRAIN}, r"^train_size "),
                      ({"h_train_size": 10, "val_size": 10 * TRAIN}, r"^val_size ")]:
        p = load_profile("smoke", {"dataset": f"imagefolder:{folder}", "val_size": 50, **ov})
        with pytest.raises(ConfigError, match=match):
            pipeline.dry_run(p, ["H"], S.Store(tmp_path / "models"))


def test_a_carve_out_that_takes_a_small_class_is_refused_or_warned_of(folder, tmp_path,
                                                                    monkeypatch, caplog):
    """An equal share of each class for validation took all 30 images of an imbalanced
    folder's smallest class, and the model trained on three of four classes without a word (a
    user's folder, 2026-12-07). Here class0 keeps 4 training images, class1 7 of 40."""
    own = _copy(folder, tmp_path / "skewed")
    for c, keep in ((0, 4), (1, 7)):
        for f in sorted((own / "train" / f"class{c}").glob("*.png"))[keep:]:
            f.unlink()
    monkeypatch.setattr(F.ImageFolder, "_decoded", lambda *a: pytest.fail("decoded"))
    p = load_profile("smoke", {"dataset": f"imagefolder:{own}", "val_size": 50,
                               "train_size": None})
    with pytest.raises(ConfigError, match=r"^class 'class0' has no training image left: all "
                       r"its 4 went to validation \(val_size 50 takes an equal share of each "
                       r"class for validation; lower it, or give the images a val/ folder\)"):
        pipeline.dry_run(p, ["C"], S.Store(tmp_path / "models"))
    monkeypatch.undo()
    with caplog.at_level("WARNING"):
        s = D.load(DataConfig(f"imagefolder:{own}", None, 30, 0))  # 3 of each class
    assert torch.bincount(s.train_y).tolist()[:2] == [1, 4]
    assert ("validation took over half the training images of class 'class0' (3 of 4) "
            "(val_size 30") in caplog.text and "class1" not in caplog.text


def test_quiet_silences_the_bars_of_a_first_decoding(folder, tmp_path, capsys, monkeypatch):
    """--quiet reached the trainer, not the image folder's first decoding (a new user saw its
    bars); what the command printed without it shows the check can fail."""
    from approxlib import cli
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    for quiet in (["--quiet"], []):
        own = _copy(folder, tmp_path / f"own{len(quiet)}")  # no cache: decoded again
        code = cli.main(["train", "--profile", "smoke", "--model", "resnet18", "--dataset",
                         f"imagefolder:{own}", "--set", "val_size=50", "--set",
                         "train_size=null", "--set", "epochs=0", *quiet, "--models-dir",
                         str(tmp_path / "models"), "--data-dir", str(tmp_path / "data"),
                         "--out", str(tmp_path / f"r{len(quiet)}.pt")])
        assert code == 0
        assert ("decode own" in capsys.readouterr().err) == (not quiet)
    assert "TQDM_DISABLE" not in os.environ


def test_a_dry_run_shows_a_folder_names_escape_codes_as_escapes(folder, tmp_path, capsys):
    """The dry run lists each stage with its dataset's path: a downloaded folder's name is not
    trusted to be free of codes that clear the screen."""
    from approxlib import cli
    own = _copy(folder, tmp_path / "x\x1b[2Jy")
    code = cli.main(["report", "--profile", "smoke", "--sections", "C", "--dry-run", "--set",
                     f"dataset=imagefolder:{own}", "--set", "val_size=50", "--set",
                     "train_size=null", "--models-dir", str(tmp_path / "models")])
    out = capsys.readouterr().out
    assert code == 0 and "\x1b" not in out and "x\\x1b[2Jy" in out
    assert not (own / F.CACHE).exists()  # nothing decoded: a dry run reads names and sizes


def test_split_sizes_are_counted_without_decoding(folder, tmp_path):
    """A dry run's time estimate counts each split's images: it loaded them, so decoded and
    cached a whole folder while saying it computes nothing."""
    own = _copy(folder, tmp_path / "own")
    cfg = dataclasses.replace(D.identify(DataConfig(f"imagefolder:{own}", 100, 50)),
                              test_size=30)
    counted = D.sizes(cfg)
    assert not (own / F.CACHE).exists()
    s = D.load(cfg)
    assert counted == (len(s.train_y), len(s.val_y), len(s.test_y)) == (100, 50, 30)


def test_odd_versions_int8_nan_negative_variance_and_odd_names_are_one_line(tmp_path):
    """Attack (2026-12-07): a state dict's _metadata that is not {module: {'version': int}}
    ended in torch's TypeError; NaN in an approxlib or int8 checkpoint and a negative
    BatchNorm variance scored 10% silently; a 5,000-character extra name made a 10 KB line;
    SqueezeNet's 3×3 classifier was told to try another stem."""
    from collections import OrderedDict
    from approxlib import models, quantize
    from approxlib.config import ModelConfig, QuantConfig
    cfg = ModelConfig("resnet18", 10, 1)
    model = models.build(cfg, seed=0).eval()
    for versions in (5, {"fc": 7}, {"fc": {"version": "x"}}):
        state = OrderedDict(model.state_dict())
        state._metadata = versions
        torch.save(state, tmp_path / "v.pt")
        with pytest.raises(S.CheckpointError, match=r"v.pt: its module versions \(the state "
                           r"dict's _metadata\) are not"):
            S.load_weights(tmp_path / "v.pt", cfg)
    from approxlib import cli
    diverged = models.build(cfg, seed=0).eval()
    diverged.fc.weight.data[0, 0] = float("nan")
    S.save_checkpoint(diverged, tmp_path / "nan.pt", cfg)
    for command in ("evaluate", "prune", "quantize"):  # each refuses it, before any data
        out = [] if command == "evaluate" else ["--out", str(tmp_path / f"{command}.pt")]
        assert cli.main([command, "--profile", "smoke", "--checkpoint",
                         str(tmp_path / "nan.pt"), *out]) == 2
        assert not (tmp_path / f"{command}.pt").exists()
    bad = models.build(cfg, seed=0).eval()
    bad.bn1.running_var[0] = -1.0
    with pytest.raises(S.CheckpointError, match=r"bn1.running_var holds negative variances$"):
        S.check_weights(tmp_path / "b.pt", bad)
    q = quantize.quantize(models.build(cfg, seed=0).eval(), QuantConfig("int8-dynamic"))
    S.check_weights(tmp_path / "q.pt", q)  # a sound int8 model passes
    q.fc.set_weight_bias(q.fc.weight(), torch.full((10,), float("nan")))
    with pytest.raises(S.CheckpointError, match=r"fc._packed_params._packed_params holds 10 NaN"):
        S.check_weights(tmp_path / "q.pt", q)
    state = {**model.state_dict(), "z" * 5000 + ".w": torch.zeros(1), "": torch.zeros(1)}
    torch.save(state, tmp_path / "long.pt")
    with pytest.raises(S.CheckpointError) as e:
        S.load_weights(tmp_path / "long.pt", cfg)
    assert len(str(e.value)) < 300
    sq = ModelConfig("squeezenet1_1", 10, 1)
    state = models.build(sq, seed=0).state_dict()
    state["classifier.1.weight"] = torch.zeros(10, 512, 3, 3)
    torch.save(state, tmp_path / "sq.pt")
    with pytest.raises(S.CheckpointError) as e:
        S.load_weights(tmp_path / "sq.pt", sq)
    assert "try --set stem" not in str(e.value)
