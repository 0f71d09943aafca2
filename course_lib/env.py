"""Run-time settings shared by every chapter: seed, device, smoke mode, folders.

Environment variables (the only ones the course reads; documented in "How to use this book"):

``VAE_COURSE_SMOKE``    ``1`` runs every notebook in a small, fast setting (CI uses it).
``VAE_COURSE_DATA``     a folder holding ``MNIST/raw``, ``FashionMNIST/raw`` and
                        ``BinarizedMNIST`` (the layout torchvision downloads to).
``VAE_COURSE_CACHE``    where downloads, smoke checkpoints and caches go
                        (default ``~/.cache/vae-course``).
``VAE_COURSE_RETRAIN``  ``1``/``all`` retrains every model instead of loading the shipped
                        checkpoint, or a comma-separated list of checkpoint names.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

SMOKE_VAR = "VAE_COURSE_SMOKE"
DATA_VAR = "VAE_COURSE_DATA"
CACHE_VAR = "VAE_COURSE_CACHE"
RETRAIN_VAR = "VAE_COURSE_RETRAIN"

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """What `setup()` decided; chapters read ``settings.smoke`` and ``settings.device``.

    Introduced in: How to use this book.
    """

    seed: int
    device: torch.device
    smoke: bool

    def __str__(self) -> str:
        mode = "smoke (small, fast)" if self.smoke else "full"
        return f"device={self.device} ({device_name(self.device)}) | seed={self.seed} | mode={mode}"


def smoke() -> bool:
    """True when ``VAE_COURSE_SMOKE`` asks for the small, fast setting (introduced in: How to use this book)."""
    return os.environ.get(SMOKE_VAR, "").strip().lower() in _TRUE


def cache_dir(create: bool = True) -> Path:
    """The cache folder (``VAE_COURSE_CACHE`` or ``~/.cache/vae-course``); made only when ``create``.

    Introduced in: How to use this book.
    """
    path = Path(os.environ.get(CACHE_VAR) or Path.home() / ".cache" / "vae-course").expanduser()
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(f"cannot create the cache folder {path} ({err}); set {CACHE_VAR} to a "
                          "writable folder") from err
    return path


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA if present, then Apple's MPS, then the CPU; ``prefer`` overrides (introduced in: How to use this book)."""
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name(device: torch.device) -> str:
    """A human-readable name of the device, for reports and checkpoint records.

    Introduced in: How to use this book.
    """
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def interactive() -> bool:
    """True when a person is watching a notebook (Jupyter, Colab, VS Code), not CI or a book build.

    Introduced in: How to use this book. Progress bars and live widgets switch on it.
    """
    if os.environ.get("CI"):
        return False
    return any(k in os.environ for k in ("JPY_SESSION_NAME", "COLAB_RELEASE_TAG", "VSCODE_PID"))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) (introduced in: How to use this book)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def retrain_requested(name: str) -> bool:
    """True when ``VAE_COURSE_RETRAIN`` is ``1``/``all`` or lists ``name`` (read, never written, by the library).

    Introduced in: How to use this book.
    """
    value = os.environ.get(RETRAIN_VAR, "").strip().lower()
    return value in {"1", "all", "true", "yes"} or name.lower() in {v.strip() for v in value.split(",")}


def setup(seed: int = 0, device: str | None = None, verbose: bool = True) -> Settings:
    """Seed everything, pick the device and read the smoke setting (introduced in: How to use this book).

    Every chapter calls this in its first cell and prints the result, so a reader always
    sees which device and which setting produced the numbers on the page.
    """
    seed_everything(seed)
    settings = Settings(seed=seed, device=pick_device(device), smoke=smoke())
    if settings.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if verbose:
        from . import __version__

        print(f"course_lib {__version__} setup: {settings}")
    return settings
