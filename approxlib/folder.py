"""Your own images: `dataset: imagefolder:PATH`, torchvision's ImageFolder layout.

`PATH/train/<class>/*.png` and `PATH/test/<class>/*.png` (and `PATH/val/<class>/...` when there is
one; else validation is carved from train as for every dataset). Each part is decoded once into
the uint8 tensors the trainer uses for every dataset, so training speed does not depend on the
image format, and cached beside the data (`PATH/.approx-cache/`, or under the data root where
PATH is read-only), named by the digest of the part's files: a changed image is a new cache
entry, and a damaged cache file is decoded again. torchvision lists the files and classes
(`find_classes`, `make_dataset`); Pillow decodes them.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets import folder as tvfolder
from tqdm.auto import tqdm

from . import data
from . import store
from .config import ConfigError, expanded, from_here, printable

log = logging.getLogger(__name__)
GRAY = {"1", "L", "LA"}  # 8-bit modes decoded to one channel
COLOUR = {"P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}  # decoded to RGB
# Formats are named, never guessed from the bytes: Pillow would open a `.png` holding PostScript
# as EPS and run Ghostscript on it. These are the formats of torchvision's IMG_EXTENSIONS.
FORMATS = ["PNG", "JPEG", "BMP", "PPM", "TIFF", "WEBP"]
MAX_BYTES = data.MAX_BYTES  # a part's decoded tensor; larger needs a smaller image_size
CACHE = ".approx-cache"
MAX_PIXELS = 1 << 26  # one image's pixels; larger is refused as a possible decompression bomb
VAL_NAMES = ("valid", "validation", "Val", "Valid", "Validation")  # other datasets' names for val/


class FolderError(ConfigError):
    """An image folder that cannot be used as a dataset (one line says why)."""


@data.register_kind("imagefolder")
@dataclasses.dataclass(frozen=True)
class ImageFolder(data.Source):
    path: str = ""
    builtin = False

    @classmethod
    def parse(cls, arg: str, image_size: int | None) -> ImageFolder:
        return cls(image_size=image_size, path=arg)

    @classmethod
    def stamp(cls, arg: str) -> str:
        """Every file's name, size and modification time (stat only, no reading)."""
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(expanded(arg), followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if d != CACHE)
            for f in sorted(filenames):
                try:  # as make_dataset, through symbolic links
                    st = os.stat(os.path.join(dirpath, f))
                except OSError as e:
                    raise FolderError(f"cannot read {os.path.join(dirpath, f)}: "
                                      f"{e.strerror}") from None
                h.update(_bytes(f"{dirpath}/{f}|{st.st_size}|{st.st_mtime_ns}\n"))
        return h.hexdigest()

    @functools.cached_property
    def _memo(self) -> dict:
        return {}

    @property
    def root(self) -> Path:
        return expanded(self.path)

    @functools.cached_property
    def parts(self) -> tuple[str, ...]:
        if not self.root.is_dir():
            raise FolderError(f"image folder {self.root} not found{from_here(self.root)}"
                              if not self.root.exists()
                              else f"{self.root} is not a folder")
        if not (self.root / "train").is_dir() or not (self.root / "test").is_dir():
            raise FolderError(f"image folder {self.root} needs train/ and test/ folders, one "
                              f"subfolder of images per class in each")
        if (self.root / "val").is_dir():
            return ("train", "test", "val")
        other = next((n for n in VAL_NAMES if (self.root / n).is_dir()), None)
        if other is not None:  # read as nothing, without a word, by a new user's run
            log.warning("%s", printable(f"{self.root / other} is not read: validation images "
                                        f"are read from a folder named val/ (else carved from "
                                        f"train/)"))
        return ("train", "test")

    @functools.cached_property
    def class_names(self) -> list[str]:
        parts = self.parts  # checks the folder's layout first
        names = self._files(parts[0])[1]
        for part in parts[1:]:
            other = self._files(part)[1]
            if other != names:
                why = data.differing(names, other, "not in train/")
                raise FolderError(f"{self.root / part} has other classes than "
                                  f"{self.root / 'train'} ({why})")
        return names

    @property
    def classes(self) -> int:
        if len(self.class_names) < 2:
            raise FolderError(f"{self.root / 'train'} has {len(self.class_names)} class folder; "
                              f"a classifier needs at least 2")
        return len(self.class_names)

    @functools.cached_property
    def _headers(self) -> tuple[int, tuple[int, int]]:
        """(channels, the one image size) from every image's header (nothing decoded)."""
        colour, sizes = {}, {}  # whether each image is in colour; each size's first image

        def look(i: int, f: Path) -> None:
            mode, size = _header(f)
            colour[f] = mode not in GRAY
            sizes.setdefault(size, f)
        files = [f for part in self.parts for f, _ in self._files(part)[0]]
        bad = _failures(files, look)
        _refuse(bad + _undecodable(files, colour))
        if self.image_size is None and len(sizes) > 1:
            (a, fa), (b, fb) = list(sizes.items())[:2]
            raise FolderError(f"images of different sizes in {self.root} ({_wh(a)} "
                              f"{fa.relative_to(self.root)}, {_wh(b)} {fb.relative_to(self.root)})"
                              f"; set image_size to resize them")
        self._warn_mixed(colour)
        return (3 if any(colour.values()) else 1), next(iter(sizes))

    def _warn_mixed(self, colour: dict[Path, bool]) -> None:
        """A grayscale folder with a few colour images is read as colour, every image as RGB:
        said, with the first colour image (one WebP, which Pillow writes as RGB, turned a
        grayscale folder into 3 channels without a word, and given 1-channel weights then did
        not fit)."""
        n = sum(colour.values())
        if 0 < n <= len(colour) // 2:
            first = next(f for f, c in colour.items() if c)
            log.warning("%s", printable(
                f"{self.root}: {n} in colour, {len(colour) - n} grayscale (the first in colour: "
                f"{first.relative_to(self.root)}): every image is read as 3-channel RGB; convert "
                f"the colour ones to grayscale for a 1-channel dataset"))

    @property
    def channels(self) -> int:
        return self._headers[0]

    @property
    def size(self) -> int:
        if self.image_size:
            return self.image_size
        w, h = self._headers[1]
        if w != h:
            raise FolderError(f"the images in {self.root} are {w}×{h}, not square; set "
                              f"image_size to resize and centre-crop them")
        return w

    @functools.cached_property
    def contents(self) -> str:
        h = hashlib.sha256()
        for part in self.parts:
            if part != "test":  # apart: `test_contents`
                h.update(self._digest(part).encode())
        return h.hexdigest()[:16]

    @functools.cached_property
    def test_contents(self) -> str:
        return self._digest("test")[:16]

    def read(self, part, root, download):
        if part not in self.parts:
            raise FolderError(f"image folder {self.root} has no {part}/ folder")
        return self._cached(part, root)

    def count(self, part: str) -> int | None:
        return len(self._files(part)[0]) if part in self.parts else None

    def prepare(self, root: Path | None = None) -> None:
        """Every part not yet cached decoded and cached (its first stage then reads the cache),
        the images that cannot be, of every part, in one line: a truncated image stopped a run
        only when a stage first needed the images, after others had stored their results (a
        new user's walkthrough, 2026-12-07). A part cached whole is not read."""
        root = Path(root or data.default_root())
        bad = []
        for part in self.parts:
            if any(_whole(path) for path in self._places(part, root)):
                continue
            x, failed = self._decoded(part)
            bad += failed
            if not bad:
                self._cache(part, root, torch.from_numpy(x), self.labels(part))
        _refuse(bad)

    def labels(self, part, root=None, download=True) -> torch.Tensor:
        """The part's labels from its folder names (nothing decoded)."""
        return torch.tensor([y for _, y in self._files(part)[0]], dtype=torch.long)

    def _files(self, part: str) -> tuple[list[tuple[Path, int]], list[str]]:
        if ("files", part) not in self._memo:
            self._memo["files", part] = self._list(part)
        return self._memo["files", part]

    def _list(self, part: str) -> tuple[list[tuple[Path, int]], list[str]]:
        where = self.root / part
        # torchvision's find_classes, less hidden folders (Jupyter's .ipynb_checkpoints, a
        # class of its own there): three lines, not worth a copy of its whole ImageFolder
        names = sorted(e.name for e in os.scandir(where) if e.is_dir() and e.name[:1] != ".")
        if not names:
            raise FolderError(f"{where}: no class folders (one subfolder of images per class)")
        try:
            samples = tvfolder.make_dataset(str(where), {n: i for i, n in enumerate(names)},
                                            is_valid_file=lambda f: _image_name(f, where))
        except FileNotFoundError as e:  # a class without images
            raise FolderError(f"{where}: {str(e).splitlines()[0][:200]} (images end in "
                              f"{', '.join(tvfolder.IMG_EXTENSIONS)}; hidden files are "
                              f"skipped)") from None
        loose = [e.name for e in os.scandir(where)
                 if not e.is_dir() and _image_name(e.path, where)]
        if loose:  # torchvision's make_dataset leaves them out too: said here
            log.warning("%s", printable(
                f"{where}: {len(loose)} image{'s' * (len(loose) > 1)} outside the class folders "
                f"({sorted(loose)[0]}) {'are' if len(loose) > 1 else 'is'} left out"))
        odd = next((f for f, _ in samples if not Path(f).is_file()), None)
        if odd is not None:  # a FIFO would block its read, a device never end
            raise FolderError(f"{odd} is not a regular file")
        return [(Path(f), y) for f, y in sorted(samples)], names

    def _digest(self, part: str) -> str:
        """Digest of a part's file names, class folders and bytes."""
        if ("digest", part) in self._memo:
            return self._memo["digest", part]
        h = hashlib.sha256()
        files = self._files(part)[0]
        for f, y in _bar(files, f"hash {self.root.name}/{part}", shown_from=5000):
            h.update(_bytes(f"{f.relative_to(self.root)}|{y}|"))
            try:
                h.update(hashlib.sha256(f.read_bytes()).digest())
            except OSError as e:
                raise FolderError(f"cannot read {f}: {e.strerror}") from None
        self._memo["digest", part] = h.hexdigest()
        return self._memo["digest", part]

    def _places(self, part: str, data_root: Path) -> list[Path]:
        """Where the part's cache may be: beside the data, else under the data root."""
        name = f"{part}-{self._digest(part)[:24]}-{self.channels}x{self.size}.npz"
        return [self.root / CACHE / name, data_root / "imagefolder" / name]

    def _cached(self, part: str, data_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
        for path in self._places(part, data_root):
            got = _read_cache(path, len(self._files(part)[0]), self.channels, self.size)
            if got is not None:
                return got
        x, bad = self._decoded(part)
        _refuse(bad)
        x, y = torch.from_numpy(x), self.labels(part)
        self._cache(part, data_root, x, y)
        return x, y

    def _cache(self, part: str, data_root: Path, x: torch.Tensor, y: torch.Tensor) -> None:
        for path in self._places(part, data_root):  # beside the data if it may be written there
            try:
                _write_cache(path, x, y)
                break
            except OSError as e:
                log.info("cannot cache %s at %s: %s", part, path, e)

    def _decoded(self, part: str) -> tuple[np.ndarray, list[tuple[Path, str]]]:
        """The part's images as uint8 N×C×H×W, and those that could not be decoded."""
        files = self._files(part)[0]
        if len(files) * self.channels * self.size ** 2 > MAX_BYTES:
            raise FolderError(f"{self.root / part}: {len(files)} images of {self.channels}×"
                              f"{self.size}×{self.size} exceed {MAX_BYTES >> 30} GiB; set a "
                              f"smaller image_size")
        x = np.empty((len(files), self.channels, self.size, self.size), dtype=np.uint8)
        mode = "L" if self.channels == 1 else "RGB"

        def decode(i: int, f: Path) -> None:
            x[i] = _decode_one(f, mode, self.image_size)
        return x, _failures([f for f, _ in files], decode, f"decode {self.root.name}/{part}")


def _bar(items: list, desc: str, shown_from: int = 0):
    """A bar over a part's first hashing or decoding, which no caller's `progress` reaches: off
    for fewer than `shown_from` items and under `approx --quiet` (TQDM_DISABLE, read here:
    tqdm reads it once, when it is imported)."""
    return tqdm(items, desc=desc, leave=False, mininterval=1.0,
                disable=len(items) < shown_from or bool(os.environ.get("TQDM_DISABLE")))


def _failures(files: list[Path], do, desc: str | None = None) -> list[tuple[Path, str]]:
    """`do(i, f)` for every file; each that failed, with why."""
    bad = []
    for i, f in enumerate(_bar(files, desc) if desc else files):
        try:
            do(i, f)
        except FolderError as e:
            bad.append((f, str(e)))
    return bad


def _undecodable(files: list[Path], readable) -> list[tuple[Path, str]]:
    """Where some headers could not be read, the images whose headers could but whose pixels
    cannot be decoded (a truncated JPEG): every unreadable image in one line, not the second
    kind in a second run (a new user's walkthrough, 2026-12-07). Only then: it decodes them."""
    if len(readable) == len(files):
        return []
    return _failures([f for f in files if f in readable],
                     lambda i, f: _decode_one(f, "RGB", None))


def _refuse(bad: list[tuple[Path, str]], shown: int = 3) -> None:
    """The images that failed, in one line: the first one's reason and the next `shown` named,
    the rest counted (a user fixing a folder of bad images one run at a time found the next
    only after the last was fixed)."""
    if len(bad) == 1:
        raise FolderError(bad[0][1])
    if bad:
        more = f" and {len(bad) - 1 - shown} more" if len(bad) - 1 > shown else ""
        raise FolderError(f"{len(bad)} images cannot be used: {bad[0][1]}; also "
                          f"{', '.join(str(f) for f, _ in bad[1:1 + shown])}{more}")


def _bytes(text: str) -> bytes:
    """A file name's text as the bytes the file system holds: a name that is not UTF-8 (Latin-1
    from an old disk) comes as surrogates, which `.encode()` refused with a traceback; valid
    names encode as before, so no digest moves."""
    return text.encode("utf-8", "surrogateescape")


def _image_name(path: str, below: Path) -> bool:
    """An image by its name, as torchvision's ImageFolder takes it (IMG_EXTENSIONS), but not a
    hidden file or one in a hidden folder below `below`: macOS writes `._name.jpg` (AppleDouble
    metadata) beside each image it copies, which stopped a run as an unreadable image."""
    hidden = any(part[:1] == "." for part in Path(path).relative_to(below).parts)
    return not hidden and tvfolder.has_file_allowed_extension(path, tvfolder.IMG_EXTENSIONS)


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}×{size[1]}"


def _header(f: Path) -> tuple[str, tuple[int, int]]:
    """An image's mode and size, read from its header."""
    try:
        with Image.open(f, formats=FORMATS) as im:
            if im.size[0] * im.size[1] > MAX_PIXELS:
                raise FolderError(f"{f} is {_wh(im.size)} pixels, over the {MAX_PIXELS} allowed")
            if im.mode not in GRAY | COLOUR:
                raise FolderError(f"{f} has {im.mode} pixels (16-bit or float); save it as 8-bit "
                                  f"grayscale or RGB")
            return im.mode, im.size
    except FolderError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise FolderError(f"cannot read image {f}: {str(e).splitlines()[0][:120]}") from None


def _decode_one(f: Path, mode: str, size: int | None) -> np.ndarray:
    """One image as uint8 C×H×W: converted, and resized + centre-cropped to `size` if given."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f, formats=FORMATS) as im:
                im = im.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombWarning,
            Image.DecompressionBombError) as e:
        raise FolderError(f"cannot decode image {f}: {str(e).splitlines()[0][:120]}") from None
    a = torch.from_numpy(np.array(im).reshape(im.size[1], im.size[0], -1)).permute(2, 0, 1)
    if size is not None:
        a = data.resize_tensor(a, size)
    return a.numpy()


def _whole(path: Path) -> bool:
    """Whether a cache file is there and matches its digest (not loaded)."""
    digest = path.with_name(path.name + ".sha256")
    if not path.is_file() or not digest.is_file():
        return False
    if store.digest_file(path) != digest.read_text().strip():
        log.warning("image cache %s is damaged; decoding the images again", path)
        return False
    return True


def _read_cache(path: Path, n: int, channels: int, size: int):
    """The cached tensors if the file is whole (its digest matches) and of the expected shape."""
    if not _whole(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except (OSError, ValueError, KeyError):
        return None
    if x.dtype != np.uint8 or x.shape != (n, channels, size, size) or y.shape != (n,):
        return None
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))


def _write_cache(path: Path, x: torch.Tensor, y: torch.Tensor) -> None:
    """The digest is written first: a reader never finds a file without one, and a file that
    lost a race with another writer fails its check and is decoded again."""
    with store.atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, x=x.numpy(), y=y.numpy())
        store.write_text(path.with_name(path.name + ".sha256"), store.digest_file(tmp))
