"""Datasets as whole uint8 tensors, class-balanced seeded splits, and batched on-device augmentation.

Loading goes through torchvision's own dataset classes; we keep each split as one uint8 tensor
(N, C, H, W) and augment whole batches on the training device, as airbench does ("faster to
load+process uint8 than preprocessed fp16"): no PIL, no DataLoader workers.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import logging
import os
import pickle
import re
import shutil
import tarfile
import unicodedata
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np
import torch
from torchvision import datasets as tvd
from torchvision.datasets import utils as tvu
from torchvision.transforms.v2 import functional as tvf

from .config import ConfigError, DataConfig

log = logging.getLogger(__name__)

# Debian's `dataset-fashion-mnist` installs the original IDX files, recompressed (so their md5
# differs from torchvision's list and download=True would reject them). We unpack them to where
# torchvision looks and load with download=False; torchvision checks the unpacked files only.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")



# A split's images in memory (uint8, as decoded or resized); more needs a smaller image_size
# (a built-in split resized to 4096 pixels asked for 156 GiB and crashed)
MAX_BYTES = 16 << 30


class DatasetMissing(ConfigError):
    """The dataset is not on disk and could not be downloaded."""


@dataclasses.dataclass
class Splits:
    """Train / validation / test tensors: x uint8 (N, C, H, W), y int64 (N,)."""
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    in_channels: int


@dataclasses.dataclass(frozen=True)
class Source:
    """One dataset: its classes, channels and image size, and its parts as uint8 tensors.

    A new kind of dataset is one subclass, registered by name (`register`) or by a prefix whose
    argument follows a colon (`register_kind`, e.g. `imagefolder:PATH`). `image_size` resizes
    every image to that square (None: as stored)."""
    image_size: int | None = None
    classes: ClassVar[int]
    channels: ClassVar[int]
    native: ClassVar[int]  # stored image size (square)
    parts: ClassVar[tuple[str, ...]] = ("train", "test")  # "val" too: no carve-out needed
    builtin: ClassVar[bool] = True  # one of the datasets the original study's sections use
    # label i's name, where known without reading the data (None: not known)
    class_names: ClassVar[Sequence[str] | None] = None

    @property
    def size(self) -> int:
        return self.image_size or self.native

    @property
    def contents(self) -> str | None:
        """Digest of the files its training and validation parts read (None: torchvision
        checks its own files)."""
        return None

    @property
    def test_contents(self) -> str | None:
        """Digest of its test part's files (None: torchvision checks its own files)."""
        return None

    def read(self, part: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @classmethod
    def parse(cls, arg: str, image_size: int | None) -> Source:
        """The source a `prefix:arg` dataset name stands for (kinds registered by prefix)."""
        raise NotImplementedError

    @classmethod
    def stamp(cls, arg: str) -> str | None:
        """A cheap summary of the files a `prefix:arg` source reads (sizes, times), which
        changes when they do."""
        return None

    def labels(self, part: str, root: Path | None = None, download: bool = True) -> torch.Tensor:
        return self.split(part, root, download)[1]

    def count(self, part: str) -> int | None:
        """The part's number of images where it is known without reading them (None: not)."""
        return None

    def prepare(self, root: Path | None = None) -> None:
        """Read each part once before a run's first stage (`pipeline.prepare_data`): downloaded
        if missing, so that no two processes download one file at once; an image folder
        decodes and caches its images instead, so a bad one stops the run before any work."""
        for part in self.parts:
            self.read(part, Path(root or default_root()), downloads_allowed())

    def split(self, part: str, root: Path | None = None, download: bool = True,
              keep=None) -> tuple[torch.Tensor, torch.Tensor]:
        """One part as (uint8 N×C×H×W, int64 N), resized to `image_size`; `keep(labels)`, if
        given, picks the images kept (None: all) before any is resized, so a test subset bounds
        the work (a whole split was resized to keep a hundred of it)."""
        root = Path(root or default_root())
        made = [d for d in (root, *root.parents) if not d.exists()]  # deepest first
        try:
            x, y = self.read(part, root, download and downloads_allowed())
        except DatasetMissing:
            for d in made:  # a failed download left the folders it made, empty (2026-12-08)
                if d.is_dir() and not any(d.iterdir()):
                    d.rmdir()
            raise
        picked = keep(y) if keep is not None else None
        if picked is not None:
            x, y = x[picked], y[picked]
        if self.image_size and tuple(x.shape[-2:]) != (self.image_size,) * 2:
            need = x.shape[0] * x.shape[1] * self.image_size ** 2  # torchvision resizes uint8
            if need > MAX_BYTES:
                raise ConfigError(f"{part}: {x.shape[0]} images resized to {self.image_size}×"
                                  f"{self.image_size} need {need >> 30} GiB, more than "
                                  f"{MAX_BYTES >> 30} GiB; set a smaller image_size")
            x = resize_tensor(x, self.image_size)
        return x, y


SOURCES: dict[str, type[Source]] = {}  # by name
KINDS: dict[str, type[Source]] = {}  # by prefix: `prefix:argument`, built with the argument


def register(name: str):
    def add(cls):
        SOURCES[name] = cls
        return cls
    return add


def register_kind(prefix: str):
    def add(cls):
        KINDS[prefix] = cls
        return cls
    return add


def source(name: str, image_size: int | None = None) -> Source:
    """The dataset a profile's `dataset` names; one line naming the valid ones if none."""
    if isinstance(name, str) and name in SOURCES:
        return SOURCES[name](image_size)
    prefix, colon, arg = name.partition(":") if isinstance(name, str) else ("", "", "")
    if colon and prefix in KINDS and arg:
        if (prefix, arg) not in _STAMPS:
            _STAMPS[prefix, arg] = KINDS[prefix].stamp(arg)
        return _kind(prefix, arg, image_size, _STAMPS[prefix, arg])
    valid = [*SOURCES, *(f"{k}:PATH" for k in KINDS)]
    raise ConfigError(f"unknown dataset {str(name)[:80]!r}; valid: {', '.join(valid)}")


_STAMPS: dict[tuple[str, str], str | None] = {}  # taken once per run (see refresh)


def refresh() -> None:
    """Look at the files of `prefix:arg` datasets again: each run starts with this, so a file
    changed between runs (in a notebook session, say) gives a new digest and new cache keys.
    (A stamp of 70,000 PNGs takes 0.7 s: once per run, not once per variant.)"""
    _STAMPS.clear()


@functools.lru_cache(maxsize=16)
def _kind(prefix: str, arg: str, image_size: int | None, stamp: str | None) -> Source:
    """One instance per argument and state of its files (`stamp`), so what it scans of its
    files is scanned once, and again when they change."""
    return KINDS[prefix].parse(arg, image_size)


def names() -> list[str]:
    return [*SOURCES, *(f"{k}:PATH" for k in KINDS)]


def resize_tensor(x: torch.Tensor, size: int) -> torch.Tensor:
    """Shorter side to `size`, then the centre square (torchvision's Resize + CenterCrop)."""
    x = tvf.resize(x, size, antialias=True)
    return tvf.center_crop(x, [size, size])


@register("fashion-mnist")
@dataclasses.dataclass(frozen=True)
class FashionMNIST(Source):
    classes, channels, native = 10, 1, 28
    class_names = tuple(tvd.FashionMNIST.classes)

    def read(self, part, root, download):
        local = _place_debian_fashion_mnist(root)
        try:
            ds = tvd.FashionMNIST(root, train=part == "train", download=download and not local)
        except (RuntimeError, OSError) as e:  # URLError is an OSError
            raise DatasetMissing(
                f"fashion-mnist not found in {root}/FashionMNIST ({_why(download, e)}); install "
                f"Debian's dataset-fashion-mnist or allow the download") from None
        except (AssertionError, ValueError) as e:  # torchvision's checks of the IDX files
            raise DatasetMissing(
                f"fashion-mnist in {root}/FashionMNIST/raw cannot be read (damaged: "
                f"{str(e)[:80] or 'a wrong header'}); delete that folder to unpack or download "
                f"it again") from None
        return ds.data.unsqueeze(1).contiguous(), ds.targets.long()


@dataclasses.dataclass(frozen=True)
class _Cifar(Source):
    channels, native = 3, 32
    dataset: ClassVar[type] = tvd.CIFAR10

    def read(self, part, root, download):
        cls, root = self.dataset, Path(root)
        _unpack_placed(cls, root, download)  # torchvision unpacks only in `download()`
        try:
            ds = cls(str(root), train=part == "train", download=download)
        except (RuntimeError, OSError) as e:
            raise DatasetMissing(_cifar_missing(cls, root, download, e)) from None
        except (ValueError, EOFError, KeyError, TypeError, pickle.UnpicklingError) as e:
            # files whose checksums torchvision was told to accept (a re-packed copy)
            raise DatasetMissing(f"{root / cls.base_folder}: its batches are not in the CIFAR "
                                 f"layout ({type(e).__name__}: {str(e)[:80]})") from None
        y = torch.tensor(ds.targets, dtype=torch.long)
        span = (int(y.min()), int(y.max())) if len(y) else (0, 0)
        if len(ds.classes) != self.classes or not 0 <= span[0] <= span[1] < self.classes:
            raise DatasetMissing(f"{root / cls.base_folder} holds {len(ds.classes)} class names "
                                 f"and labels {span[0]}–{span[1]}; "
                                 f"{cls.__name__.lower()} has {self.classes} classes, 0–"
                                 f"{self.classes - 1}")
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return x, y


def _cifar_files(cls, root: Path) -> list[tuple[Path, str]]:
    """Every file of an unpacked CIFAR folder with the md5 torchvision checks it against."""
    unpacked = root / cls.base_folder
    return [(unpacked / name, md5) for name, md5 in
            (*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"]))]


def _unpack_placed(cls, root: Path, download: bool) -> None:
    """Unpack an archive the user placed in `root` where its folder is not there yet (a
    stranger's offline run was told to place the archive it had placed, 2026-12-07); a damaged
    archive (which a download may replace) or an unwritable folder is one line naming it."""
    archive = root / cls.filename
    if (root / cls.base_folder).exists() or not archive.is_file():
        return
    if not tvu.check_integrity(str(archive), cls.tgz_md5):
        if download:
            return  # torchvision fetches the file again
        raise DatasetMissing(f"{archive} fails its checksum (damaged, or not the official "
                             f"file): download it again")
    try:
        tvu.extract_archive(str(archive), str(root))
    except (OSError, tarfile.TarError, EOFError) as e:
        shutil.rmtree(root / cls.base_folder, ignore_errors=True)  # nothing half-unpacked
        raise DatasetMissing(f"cannot unpack {archive} into {root}: "
                             f"{getattr(e, 'strerror', None) or e}") from None


def _cifar_missing(cls, root: Path, download: bool, e: Exception) -> str:
    """Why torchvision found no usable CIFAR files: which of an unpacked folder's files are
    missing or damaged, else that nothing is there (every case read "not found" before)."""
    unpacked, archive = root / cls.base_folder, root / cls.filename
    if unpacked.exists():
        bad = [f.name for f, md5 in _cifar_files(cls, root)
               if not tvu.check_integrity(str(f), md5)]
        if bad:
            again = (f"delete the folder to unpack {archive.name} again" if archive.is_file()
                     else f"place {archive.name} in {root}/ instead")
            return (f"{unpacked}: {', '.join(bad[:3])}{' and more' if len(bad) > 3 else ''} "
                    f"missing or damaged (fails its checksum); {again}")
    if isinstance(e, PermissionError):
        return f"cannot write to {root} ({e.strerror}): {cls.__name__.lower()} needs its folder"
    return (f"{cls.__name__.lower()} not found in {unpacked} ({_why(download, e)}); place "
            f"{archive.name} in {root}/ or allow the download")


@register("cifar10")
@dataclasses.dataclass(frozen=True)
class Cifar10(_Cifar):
    classes, dataset = 10, tvd.CIFAR10


@register("cifar100")
@dataclasses.dataclass(frozen=True)
class Cifar100(_Cifar):
    classes, dataset = 100, tvd.CIFAR100


def recorded_classes(cfg: DataConfig) -> dict:
    """What a checkpoint records of the classes it was trained on: an image folder's names
    (its folders can change under the same path); nothing for a built-in dataset, whose name
    pins its classes (and whose checkpoints keep their bytes)."""
    src = source(cfg.dataset, cfg.image_size)
    return {} if src.builtin or src.class_names is None else {"classes": list(src.class_names)}


def trained_classes(recorded, dataset) -> Sequence[str] | None:
    """The class names a checkpoint's model was trained on: those it records (`recorded`, its
    metadata's `classes`), else those of the built-in dataset it records; None where neither
    says. (Finding the recorded dataset is the caller's, which reads it for its data anyway.)"""
    if isinstance(recorded, list) and all(isinstance(n, str) for n in recorded):
        return recorded
    return SOURCES[dataset].class_names if isinstance(dataset, str) and dataset in SOURCES \
        else None


def differing(names: Sequence[str], other: Sequence[str], extra: str = "extra",
              shown: int = 5) -> str:
    """How the classes `other` differ from `names`: which it lacks and which it adds, the first
    `shown` of each named and the rest counted (hundreds of classes stay one line), or that it
    orders the same ones otherwise (label i then names another class)."""
    def cut(x: str, at: int = 40) -> str:  # the line stays short
        return x if len(x) <= at else x[:at - 1] + "…"

    def some(xs: list[str]) -> str:  # each name cut, but where that would show two alike
        more = f" and {len(xs) - shown} more" if len(xs) > shown else ""
        return ", ".join(_visible(cut(x, 200 if cut(x) in alike_cut else 40))
                         for x in xs[:shown]) + more
    theirs, ours = set(other), set(names)
    missing = [c for c in names if c not in theirs]
    added = sorted(theirs - ours)
    alike_cut = {cut(c) for c in missing} & {cut(c) for c in added}
    if not (missing or added):
        return "the same classes in another order"
    alike = {_plain(c) for c in missing} & {_plain(c) for c in added}
    return "; ".join(([f"missing {some(missing)}"] if missing else [])
                     + ([f"{extra}: {some(added)}"] if added else [])
                     + (["names that differ only in Unicode normalization (a folder copied "
                         "from macOS) or in spaces at their ends"] if alike else []))


def _plain(name: str) -> str:
    return unicodedata.normalize("NFC", name).strip()


def _visible(name: str) -> str:
    """A class name as read, or escaped where what differs would not show: spaces at its ends,
    decomposed accents ("Ma\u0308ntel" beside "Mäntel" printed alike in one line)."""
    return name if _plain(name) == name and name.isprintable() else ascii(name)


def downloads_allowed() -> bool:
    """APPROX_OFFLINE=1 turns every download off (tests, air-gapped machines): fail fast instead."""
    return os.environ.get("APPROX_OFFLINE", "") in ("", "0")


def default_root() -> Path:
    return Path(os.environ.get("APPROX_DATA", "data"))


def _place_debian_fashion_mnist(root: Path) -> bool:
    """Unpack Debian's gzip IDX files into torchvision's raw folder; True if they are in place."""
    raw = root / "FashionMNIST" / "raw"
    names = [Path(url).stem for url, _ in tvd.FashionMNIST.resources]  # unpacked file names
    if all((raw / n).exists() for n in names):
        return True
    if not all((DEBIAN_FASHION_MNIST / f"{n}.gz").exists() for n in names):
        return False
    from . import store  # store -> quantize -> share -> train -> data: a cycle at import
    for n in names:  # all or nothing, and no temporary file left (a folder in the way)
        with (store.atomic_path(raw / n) as tmp, open(tmp, "wb") as dst,
              gzip.open(DEBIAN_FASHION_MNIST / f"{n}.gz", "rb") as src):
            shutil.copyfileobj(src, dst)
    return True


def file_label(name: str) -> str:
    """A dataset's name fit for a file name: as it is, or `kind-folder-hash` for `kind:PATH`
    (a path would make folders, or climb out of the report's)."""
    if re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return name
    kind, _, arg = name.partition(":")
    tail = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(arg).name)[:40]
    return f"{kind}-{tail}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def identify(cfg: DataConfig) -> DataConfig:
    """The config with its files' digest where the dataset has one, so that changed images
    give new cache keys (torchvision's datasets check their own files and keep none)."""
    src = source(cfg.dataset, cfg.image_size)
    n = src.count("train")
    if n is not None:  # sizes that do not fit fail here, at planning (a dry run too), and a
        split_sizes(cfg, n, src)  # class the carve-out leaves no training image
        carve(cfg, src.labels("train", None, False), src)
    if src.contents is None:
        return cfg
    return dataclasses.replace(cfg, contents=src.contents, test_contents=src.test_contents)


def split_sizes(cfg: DataConfig, n: int, src: Source) -> tuple[int, int]:
    """(validation images carved from `n` training images, training images kept): none carved
    where the dataset has its own validation part. ConfigError where there are too few."""
    own_val = "val" in src.parts
    if not own_val and cfg.val_size >= n:
        hint = "" if src.builtin else " (or give the images a val/ folder)"  # yours can have one
        raise ConfigError(f"val_size {cfg.val_size} must be below the {n} training images{hint}")
    rest = n - (0 if own_val else cfg.val_size)
    n_train = rest if cfg.train_size is None else cfg.train_size
    if n_train > rest:
        raise ConfigError(f"train_size {n_train} exceeds the {rest} training images left after "
                          f"the validation split")
    return n - rest, n_train


def load_split(name: str, train: bool, root: Path | None = None,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The training or test part of a dataset as (uint8 N×C×H×W, int64 N), as stored."""
    return source(name).split("train" if train else "test", root, download)


def _why(download: bool, e: Exception) -> str:
    if not download:
        return "downloads are off" + (" (APPROX_OFFLINE=1)" if not downloads_allowed() else "")
    return f"download failed: {type(e).__name__}"


def balanced_indices(y: torch.Tensor, n: int, generator: torch.Generator,
                     exclude: torch.Tensor | None = None) -> torch.Tensor:
    """`n` indices with the classes as equal as possible (remainder to the first classes), seeded."""
    classes = torch.unique(y)
    mask = torch.ones(len(y), dtype=torch.bool)
    if exclude is not None:
        mask[exclude] = False
    pools = [torch.nonzero((y == c) & mask).flatten() for c in classes]
    pools = [p[torch.randperm(len(p), generator=generator)] for p in pools]
    available = sum(len(p) for p in pools)
    if n > available:
        raise ConfigError(f"asked for {n} images but only {available} are available")
    base, extra = divmod(n, len(classes))
    want = [base + (i < extra) for i in range(len(classes))]
    # A class with too few images gives its share to the others, so the total is still n.
    take = [min(w, len(p)) for w, p in zip(want, pools)]
    short = n - sum(take)
    while short:
        for i, p in enumerate(pools):
            if short and take[i] < len(p):
                take[i] += 1
                short -= 1
    picked = torch.cat([p[:k] for p, k in zip(pools, take)])
    return picked[torch.randperm(len(picked), generator=generator)]


def test_indices(y: torch.Tensor, test_size: int | None) -> torch.Tensor | None:
    """The test images a profile keeps (None: all), in the split's order. Class-balanced and
    the same for every seed: every model of a run, whatever its seed, is scored on the same
    images, so paired tests (McNemar) compare like with like."""
    if test_size is None or test_size >= len(y):
        return None
    return balanced_indices(y, test_size, torch.Generator().manual_seed(0)).sort().values


def test_labels(cfg: DataConfig, root: Path | None = None) -> torch.Tensor:
    """The labels of the test images a run scores (what its stored predictions line up with)."""
    y = source(cfg.dataset).labels("test", root)  # labels need no resizing
    keep = test_indices(y, cfg.test_size)
    return y if keep is None else y[keep]


def val_labels(cfg: DataConfig, root: Path | None = None) -> torch.Tensor:
    """The labels of the validation images `load` gives a run, from the labels alone: the
    dataset's own part, or the carve-out `load` makes (the same seeded draw, first from its
    generator). What section H judges a run on, so its chance level is the validation split's,
    not the test split's (an imbalanced folder's balanced carve-out had 28% where its test
    split had 81%, and every run was called one that learned nothing; 2026-12-07)."""
    src = source(cfg.dataset)  # labels need no resizing
    if "val" in src.parts:
        return src.labels("val", root)
    y = src.labels("train", root)
    return y[carve(cfg, y, src)[0]]


def carve(cfg: DataConfig, y: torch.Tensor, src: Source, warn: bool = False
          ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(validation indices, None where the dataset has its own part; training indices) into
    the training split's labels `y`: seeded draws, each as class-balanced as the classes
    allow. A class the carve-out leaves no training image is a ConfigError, one it leaves
    under half of them a warning with `warn`: on an imbalanced folder an equal share of each
    class took all 30 images of one class into validation, and the model trained on three of
    four classes without a word (a user's folder, 2026-12-07)."""
    g = torch.Generator().manual_seed(cfg.seed)
    n_val, n_train = split_sizes(cfg, len(y), src)
    val_idx = None if "val" in src.parts else balanced_indices(y, n_val, g)
    train_idx = balanced_indices(y, n_train, g, exclude=val_idx)
    if val_idx is not None:
        _check_carve(cfg, torch.bincount(y, minlength=src.classes),
                     torch.bincount(y[val_idx], minlength=src.classes), src, warn)
    return val_idx, train_idx


def _check_carve(cfg: DataConfig, total: torch.Tensor, taken: torch.Tensor, src: Source,
                 warn: bool) -> None:
    def name(i: int) -> str:
        return repr(src.class_names[i]) if src.class_names else str(i)
    left = total - taken
    how = (f"val_size {cfg.val_size} takes an equal share of each class for validation"
           + ("" if src.builtin else "; lower it, or give the images a val/ folder"))
    for i in torch.nonzero((total > 0) & (left == 0)).flatten().tolist():
        raise ConfigError(f"class {name(i)} has no training image left: all its "
                          f"{int(total[i])} went to validation ({how})")
    short = torch.nonzero(left * 2 < total).flatten().tolist()
    if warn and short:
        log.warning("validation took over half the training images of %s (%s)", ", ".join(
            f"class {name(i)} ({int(taken[i])} of {int(total[i])})" for i in short), how)


@functools.lru_cache(maxsize=64)  # a dry run prices each stage: a built-in split is read once
def sizes(cfg: DataConfig, root: Path | None = None) -> tuple[int, int, int]:
    """(training, validation, test) images a run of `cfg` uses, from the labels alone: an
    image folder's come from its file names, so nothing is decoded or cached (a dry run's time
    estimate loaded every split, and so decoded and cached a whole folder)."""
    src = source(cfg.dataset)  # labels need no resizing
    n_val, n_train = split_sizes(cfg, len(src.labels("train", root, False)), src)
    n_val = len(src.labels("val", root, False)) if "val" in src.parts else n_val
    y_test = src.labels("test", root, False)
    keep = test_indices(y_test, cfg.test_size)
    return n_train, n_val, len(y_test) if keep is None else len(keep)


_CACHE: dict[tuple, Splits] = {}


def load(cfg: DataConfig, root: Path | None = None, download: bool = True) -> Splits:
    """Validation from the dataset's own part if it has one, else carved from the training
    part (class-balanced, seeded); then the (optional) training subset; and the (optional)
    test subset (`test_indices`)."""
    key = (cfg, str(root or default_root()))
    if key in _CACHE:
        return _CACHE[key]
    src = source(cfg.dataset, cfg.image_size)
    if cfg.contents is not None and identify(cfg) != cfg:
        refresh()  # a long-lived process (a Dask worker) took its stamp before the change
        src = source(cfg.dataset, cfg.image_size)
    if cfg.contents is not None and identify(cfg) != cfg:
        raise ConfigError(f"{cfg.dataset} changed after this run was planned; run it again")
    train_x, train_y = src.split("train", root, download)
    test_x, test_y = src.split("test", root, download,
                               keep=lambda y: test_indices(y, cfg.test_size))
    val_idx, train_idx = carve(cfg, train_y, src, warn=True)
    if val_idx is None:
        val_x, val_y = src.split("val", root, download)
    else:
        val_x, val_y = train_x[val_idx], train_y[val_idx]
    splits = Splits(train_x[train_idx], train_y[train_idx], val_x, val_y, test_x, test_y,
                    src.classes, src.channels)
    _CACHE[key] = splits
    return splits


def augment(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero padding) + horizontal flip of a whole uint8 batch, on x's device.

    Equal in distribution to torchvision's RandomCrop(size, padding) + RandomHorizontalFlip per
    sample, but one gather for the batch. Random numbers come from `generator` (on the CPU) so a
    run repeats exactly whatever the device.
    """
    n, _, h, w = x.shape
    if padding:
        padded = torch.nn.functional.pad(x, (padding,) * 4)
        dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[batch, chans, rows, cols]
    if flip:
        mask = (torch.rand(n, generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


# Images converted for a model in this process: every training step, prediction and calibration
# batch passes through `to_float` (latency runs use random inputs), so stage accounting reads
# the work of a stage as the difference of this count around it.
_IMAGES = [0]


def images_seen() -> int:
    return _IMAGES[0]


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 → float in [0, 1]. No mean/std normalization, as the original (BatchNorm copes)."""
    if x.dtype != torch.uint8:  # a float batch would be divided by 255 once more, silently
        raise TypeError(f"images must be uint8 (0-255), as approxlib's data holds them, not "
                        f"{x.dtype}: it scales them itself")
    _IMAGES[0] += len(x)
    return x.float().div_(255)


from . import folder  # noqa: F401  registers `imagefolder:` (it builds on this module)
