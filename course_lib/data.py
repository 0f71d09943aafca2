"""The course's one data loader: MNIST, Fashion-MNIST and binarized MNIST as whole tensors.

Introduced in: How to use this book. Every chapter gets its data from `load` and batches it
with `DeviceLoader`, which keeps the whole dataset on the training device and indexes it
there (no per-batch host copies, no worker processes: these datasets are ~200 MB at most).

Where the files come from, in order:

1. the folder named by ``VAE_COURSE_DATA`` (CI points it at ``../shared/data``);
2. the user cache, ``$VAE_COURSE_CACHE/data`` (default ``~/.cache/vae-course/data``);
3. a download into that cache through torchvision (MNIST, Fashion-MNIST) or from the
   original Larochelle & Murray files (static binarized MNIST), where internet exists.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from .batches import DeviceLoader, Split  # noqa: F401 (re-exported: the data API)
from .env import DATA_VAR, cache_dir
from .nets import MNIST_SHAPE, pixels

NAMES = ("mnist", "fashion_mnist", "binarized_mnist", "dynamic_mnist")
SPLITS = ("train", "valid", "test")

# File layout, identical to what torchvision's downloaders write.
_IDX = {
    "mnist": "MNIST/raw",
    "fashion_mnist": "FashionMNIST/raw",
}
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_AMAT_DIR = "BinarizedMNIST"
# sha256 of the original (uncompressed) .amat files of Larochelle & Murray, checked on download.
_AMAT_SHA256 = {"train": "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
                "valid": "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
                "test": "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d"}
IMAGE_SHAPE = MNIST_SHAPE  # (C, H, W) of every dataset in this module
_AMAT_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{split}.amat"
N_VALID = 10_000  # MNIST/Fashion-MNIST: the last 10k training images are the validation split

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DatasetNotFoundError(FileNotFoundError):
    """No copy of a dataset could be found or downloaded; the message says what to do.

    Introduced in: How to use this book.
    """


class DatasetCorruptError(ValueError):
    """A dataset file exists but cannot be read (truncated download, wrong file).

    Introduced in: How to use this book.
    """


def _roots() -> list[Path]:
    roots = []
    if os.environ.get(DATA_VAR):
        roots.append(Path(os.environ[DATA_VAR]).expanduser())
    roots.append(cache_dir(create=False) / "data")  # never created just to look in it
    return roots


def _expected(name: str) -> list[str]:
    if name == "binarized_mnist":
        return [f"{_AMAT_DIR}/binarized_mnist_{s}.amat.gz" for s in SPLITS]
    return [f"{_IDX[name]}/{f}" for pair in _IDX_FILES.values() for f in pair]


def _find(name: str) -> Path | None:
    for root in _roots():
        if all((root / rel).is_file() for rel in _expected(name)):
            return root
    return None


def _download(name: str, root: Path) -> None:
    """Fetch the original files into ``root`` (raises whatever the network raises)."""
    root.mkdir(parents=True, exist_ok=True)
    if name == "binarized_mnist":
        import urllib.request

        (root / _AMAT_DIR).mkdir(parents=True, exist_ok=True)
        for s in SPLITS:
            target = root / _AMAT_DIR / f"binarized_mnist_{s}.amat.gz"
            with urllib.request.urlopen(_AMAT_URL.format(split=s), timeout=30) as r:
                raw = r.read()
            digest = hashlib.sha256(raw).hexdigest()
            if digest != _AMAT_SHA256[s]:
                raise DatasetCorruptError(f"the downloaded binarized_mnist_{s}.amat has sha256 {digest}, "
                                          f"not {_AMAT_SHA256[s]} (a proxy page or a truncated download)")
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(gzip.compress(raw))
            tmp.replace(target)
        return
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion_mnist": torchvision.datasets.FashionMNIST}[name]
    for train in (True, False):  # writes <root>/<Class>/raw/*.gz, checked by md5
        cls(str(root), train=train, download=True)


def locate(name: str) -> Path:
    """The folder that holds ``name``'s files, downloading them if need be (see module docstring).

    Introduced in: How to use this book.
    """
    base = "mnist" if name == "dynamic_mnist" else name
    if base not in _IDX and base != "binarized_mnist":
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    found = _find(base)
    if found is not None:
        return found
    target = cache_dir(create=False) / "data"
    try:
        _download(base, target)
    except Exception as err:  # no internet, proxy, server down: all end the same way
        download_error = f"{type(err).__name__}: {err}"
    else:
        if _find(base) is not None:
            return target
        download_error = "the download finished but the expected files are still missing"
    searched = "\n".join(f"  - {r}" for r in _roots())
    files = "\n".join(f"  - {f}" for f in _expected(base))
    raise DatasetNotFoundError(
        f"Dataset {name!r} not found.\nLooked in:\n{searched}\nfor these files:\n{files}\n"
        f"The download into {target} failed ({download_error}).\n"
        f"Fix: set {DATA_VAR} to a folder with that layout (for this course's CI: ../shared/data), "
        f"or run once on a machine with internet to fill the cache.")


def _gunzip(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as err:
        raise DatasetCorruptError(f"cannot read {path}: {err}. Delete it and download it again.") from err


def _read_idx(path: Path) -> np.ndarray:
    """IDX format: magic (2 zero bytes, dtype 0x08 = uint8, ndim), big-endian dims, then data."""
    raw = _gunzip(path)
    ndim = raw[3] if len(raw) > 4 else 0
    if len(raw) < 4 + 4 * ndim:
        raise DatasetCorruptError(f"{path} is too short to be an IDX file; delete it and download it again.")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if raw[:3] != b"\x00\x00\x08" or len(raw) != offset + int(np.prod(dims)):
        raise DatasetCorruptError(f"{path} is not a valid uint8 IDX file (truncated or wrong file); "
                                  "delete it and download it again.")
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)


def _read_amat(path: Path) -> np.ndarray:
    """Larochelle's text format: one image a line, H*W '0'/'1' separated by single spaces."""
    raw = _gunzip(path)
    digits = np.frombuffer(raw, np.uint8)[::2] - ord("0")  # every other byte is a separator
    if digits.size % pixels(IMAGE_SHAPE) or digits.max(initial=0) > 1:
        raise DatasetCorruptError(f"{path} is not a binarized-MNIST .amat file; delete it and download it again.")
    return digits.reshape(-1, pixels(IMAGE_SHAPE))


@functools.lru_cache(maxsize=12)  # 3 datasets x 3 splits fit
def _load_cpu(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    root = locate(name)
    if name == "binarized_mnist":
        arr = _read_amat(root / _AMAT_DIR / f"binarized_mnist_{split}.amat.gz")
        return torch.from_numpy(arr.astype(np.float32)).view(-1, *IMAGE_SHAPE), None
    images, labels = _IDX_FILES["test" if split == "test" else "train"]
    x = _read_idx(root / _IDX[name] / images)
    y = _read_idx(root / _IDX[name] / labels)
    if x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE[1:] or y.ndim != 1 or len(x) != len(y) or y.max(initial=0) > 9:
        raise DatasetCorruptError(
            f"{root / _IDX[name]}: {images} holds {x.shape} images and {labels} {y.shape} labels; expected "
            f"N x {IMAGE_SHAPE[1]} x {IMAGE_SHAPE[2]} images and N labels in 0..9 (a truncated or mismatched file). Delete both and "
            "download them again.")
    if split != "test":  # train: first 50k, valid: last 10k of the official training set
        cut = slice(0, len(x) - N_VALID) if split == "train" else slice(len(x) - N_VALID, None)
        x, y = x[cut], y[cut]
    x = torch.from_numpy(x.astype(np.float32) / 255.0).view(-1, *IMAGE_SHAPE)
    return x, torch.from_numpy(y.astype(np.int64))


def load(name: str, split: str = "train", device: torch.device | str = "cpu",
         limit: int | None = None) -> Split:
    """Load one split of a dataset as tensors on ``device`` (introduced in: How to use this book).

    ``name``: ``"mnist"``, ``"fashion_mnist"``, ``"binarized_mnist"`` (static, Larochelle &
    Murray 2011) or ``"dynamic_mnist"`` (MNIST grey levels, re-binarized on every pass).
    ``split``: ``"train"`` (50k), ``"valid"`` (10k) or ``"test"`` (10k).
    ``limit``: keep only the first ``limit`` examples (smoke runs).
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    base = "mnist" if name == "dynamic_mnist" else name
    x, y = _load_cpu(base, split)
    if limit is not None:
        x, y = x[:limit], None if y is None else y[:limit]
    # copies the caller owns: an in-place edit must never reach the cache or a later `load`
    x = x.to(device, copy=True)
    y = None if y is None else y.to(device, copy=True)
    return Split(name, split, x, y, binarize="dynamic" if name == "dynamic_mnist" else None)
