import hashlib
import pickle
import shutil

import numpy as np
import pytest
import torch
from torchvision import datasets as tvd

from approxlib import data
from approxlib.config import ConfigError, DataConfig


def test_fashion_mnist_is_real_and_uint8(data_root):
    x, y = data.load_split("fashion-mnist", True, data_root)
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (60000,) and set(y.unique().tolist()) == set(range(10))
    assert torch.bincount(y).tolist() == [6000] * 10  # the real data set is balanced


def test_splits_are_balanced_seeded_and_disjoint(data_root):
    cfg = DataConfig("fashion-mnist", train_size=1000, val_size=300, seed=3)
    s = data.load(cfg, data_root)
    assert len(s.train_y) == 1000 and len(s.val_y) == 300 and len(s.test_y) == 10000
    assert torch.bincount(s.train_y).tolist() == [100] * 10
    assert torch.bincount(s.val_y).tolist() == [30] * 10
    # No validation image is also a training image.
    tr = {hashlib.md5(x.numpy().tobytes()).hexdigest() for x in s.train_x}
    va = {hashlib.md5(x.numpy().tobytes()).hexdigest() for x in s.val_x}
    assert len(tr & va) <= 2  # Fashion-MNIST has a few exact duplicate images, not index overlap
    data._CACHE.clear()
    again = data.load(cfg, data_root)
    assert torch.equal(again.train_x, s.train_x)
    other = data.load(DataConfig("fashion-mnist", 1000, 300, seed=4), data_root)
    assert not torch.equal(other.train_x, s.train_x)
    # the validation labels, from the labels alone, are the carve-out's own, in order
    assert torch.equal(data.val_labels(cfg, data_root), s.val_y)
    assert torch.equal(data.val_labels(DataConfig("fashion-mnist", 1000, 300, seed=4),
                                       data_root), other.val_y)


def test_test_subset_is_balanced_and_leaves_train_and_val_alone(data_root):
    full = data.load(DataConfig("fashion-mnist", 1000, 300, seed=3), data_root)
    sub = data.load(DataConfig("fashion-mnist", 1000, 300, seed=3, test_size=2000), data_root)
    assert len(sub.test_y) == 2000 and torch.bincount(sub.test_y).tolist() == [200] * 10
    assert torch.equal(sub.train_x, full.train_x) and torch.equal(sub.val_x, full.val_x)
    # each kept image is one of the test split's, in the split's order
    rows = {x.numpy().tobytes(): i for i, x in enumerate(full.test_x)}
    where = [rows[x.numpy().tobytes()] for x in sub.test_x]
    assert where == sorted(where) and len(set(where)) == 2000
    # the same images for every seed (paired tests across seeds), and the labels alone say which
    other = data.load(DataConfig("fashion-mnist", 1000, 300, seed=4, test_size=2000), data_root)
    assert torch.equal(other.test_x, sub.test_x)
    assert torch.equal(data.test_labels(DataConfig("fashion-mnist", 10, 10, test_size=2000),
                                        data_root), sub.test_y)
    # asking for more than the split holds keeps the whole split
    assert len(data.load(DataConfig("fashion-mnist", 1000, 300, 3, test_size=10**6), data_root)
               .test_y) == 10000
    with pytest.raises(ConfigError, match="test_size"):
        DataConfig("fashion-mnist", 1000, 300, test_size=0)


def test_balanced_indices_excludes_and_spreads_remainder():
    y = torch.arange(10).repeat(10)
    g = torch.Generator().manual_seed(0)
    idx = data.balanced_indices(y, 23, g, exclude=torch.tensor([0, 1, 2]))
    assert len(idx) == 23 and len(set(idx.tolist())) == 23
    assert not {0, 1, 2} & set(idx.tolist())
    counts = torch.bincount(y[idx], minlength=10)
    assert counts.max() - counts.min() <= 1


def test_augment_crops_are_windows_of_the_padded_image():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = data.augment(x, padding=2, flip=False, generator=g)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(16):
        windows = [padded[i, :, r:r + 8, c:c + 8] for r in range(5) for c in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_augment_flip_and_identity():
    x = torch.randint(0, 256, (64, 1, 5, 5), dtype=torch.uint8)
    assert torch.equal(data.augment(x, 0, False, torch.Generator()), x)
    out = data.augment(x, 0, True, torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, xi.flip(2)) and not torch.equal(o, xi) for o, xi in zip(out, x)]
    same = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 10 < sum(flipped) < 54  # about half flipped


def _write_cifar(root, cls, n_per_file=20, n_classes=10):
    """Small files in the exact CIFAR python pickle layout; returns their md5s."""
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    label_key = "labels" if cls is tvd.CIFAR10 else "fine_labels"
    md5 = {}
    for name, _ in cls.train_list + cls.test_list:
        entry = {"data": rng.integers(0, 256, (n_per_file, 3072), dtype=np.uint8),
                 label_key: rng.integers(0, n_classes, n_per_file).tolist(),
                 "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(entry))
        md5[name] = hashlib.md5((folder / name).read_bytes()).hexdigest()
    meta_key = "label_names" if cls is tvd.CIFAR10 else "fine_label_names"
    (folder / cls.meta["filename"]).write_bytes(
        pickle.dumps({meta_key: [f"c{i}" for i in range(n_classes)]}))
    md5[cls.meta["filename"]] = hashlib.md5((folder / cls.meta["filename"]).read_bytes()).hexdigest()
    return md5


@pytest.mark.parametrize("name, cls, classes", [("cifar10", tvd.CIFAR10, 10),
                                                ("cifar100", tvd.CIFAR100, 100)])
def test_cifar_loads_through_torchvision(tmp_path, monkeypatch, name, cls, classes):
    md5 = _write_cifar(tmp_path, cls, n_classes=classes)
    # torchvision verifies the real files' md5; point it at our small files' sums instead.
    monkeypatch.setattr(cls, "train_list", [[n, md5[n]] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5[n]] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})
    x, y = data.load_split(name, True, tmp_path, download=False)
    n_train = 20 * len(cls.train_list)
    assert x.shape == (n_train, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.long
    raw = pickle.loads((tmp_path / cls.base_folder / cls.train_list[0][0]).read_bytes())
    # CHW order preserved: the first 1024 bytes of a row are the red plane.
    assert torch.equal(x[0, 0].flatten(), torch.from_numpy(raw["data"][0, :1024]))
    xt, _ = data.load_split(name, False, tmp_path, download=False)
    assert len(xt) == 20


def _md5_of(cls, md5, monkeypatch):
    """torchvision verifies the real files' md5; point it at our small files' sums instead."""
    monkeypatch.setattr(cls, "train_list", [[n, md5[n]] for n, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[n, md5[n]] for n, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})


def test_a_placed_cifar_archive_is_unpacked_offline_and_damage_is_named(tmp_path, monkeypatch):
    """A stranger's CIFAR files (2026-12-07): offline, the archive placed as the README says was
    asked for again; a damaged archive, a missing batch, labels past the class count and a
    batch of the wrong width all read "not found", or ended in a traceback."""
    import tarfile
    cls = tvd.CIFAR10
    md5 = _write_cifar(tmp_path / "made", cls)
    _md5_of(cls, md5, monkeypatch)
    archive = tmp_path / "data" / cls.filename
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as t:
        t.add(tmp_path / "made" / cls.base_folder, cls.base_folder)
    monkeypatch.setattr(cls, "tgz_md5", hashlib.md5(archive.read_bytes()).hexdigest())
    x, _ = data.load_split("cifar10", True, tmp_path / "data", download=False)
    assert len(x) == 100 and (tmp_path / "data" / cls.base_folder / "data_batch_5").is_file()
    (tmp_path / "data" / cls.base_folder / "data_batch_3").unlink()
    with pytest.raises(data.DatasetMissing, match=r"cifar-10-batches-py: data_batch_3 missing or "
                       r"damaged \(fails its checksum\); delete the folder to unpack "
                       r"cifar-10-python.tar.gz again$"):
        data.load_split("cifar10", True, tmp_path / "data", download=False)
    shutil.rmtree(tmp_path / "data" / cls.base_folder)
    archive.write_bytes(archive.read_bytes()[:500])  # a cut download
    with pytest.raises(data.DatasetMissing, match=r"cifar-10-python.tar.gz fails its checksum "
                       r"\(damaged, or not the official file\): download it again$"):
        data.load_split("cifar10", True, tmp_path / "data", download=False)
    assert not (tmp_path / "data" / cls.base_folder).exists()
    # re-packed files whose checksums torchvision accepts: a label past the classes, a width
    folder = tmp_path / "made" / cls.base_folder
    for change, error in ((lambda e: e["labels"].__setitem__(0, 10), r"holds 10 class names "
                           r"and labels 0–10; cifar10 has 10 classes, 0–9$"),
                          (lambda e: e.update(data=e["data"][:, :3000]),
                           r"its batches are not in the CIFAR layout \(ValueError")):
        entry = pickle.loads((folder / "data_batch_1").read_bytes())
        change(entry)
        (folder / "data_batch_1").write_bytes(pickle.dumps(entry))
        _md5_of(cls, {**md5, "data_batch_1": hashlib.md5(
            (folder / "data_batch_1").read_bytes()).hexdigest()}, monkeypatch)
        with pytest.raises(data.DatasetMissing, match=error):
            data.load_split("cifar10", True, tmp_path / "made", download=False)


def test_missing_cifar_is_a_clear_error(tmp_path):
    with pytest.raises(data.DatasetMissing, match=r"cifar10 not found in .*downloads are off"):
        data.load_split("cifar10", True, tmp_path)


def test_unpacking_into_a_blocked_folder_leaves_no_temporary_file(tmp_path):
    """A folder where an IDX file goes: one clear error, and no 47 MB temporary file left."""
    if not all((data.DEBIAN_FASHION_MNIST / f"{n}.gz").exists()
               for n in (p.split("/")[-1].removesuffix(".gz")
                         for p, _ in tvd.FashionMNIST.resources)):
        pytest.skip("needs Debian's dataset-fashion-mnist")
    raw = tmp_path / "FashionMNIST" / "raw"
    (raw / "t10k-labels-idx1-ubyte").mkdir(parents=True)
    with pytest.raises(OSError):
        data._place_debian_fashion_mnist(tmp_path)
    assert [f.name for f in raw.iterdir() if f.name.startswith(".")] == []


def test_damaged_fashion_mnist_files_are_one_clear_error(data_root, tmp_path):
    """torchvision asserts on a wrong IDX header and fails int() on an empty file."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_root / "FashionMNIST" / "raw").iterdir():
        if not f.name.endswith(".gz"):
            (raw / f.name).write_bytes(f.read_bytes())
    (raw / "t10k-images-idx3-ubyte").write_bytes(bytes(range(256)) * 64)
    with pytest.raises(data.DatasetMissing, match=r"cannot be read \(damaged"):
        data.load_split("fashion-mnist", False, tmp_path, download=False)
    (raw / "t10k-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(data.DatasetMissing, match=r"cannot be read \(damaged"):
        data.load_split("fashion-mnist", False, tmp_path, download=False)


def test_differing_classes_are_named_briefly():
    assert data.differing(["a", "b", "c"], ["a", "c", "d"]) == "missing b; extra: d"
    assert data.differing(["a", "b"], ["b", "a"]) == "the same classes in another order"
    many = [f"c{i:02d}" for i in range(12)]
    assert data.differing(many, [], "gone") == "missing c00, c01, c02, c03, c04 and 7 more"
    # names cut at 40 characters, but not where two would then print alike (a review found
    # "missing aaa…; extra: aaa…")
    long_a, long_b, other = "a" * 50 + "x", "a" * 50 + "y", "z" * 50
    assert data.differing([long_a], [long_b]) == f"missing {long_a}; extra: {long_b}"
    assert data.differing([long_a], [other]) == f"missing {'a' * 39}…; extra: {'z' * 39}…"


def test_trained_classes_come_from_the_record_or_the_builtin_dataset():
    assert list(data.trained_classes(None, "fashion-mnist"))[:2] == ["T-shirt/top", "Trouser"]
    assert data.trained_classes(["x", "y"], "fashion-mnist") == ["x", "y"]
    assert data.trained_classes(None, "cifar10") is None
    assert data.trained_classes([1, 2], ["broken"]) is None
    assert data.recorded_classes(DataConfig("fashion-mnist", None, 100)) == {}


def test_a_test_subset_is_picked_before_resizing_and_equals_the_resized_split(data_root):
    """`test_size` bounds the work: the kept images alone are resized (a checkpoint recording
    image_size 1280 resized the whole 10,000-image split, 15 GiB, to keep 100), bit for bit
    what picking from the resized split gave."""
    src = data.source("fashion-mnist", 40)
    x_all, y_all = src.split("test", data_root)
    keep = data.test_indices(y_all, 500)
    x, y = src.split("test", data_root, keep=lambda labels: data.test_indices(labels, 500))
    assert x.shape == (500, 1, 40, 40) and torch.equal(x, x_all[keep]) and torch.equal(y, y_all[keep])


def test_a_failed_download_leaves_no_empty_folder(tmp_path, monkeypatch):
    """`approx train` on a CIFAR this machine could not download left an empty data folder
    behind (a GPU user, 2026-12-08): the folders a read made are removed when it fails."""
    def read(self, part, root, download):
        root.mkdir(parents=True)  # as torchvision's download does
        raise data.DatasetMissing("not found")
    monkeypatch.setattr(data.FashionMNIST, "read", read)
    (tmp_path / "kept").mkdir()
    with pytest.raises(data.DatasetMissing):
        data.source("fashion-mnist").split("test", tmp_path / "a" / "b")
    with pytest.raises(data.DatasetMissing):
        data.source("fashion-mnist").split("test", tmp_path / "kept" / "c")
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]  # there before: stays
