"""What a shipped run is, and the one function that trains it: `fit_run`.

Introduced in: How to use this book. A `Run` pairs an architecture config (``model``) with a
training config (``train``) and evaluation settings (``eval``). The checkpoint's hash covers
the family, ``model`` and ``train`` only: changing how a model is *evaluated* never
discards its trained weights. `fit_run` seeds, then builds, then trains, then evaluates,
in that order, so ``train.seed`` alone determines the weights.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from torch import nn

from .. import distributed, env
from ..checkpoint import (CheckpointError, check_name, config_dict, config_hash, load_checkpoint, paths, save_checkpoint)
from ..resume import training_lock
from ..data import DeviceLoader, load
from ..trainer import Trainer

REPO_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
SMOKE_LIMIT = 2000      # training and validation images in the smoke setting
HISTORY_POINTS = 500    # per-step loss points kept in a shipped record


@dataclass(frozen=True)
class TrainConfig:
    """How a run trains (hashed with the architecture) (introduced in: How to use this book)."""

    dataset: str = "mnist"          # a `course_lib.data.load` name
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    labels: bool = False            # batches are (x, y) instead of x
    valid_n: int | None = None      # validation images per epoch (None: the whole split)
    valid_batch: int = 1000


@dataclass(frozen=True)
class Run:
    """One shipped model: family, architecture, training, evaluation, and the code that runs them.

    Introduced in: How to use this book.
    """

    family: str
    model: Any                                         # architecture config dataclass
    train: TrainConfig
    build: Callable[[Any], nn.Module] = field(repr=False)
    objective: Callable[[Any, Callable[[], float]], Callable] = field(repr=False)  # (train, epochs_done) -> objective
    evaluate: Callable[[nn.Module, "Run", torch.device], dict] | None = field(default=None, repr=False)
    eval: Any = None                                   # evaluation settings (not hashed)
    ship_weights: bool = True                          # False: a sweep member ships its record alone
    # (train, device, smoke) -> (training batches, validation batches); None: `loaders` (course_lib.data)
    data: Callable[[Any, torch.device, bool], tuple[Iterable, Iterable]] | None = field(default=None, repr=False)

    def config(self) -> dict:
        """What the checkpoint hash covers: family, architecture and training config."""
        return {"family": self.family, "model": config_dict(self.model), "train": config_dict(self.train)}

    def hash(self) -> str:
        return config_hash(self.config())


def checkpoint_dir() -> Path:
    """The shipped checkpoints (``checkpoints/`` in a repository checkout), else the user cache.

    Introduced in: How to use this book.
    """
    return REPO_CHECKPOINTS if REPO_CHECKPOINTS.is_dir() else env.cache_dir() / "checkpoints"


def smoke_dir() -> Path:
    """Where smoke-setting runs are written: never over a shipped checkpoint (introduced in: How to use this book)."""
    return env.cache_dir() / "smoke-checkpoints"


def loaders(train: TrainConfig, device: torch.device, smoke: bool) -> tuple[DeviceLoader, DeviceLoader]:
    """Training and validation batches, on the device, for ``train`` (smaller in the smoke setting).

    Introduced in: How to use this book. On a GPU the last incomplete training batch is dropped,
    so every step has one shape and a compiled model is never recompiled.
    """
    limit = SMOKE_LIMIT if smoke else None
    valid_n = SMOKE_LIMIT if smoke and train.valid_n is None else (min(train.valid_n, SMOKE_LIMIT)
                                                                   if smoke else train.valid_n)
    train_data = load(train.dataset, "train", device, limit)
    valid_data = load(train.dataset, "valid", device, valid_n)
    return (DeviceLoader(train_data, train.batch_size, labels=train.labels, drop_last=device.type == "cuda"),
            DeviceLoader(valid_data, train.valid_batch, shuffle=False, labels=train.labels))


def _finite(metrics: dict) -> bool:
    return all(math.isfinite(v) for v in metrics.values() if isinstance(v, float))


def fit_run(name: str, run: Run, device: torch.device | str | None = None, directory: str | Path | None = None,
            smoke: bool | None = None, verbose: bool = True) -> tuple[nn.Module, dict]:
    """Seed, build, train (resuming an interrupted run), evaluate, then publish ``NAME`` (introduced in: How to use this book).

    Training writes ``NAME.partial.safetensors`` after every epoch; the finished checkpoint
    ``NAME`` is replaced only when the run finished with finite metrics, and the partial file
    is then removed. A lock keeps two processes from training the same name at once.
    """
    check_name(name)
    device = torch.device(device) if device is not None else env.pick_device()
    smoke = env.smoke() if smoke is None else smoke
    directory = Path(directory) if directory is not None else (smoke_dir() if smoke else checkpoint_dir())
    stem = directory / name
    main = distributed.is_main()                       # under torchrun only rank 0 locks, evaluates, publishes
    with training_lock(stem) if main else contextlib.nullcontext():
        env.seed_everything(run.train.seed)            # seed first: the seed alone fixes the initial weights
        model = run.build(run.model).to(device)
        train_loader, valid_loader = (run.data or loaders)(run.train, device, smoke)
        trainer: Trainer | None = None
        # the objective may read training progress (epochs done, a float) for schedules such as KL warm-up
        objective = run.objective(run.train, lambda: trainer.step / len(train_loader))
        trainer = Trainer(model, objective, config=run.config(), name=name, lr=run.train.lr, checkpoint=stem,
                          verbose=verbose, progress=verbose, skip_grad=getattr(run.train, "skip_grad", None))
        trainer.fit(train_loader, 1 if smoke else run.train.epochs, valid_loader)
        if not main:
            return model.eval(), trainer.record(thin=HISTORY_POINTS)
        metrics = run.evaluate(model, run, device) if run.evaluate is not None else {}
        record = trainer.record(thin=HISTORY_POINTS)
        record.update({
            "family": run.family, "smoke": smoke, "metrics": {**record["metrics"], **metrics},
            "eval": config_dict(run.eval) if run.eval is not None else None,
            "images_seen": trainer.step * run.train.batch_size * distributed.world()[1],
            "processes": distributed.world()[1],
            "parameters": sum(p.numel() for p in model.parameters()),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        if not _finite(record["metrics"]):
            raise CheckpointError(f"[{name}] finished with non-finite metrics {record['metrics']}; the shipped "
                                  f"checkpoint is untouched and the run stays in {paths(stem)['partial'].name}")
        record = save_checkpoint(stem, model if run.ship_weights else None, record)
        paths(stem)["partial"].unlink(missing_ok=True)
    if verbose:
        print(f"[{name}] trained and saved to {stem}.safetensors")
    return model.eval(), record


def trained(name: str, run: Run, device: torch.device | str | None = None, directory: str | Path | None = None,
            allow_training: bool = True) -> tuple[nn.Module, dict]:
    """The finished checkpoint ``NAME`` if it was trained with ``run``'s config, else a `fit_run`.

    Introduced in: How to use this book. Never serves an unfinished run; with
    ``allow_training=False`` a missing, stale or unfinished checkpoint is an error that says
    what to run. ``VAE_COURSE_RETRAIN`` forces training.
    """
    check_name(name)
    device = torch.device(device) if device is not None else env.pick_device()
    shipped = Path(directory) if directory is not None else checkpoint_dir()
    model = run.build(run.model)
    if env.retrain_requested(name):
        reason = f"{env.RETRAIN_VAR} asks for retraining"
    else:
        try:
            record = load_checkpoint(shipped / name, model, expect_hash=run.hash())
        except CheckpointError as err:
            reason = str(err)
        else:
            print(f"[{name}] loaded checkpoint: trained {record['epochs']} epochs on "
                  f"{record.get('device_name', record['device'])} in {record['wall_time_s']:.0f} s.")
            return model.to(device).eval(), record
    if not allow_training:
        partial = paths(shipped / name)["partial"]
        hint = f" ({partial.name} holds an unfinished run)" if partial.is_file() else ""
        raise CheckpointError(f"[{name}] no finished checkpoint to load{hint}: {reason}. "
                              f"Run `python -m course_lib.retrain {name}`.")
    print(f"[{name}] training ({reason}).")
    return fit_run(name, run, device, directory=None if directory is None or env.smoke() else directory)
