"""Low-level file handling of checkpoints: atomic writes, safetensors with metadata, checksums.

Introduced in: How to use this book (used by `course_lib.checkpoint` and `course_lib.resume`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

FORMAT = 2


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unfinished, corrupt, or belongs to another config or model.

    Introduced in: How to use this book.
    """


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write to a temporary file in the same folder, fsync, then `os.replace` it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows within one filesystem
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors, in name order.

    Introduced in: How to use this book.
    """
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def _cpu_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share memory (tied weights) or are views
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def _nonfinite(tensors: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def _read(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    try:
        with safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {}), {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}): it was truncated or "
                              "damaged; delete it and retrain (`python -m course_lib.retrain NAME`), or "
                              "restore it with `git checkout -- checkpoints/`") from err


def _metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}): truncated or damaged; "
                              "delete it and retrain, or restore it with `git checkout -- checkpoints/`") from err


def _write(path: Path, tensors: dict[str, torch.Tensor], record: dict, extra: dict | None = None) -> None:
    meta = {"format": str(FORMAT), "record": json.dumps(record, default=str), **(extra or {})}
    _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


