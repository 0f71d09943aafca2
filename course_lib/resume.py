"""Unfinished runs: ``NAME.partial.safetensors`` (weights, optimizer, RNG, record) and ``NAME.lock``.

Introduced in: How to use this book. The Trainer saves this after every epoch and resumes
from it; `course_lib.checkpoint` writes the finished ``NAME`` only once a run is done.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterator

import torch

from .checkpoint import CheckpointError, _cpu_tensors, _nonfinite, _read, _write, load_weights, paths


def save_training_state(stem: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        record: dict, rng: dict[str, torch.Tensor]) -> None:
    """Write ``NAME.partial.safetensors``: weights, optimizer state, RNG state and record in one file.

    Introduced in: How to use this book.
    """
    p = paths(stem)
    tensors = {f"model/{k}": v for k, v in _cpu_tensors(model.state_dict()).items()}
    bad = _nonfinite(tensors)
    if bad:
        raise CheckpointError(f"refusing to save non-finite weights ({bad[:4]}) over {p['partial'].name}")
    sd, slots = optimizer.state_dict(), {}
    for pid, slot in sd["state"].items():
        for key, value in slot.items():
            if torch.is_tensor(value):
                tensors[f"optim/{pid}/{key}"] = value.detach().to("cpu").contiguous().clone()
            else:
                slots.setdefault(str(pid), {})[key] = value
    tensors.update({f"rng/{k}": v.detach().to("cpu").contiguous().clone() for k, v in rng.items()})
    header = json.dumps({"param_groups": sd["param_groups"], "state": slots})
    _write(p["partial"], tensors, record, {"optimizer": header})


def load_training_state(stem: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        expect_hash: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore ``NAME.partial.safetensors`` into model and optimizer; return (record, rng state).

    Raises `CheckpointError`, changing nothing, when the run had another config or other
    optimizer hyperparameters (lr, betas, ...): resuming could not reproduce the run.
    Introduced in: How to use this book.
    """
    p = paths(stem)
    meta, tensors = _read(p["partial"])
    try:
        record, header = json.loads(meta["record"]), json.loads(meta["optimizer"])
    except (KeyError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{p['partial']} has no readable record ({err}); delete it to start afresh") from err
    if record.get("config_hash") != expect_hash:
        raise CheckpointError(f"{p['partial'].name} belongs to another config ({record.get('config_hash')})")
    now = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.state_dict()["param_groups"]]
    then = [{k: v for k, v in g.items() if k != "params"} for g in header["param_groups"]]
    if json.loads(json.dumps(now, default=str)) != json.loads(json.dumps(then, default=str)):
        raise CheckpointError(f"{p['partial'].name} was trained with other optimizer settings "
                              f"({then} vs now {now}); resuming could not reproduce the run")
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, p["partial"].name)
    state: dict[int, dict] = {int(k): dict(v) for k, v in header["state"].items()}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, pid, name = key.split("/", 2)
            state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": header["param_groups"]})
    return record, {k[4:]: v for k, v in tensors.items() if k.startswith("rng/")}


@contextlib.contextmanager
def training_lock(stem: str | Path) -> Iterator[None]:
    """Hold ``NAME.lock`` while training ``NAME``; a second process gets a clear error.

    The lock is an OS file lock (``fcntl.flock``), so it is released even when the holder is
    killed. On systems without ``fcntl`` (Windows) training proceeds unlocked.
    Introduced in: How to use this book.
    """
    p = paths(stem)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    p["lock"].parent.mkdir(parents=True, exist_ok=True)
    with open(p["lock"], "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise CheckpointError(f"another process ({handle.read().strip() or 'unknown pid'}) is training "
                                  f"{Path(stem).name} in {p['lock'].parent}; wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
