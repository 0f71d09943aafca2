"""The checkpoint format: safetensors weights with their record inside, written atomically.

Introduced in: How to use this book. This module is the *format* only; which models ship
and how they train is `course_lib.runs`. A checkpoint called ``NAME`` in a folder is:

``NAME.safetensors``          the weights, with the JSON record in the file's own metadata
                              (one file, replaced by one `os.replace`: weights and record can
                              never disagree);
``NAME.json``                 a readable copy of that record (git diffs, sweep members that
                              ship no weights); rewritten from the embedded one if they differ;
``NAME.partial.safetensors``  an unfinished training run: weights, optimizer state, RNG state
                              and record in one file (never shipped, resumed by the Trainer);
``NAME.lock``                 held while a process trains ``NAME`` (released by the OS even
                              after ``kill -9``).

Only a record with ``finished: true`` and finite weights is ever written as ``NAME``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ._about import __version__

FORMAT = 2
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Fields every finished record has, with their JSON types (hand edits are checked on load).
SCHEMA: dict[str, type | tuple[type, ...]] = {
    "name": str, "config": dict, "config_hash": str, "epochs": int, "finished": bool,
    "device": str, "wall_time_s": (int, float), "metrics": dict, "format": int, "tensors_sha256": str,
}


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unfinished, corrupt, or belongs to another config or model."""


# ----------------------------------------------------------------------------- names and configs
def check_name(name: str) -> str:
    """A checkpoint name is a plain file stem: letters, digits, ``_.-``; no folders, no ``..``."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name \
            or name.endswith((".partial", ".json", ".safetensors", ".lock")):
        raise CheckpointError(f"invalid checkpoint name {name!r}: use letters, digits, '_', '-' and "
                              "'.' only (no folders, no '..'), e.g. 'vae_conv'")
    return name


def config_dict(config: Any) -> dict:
    """A plain JSON-able dict of a dataclass (or dict) config."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    if isinstance(config, dict):  # through JSON, so tuples become lists exactly as in a saved record
        return json.loads(json.dumps(config, default=str))
    raise TypeError(f"config must be a dataclass or dict, got {type(config).__name__}")


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of the config (first 16 hex digits)."""
    text = json.dumps(config_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    """Library versions, stored in every record."""
    import safetensors

    return {"python": platform.python_version(), "torch": torch.__version__,
            "safetensors": safetensors.__version__, "course_lib": __version__}


def paths(stem: str | Path) -> dict[str, Path]:
    """The files of checkpoint ``stem`` (a folder / NAME), after checking NAME."""
    stem = Path(stem)
    check_name(stem.name)
    if ".." in stem.parts:
        raise CheckpointError(f"checkpoint path {stem} climbs out of its folder ('..'); name a plain file stem")
    return {kind: stem.with_name(stem.name + suffix) for kind, suffix in (
        ("weights", ".safetensors"), ("json", ".json"), ("partial", ".partial.safetensors"),
        ("lock", ".lock"))}


# ----------------------------------------------------------------------------- low level
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
    """sha256 over names, dtypes, shapes and bytes of the tensors, in name order."""
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


# ----------------------------------------------------------------------------- records
def validate_record(record: Any, where: str) -> dict:
    """Check a finished record's schema and that its config hash matches its config."""
    if not isinstance(record, dict):
        raise CheckpointError(f"the record in {where} is not a JSON object; retrain it")
    problems = [f"{k} missing" if k not in record else f"{k} is {type(record[k]).__name__}"
                for k, kind in SCHEMA.items()
                if k not in record or not isinstance(record[k], kind) or (kind is int and isinstance(record[k], bool))]
    if not problems and config_hash(record["config"]) != record["config_hash"]:
        problems.append("config_hash does not match config (was the record edited by hand?)")
    if problems:
        raise CheckpointError(f"the record in {where} is not valid ({'; '.join(problems)}); "
                              "retrain it with `python -m course_lib.retrain NAME`")
    return record


def read_record(stem: str | Path) -> dict:
    """The record of checkpoint ``stem``: the one inside the weights file, else ``NAME.json``.

    A ``NAME.json`` that disagrees with the embedded record (a crash between the two writes,
    or a hand edit) is rewritten from the embedded one, which is authoritative.
    """
    p = paths(stem)
    if p["weights"].is_file():
        meta = _metadata(p["weights"])
        if "record" not in meta:
            raise CheckpointError(f"{p['weights']} has no embedded record (an old-format or foreign "
                                  "file); retrain it with `python -m course_lib.retrain NAME`")
        record = validate_record(json.loads(meta["record"]), str(p["weights"]))
        text = json.dumps(record, indent=1, default=str) + "\n"
        if not p["json"].is_file() or p["json"].read_text() != text:
            with contextlib.suppress(OSError):  # a read-only checkout still loads
                _atomic_write(p["json"], lambda tmp: Path(tmp).write_text(text))
        return record
    if not p["json"].is_file():
        raise CheckpointError(f"no checkpoint {p['weights'].name} or record {p['json'].name} in "
                              f"{p['json'].parent}; train it with `python -m course_lib.retrain "
                              f"{Path(stem).name}`")
    try:
        record = json.loads(p["json"].read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{p['json']} is not valid JSON ({err}); delete it or retrain") from err
    return validate_record(record, str(p["json"]))


# ----------------------------------------------------------------------------- finished checkpoints
def save_checkpoint(stem: str | Path, model: torch.nn.Module | None, record: dict) -> dict:
    """Write a finished checkpoint: weights plus embedded record, then the JSON copy.

    Introduced in: How to use this book. ``model=None`` writes the record alone (a sweep member
    that ships no weights). Refuses unfinished records and non-finite weights, so a shipped
    checkpoint is only ever replaced by a finished, finite run.
    """
    p = paths(stem)
    if not record.get("finished"):
        raise CheckpointError(f"refusing to write {p['weights'].name}: the run is not finished "
                              "(unfinished runs live in NAME.partial.safetensors)")
    tensors = _cpu_tensors(model.state_dict()) if model is not None else {}
    bad = _nonfinite(tensors)
    if bad:
        raise CheckpointError(f"refusing to write {p['weights'].name}: non-finite weights in {bad[:4]}")
    record = {**record, "name": Path(stem).name, "format": FORMAT, "tensors_sha256": tensors_sha256(tensors),
              "weights": model is not None, "versions": versions(),
              "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    validate_record(record, p["weights"].name)
    if model is not None:
        _write(p["weights"], tensors, record)
    text = json.dumps(record, indent=1, default=str) + "\n"
    _atomic_write(p["json"], lambda tmp: Path(tmp).write_text(text))
    return record


def load_checkpoint(stem: str | Path, model: torch.nn.Module, expect_hash: str | None = None) -> dict:
    """Load a finished checkpoint's weights into ``model``; return its record.

    Introduced in: How to use this book. Every way this can fail is a `CheckpointError` that
    says what is wrong and what to do: missing, unfinished, another config, damaged file,
    weights that do not match their checksum, or weights of another architecture.
    """
    p = paths(stem)
    record = read_record(stem)
    if not record.get("weights", True) or not p["weights"].is_file():
        raise CheckpointError(f"{p['json'].name} is a record without weights (a sweep member); "
                              f"train it with `python -m course_lib.retrain {Path(stem).name}`")
    if expect_hash is not None and record["config_hash"] != expect_hash:
        raise CheckpointError(
            f"{p['weights'].name} was trained with another config (hash {record['config_hash']}, wanted "
            f"{expect_hash}); expected after you edit a config: retrain it")
    _, tensors = _read(p["weights"])
    if tensors_sha256(tensors) != record["tensors_sha256"]:
        raise CheckpointError(f"{p['weights']}'s weights do not match the checksum in its record "
                              "(damaged file); restore it with `git checkout -- checkpoints/` or retrain")
    load_weights(model, tensors, p["weights"].name)
    return record


def load_weights(model: torch.nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """``model.load_state_dict(tensors)`` with a message naming every mismatch."""
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(tensors) & set(expected) if tensors[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(s for s in (
            f"missing {missing[:4]}" if missing else "", f"unexpected {unexpected[:4]}" if unexpected else "",
            "shape mismatch " + ", ".join(f"{k}: file {tuple(tensors[k].shape)} vs model "
                                          f"{tuple(expected[k].shape)}" for k in wrong[:4]) if wrong else "") if s)
        raise CheckpointError(f"{where} does not fit a {type(model).__name__}: {detail}. "
                              "Was it saved from another model or config?")
    model.load_state_dict(tensors)


# ----------------------------------------------------------------------------- training state
def save_training_state(stem: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        record: dict, rng: dict[str, torch.Tensor]) -> None:
    """Write ``NAME.partial.safetensors``: weights, optimizer state, RNG state and record in one file."""
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
