"""Checkpoints: safetensors weights plus a JSON record, written atomically; `train_or_load`.

Introduced in: How to use this book. A checkpoint called ``NAME`` is three files:

``NAME.safetensors``         the model's weights (never a pickle);
``NAME.json``                the record: config and its hash, epochs, device, wall time,
                             metrics, history, library versions, weights checksum;
``NAME.resume.safetensors``  optimizer state for resuming (not committed to the repository).

Every file is written to a temporary name in the same folder and moved into place with
`os.replace`, so a crash leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import env
from ._about import __version__

FORMAT = 1
ALLOW_TRAINING = True  # tests set this to False to prove that shipped checkpoints load as they are
REPO_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another config or model."""


# ----------------------------------------------------------------------------- config
def config_dict(config: Any) -> dict:
    """A plain JSON-able dict of a dataclass (or dict) config."""
    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    if isinstance(config, dict):
        return dict(config)
    raise TypeError(f"config must be a dataclass or dict, got {type(config).__name__}")


def config_hash(config: Any) -> str:
    """sha256 of the canonical JSON of the config (first 16 hex digits)."""
    text = json.dumps(config_dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def checkpoint_dir() -> Path:
    """The shipped checkpoints (``checkpoints/`` in a repository checkout), else the cache."""
    if REPO_CHECKPOINTS.is_dir():
        return REPO_CHECKPOINTS
    return env.cache_dir() / "checkpoints"


def versions() -> dict[str, str]:
    import safetensors

    return {"python": platform.python_version(), "torch": torch.__version__,
            "safetensors": safetensors.__version__, "course_lib": __version__}


# ----------------------------------------------------------------------------- files
def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)  # atomic on POSIX and Windows when on the same filesystem
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(path: Path) -> tuple[Path, Path, Path]:
    path = Path(path)
    return (path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json"),
            path.with_name(path.name + ".resume.safetensors"))


def _state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share memory (tied weights) or are views
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_checkpoint(path: str | Path, model: torch.nn.Module, record: dict,
                    optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Write weights, record (and optimizer state) atomically; return the record as written."""
    weights, meta, resume = _files(Path(path))
    _atomic_write(weights, lambda tmp: save_file(_state_dict(model), tmp))
    if optimizer is not None:
        sd = optimizer.state_dict()
        tensors, state = {}, {}
        for pid, slot in sd["state"].items():
            for key, value in slot.items():
                if torch.is_tensor(value):
                    tensors[f"{pid}/{key}"] = value.detach().to("cpu").contiguous().clone()
                else:
                    state.setdefault(str(pid), {})[key] = value
        header = json.dumps({"param_groups": sd["param_groups"], "state": state})
        _atomic_write(resume, lambda tmp: save_file(tensors, tmp, metadata={"optimizer": header}))
    record = {**record, "format": FORMAT, "weights_sha256": _sha256(weights),
              "versions": versions(), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    _atomic_write(meta, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1, default=str)))
    return record


def read_record(path: str | Path) -> dict:
    """The JSON record of checkpoint ``path`` (raises `CheckpointError` if missing or unreadable)."""
    _, meta, _ = _files(Path(path))
    if not meta.is_file():
        raise CheckpointError(f"no checkpoint record at {meta}")
    try:
        record = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint record {meta} is not valid JSON ({err}); "
                              "delete it or retrain") from err
    if not isinstance(record, dict):
        raise CheckpointError(f"checkpoint record {meta} is not a JSON object; delete it or retrain")
    return record


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    expect_hash: str | None = None) -> dict:
    """Load weights (and optimizer state) into ``model``; return the record.

    Every way this can fail becomes a `CheckpointError` whose message says what is wrong
    and what to do, rather than a traceback from inside torch.
    """
    weights, meta, resume = _files(Path(path))
    record = read_record(path)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint record {meta} exists but its weights {weights} are missing; retrain")
    if expect_hash is not None and record.get("config_hash") != expect_hash:
        raise CheckpointError(
            f"checkpoint {weights.name} was trained with another config (hash {record.get('config_hash')}, "
            f"wanted {expect_hash}); differences are expected after you edit a config: retrain it")
    if record.get("weights_sha256") not in (None, _sha256(weights)):
        raise CheckpointError(f"{weights} does not match the checksum in its record (corrupt or "
                              "half-copied file; with git-lfs, run `git lfs pull`); delete it or retrain")
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights} is not a readable safetensors file ({err}); delete it or retrain") from err
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(s for s in (
            f"missing {missing[:4]}" if missing else "", f"unexpected {unexpected[:4]}" if unexpected else "",
            "shape mismatch " + ", ".join(f"{k}: file {tuple(state[k].shape)} vs model "
                                          f"{tuple(expected[k].shape)}" for k in wrong[:4]) if wrong else "")
            if s)
        raise CheckpointError(f"{weights.name} does not fit a {type(model).__name__}: {detail}. "
                              "Was it saved from another model or config?")
    model.load_state_dict(state)
    if optimizer is not None:
        if not resume.is_file():
            raise CheckpointError(f"no optimizer state at {resume}; cannot resume, start afresh")
        try:
            from safetensors import safe_open

            with safe_open(str(resume), "pt") as f:
                header = json.loads(f.metadata()["optimizer"])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{resume} is unreadable ({err}); delete it to start afresh") from err
        state_opt: dict[int, dict] = {int(k): dict(v) for k, v in header["state"].items()}
        for key, value in tensors.items():
            pid, name = key.split("/", 1)
            state_opt.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": state_opt, "param_groups": header["param_groups"]})
    return record


# ----------------------------------------------------------------------------- train_or_load
def retrain_requested(name: str) -> bool:
    """True when ``VAE_COURSE_RETRAIN`` is ``1``/``all`` or lists ``name``."""
    value = os.environ.get(env.RETRAIN_VAR, "").strip().lower()
    return value in {"1", "all", "true", "yes"} or name.lower() in {v.strip() for v in value.split(",")}


def train_or_load(name: str, config: Any, build: Callable[[Any], torch.nn.Module],
                  train: Callable[[torch.nn.Module, Any, Path], Any],
                  device: torch.device | str | None = None,
                  directory: str | Path | None = None) -> tuple[torch.nn.Module, dict]:
    """Load the shipped checkpoint ``name`` if it was trained with ``config``, else train it.

    Introduced in: How to use this book. ``build(config)`` makes the model;
    ``train(model, config, path)`` trains it and writes checkpoint ``path`` (normally through
    `Trainer`, which also records the config and resumes an interrupted run). Set
    ``VAE_COURSE_RETRAIN`` to force training. A corrupt or mismatched checkpoint prints why
    and falls back to training. In the smoke setting a fresh training run writes to the
    cache, never over a shipped checkpoint.
    """
    device = torch.device(device) if device is not None else env.pick_device()
    shipped = Path(directory) if directory is not None else checkpoint_dir()
    model = build(config)
    if retrain_requested(name):
        print(f"[{name}] {env.RETRAIN_VAR} asks for retraining.")
    else:
        try:
            record = load_checkpoint(shipped / name, model, expect_hash=config_hash(config))
        except CheckpointError as err:
            if (shipped / f"{name}.json").exists() or (shipped / f"{name}.safetensors").exists():
                warnings.warn(f"[{name}] cannot use the shipped checkpoint: {err}. Training instead.",
                              stacklevel=2)
            print(f"[{name}] no usable checkpoint ({err}); training.")
        else:
            print(f"[{name}] loaded checkpoint: trained {record.get('epochs')} epochs on "
                  f"{record.get('device_name', record.get('device'))} in {record.get('wall_time_s', 0):.0f} s.")
            return model.to(device).eval(), record
    if not ALLOW_TRAINING:
        raise CheckpointError(f"[{name}] would have to train, but training is switched off "
                              f"(course_lib.checkpoint.ALLOW_TRAINING = False)")
    target = (env.cache_dir() / "smoke-checkpoints" if env.smoke() else shipped) / name
    model = model.to(device)
    train(model, config, target)
    record = load_checkpoint(target, model, expect_hash=config_hash(config))
    print(f"[{name}] trained and saved to {target}.safetensors")
    return model.eval(), record


__all__ = ["CheckpointError", "config_hash", "config_dict", "save_checkpoint", "load_checkpoint",
           "read_record", "train_or_load", "checkpoint_dir", "retrain_requested", "versions"]
