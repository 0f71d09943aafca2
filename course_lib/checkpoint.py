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
import platform
import re
import time
from pathlib import Path
from typing import Any

import torch

from ._about import __version__
from ._files import FORMAT, CheckpointError, _atomic_write, _cpu_tensors, _metadata, _nonfinite, _read, _write, tensors_sha256

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Fields every finished record has, with their JSON types (hand edits are checked on load).
SCHEMA: dict[str, type | tuple[type, ...]] = {
    "name": str, "config": dict, "config_hash": str, "epochs": int, "finished": bool,
    "device": str, "wall_time_s": (int, float), "metrics": dict, "format": int, "tensors_sha256": str,
}


# ----------------------------------------------------------------------------- names and configs
def check_name(name: str) -> str:
    """A checkpoint name is a plain file stem: letters, digits, ``_.-``; no folders, no ``..``.

    Introduced in: How to use this book.
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name \
            or name.endswith((".partial", ".json", ".safetensors", ".lock")):
        raise CheckpointError(f"invalid checkpoint name {name!r}: use letters, digits, '_', '-' and "
                              "'.' only (no folders, no '..'), e.g. 'vae_conv'")
    return name


def config_dict(config: Any) -> dict:
    """A plain JSON-able dict of a dataclass (or dict) config (introduced in: How to use this book)."""
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    if isinstance(config, dict):  # through JSON, so tuples become lists exactly as in a saved record
        return json.loads(json.dumps(config, default=str))
    raise TypeError(f"config must be a dataclass or dict, got {type(config).__name__}")


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of the config (first 16 hex digits) (introduced in: How to use this book)."""
    text = json.dumps(config_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def versions() -> dict[str, str]:
    """Library versions, stored in every record (introduced in: How to use this book)."""
    import safetensors

    return {"python": platform.python_version(), "torch": torch.__version__,
            "safetensors": safetensors.__version__, "course_lib": __version__}


def paths(stem: str | Path) -> dict[str, Path]:
    """The files of checkpoint ``stem`` (a folder / NAME), after checking NAME.

    Introduced in: How to use this book.
    """
    stem = Path(stem)
    check_name(stem.name)
    if ".." in stem.parts:
        raise CheckpointError(f"checkpoint path {stem} climbs out of its folder ('..'); name a plain file stem")
    return {kind: stem.with_name(stem.name + suffix) for kind, suffix in (
        ("weights", ".safetensors"), ("json", ".json"), ("partial", ".partial.safetensors"),
        ("lock", ".lock"))}


# ----------------------------------------------------------------------------- records
def validate_record(record: Any, where: str) -> dict:
    """Check a finished record's schema and that its config hash matches its config.

    Introduced in: How to use this book.
    """
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
    Introduced in: How to use this book.
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
    """``model.load_state_dict(tensors)`` with a message naming every mismatch.

    Introduced in: How to use this book.
    """
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
