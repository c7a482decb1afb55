"""Datasets as whole uint8 tensors, class-balanced seeded splits, and batched on-device augmentation.

Loading goes through torchvision's own dataset classes; we keep each split as one uint8 tensor
(N, C, H, W) and augment whole batches on the training device, as airbench does ("faster to
load+process uint8 than preprocessed fp16"): no PIL, no DataLoader workers.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision import datasets as tvd

from .config import ConfigError, DataConfig

# Debian's `dataset-fashion-mnist` installs the original IDX files, recompressed (so their md5
# differs from torchvision's list and download=True would reject them). We unpack them to where
# torchvision looks and load with download=False; torchvision checks the unpacked files only.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "fashion-mnist": 10}
IN_CHANNELS = {"cifar10": 3, "cifar100": 3, "fashion-mnist": 1}
IMAGE_SIZE = {"cifar10": 32, "cifar100": 32, "fashion-mnist": 28}


class DatasetMissing(ConfigError):
    """The dataset is not on disk and could not be downloaded."""


@dataclass
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
    raw.mkdir(parents=True, exist_ok=True)
    for n in names:
        fd, tmp = tempfile.mkstemp(dir=raw, prefix=f".{n}.")
        with gzip.open(DEBIAN_FASHION_MNIST / f"{n}.gz", "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(tmp, raw / n)  # atomic: a killed run never leaves a half-written file
    return True


def load_split(name: str, train: bool, root: Path | None = None,
               download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of a dataset as (uint8 N×C×H×W, int64 N)."""
    root = Path(root or default_root())
    download = download and downloads_allowed()
    if name == "fashion-mnist":
        local = _place_debian_fashion_mnist(root)
        try:
            ds = tvd.FashionMNIST(root, train=train, download=download and not local)
        except Exception as e:  # torchvision raises RuntimeError / URLError / OSError
            raise DatasetMissing(
                f"fashion-mnist not found in {root}/FashionMNIST ({_why(download, e)}); install "
                f"Debian's dataset-fashion-mnist or allow the download") from None
        x = ds.data.unsqueeze(1).contiguous()
        y = ds.targets.long()
    elif name in ("cifar10", "cifar100"):
        cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
        try:
            ds = cls(root, train=train, download=download)
        except Exception as e:
            archive = Path(cls.filename).name
            raise DatasetMissing(
                f"{name} not found in {root}/{cls.base_folder} ({_why(download, e)}); place "
                f"{archive} in {root}/ or allow the download") from None
        x = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        y = torch.tensor(ds.targets, dtype=torch.long)
    else:
        raise ConfigError(f"unknown dataset {name!r}; valid: {', '.join(NUM_CLASSES)}")
    return x, y


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


_CACHE: dict[tuple, Splits] = {}


def load(cfg: DataConfig, root: Path | None = None, download: bool = True) -> Splits:
    """Validation carved from the training split first, then the (optional) training subset."""
    key = (cfg, str(root or default_root()))
    if key in _CACHE:
        return _CACHE[key]
    train_x, train_y = load_split(cfg.dataset, True, root, download)
    test_x, test_y = load_split(cfg.dataset, False, root, download)
    g = torch.Generator().manual_seed(cfg.seed)
    if cfg.val_size >= len(train_y):
        raise ConfigError(f"val_size {cfg.val_size} must be below the {len(train_y)} training images")
    val_idx = balanced_indices(train_y, cfg.val_size, g)
    rest = len(train_y) - cfg.val_size
    n_train = rest if cfg.train_size is None else cfg.train_size
    if n_train > rest:
        raise ConfigError(f"train_size {n_train} exceeds the {rest} training images left after "
                          f"the validation split")
    train_idx = balanced_indices(train_y, n_train, g, exclude=val_idx)
    splits = Splits(train_x[train_idx], train_y[train_idx], train_x[val_idx], train_y[val_idx],
                    test_x, test_y, NUM_CLASSES[cfg.dataset], IN_CHANNELS[cfg.dataset])
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


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 → float in [0, 1]. No mean/std normalization, as the original (BatchNorm copes)."""
    return x.float().div_(255)
