"""How long a chapter takes to read and its models to retrain, measured or estimated (marked as such).

Introduced in: How to use this book. Every chapter ends with `report(chapter_start, names)`:

* reading the page: measured, the wall time of the notebook on the machine that ran it;
* retraining the chapter's shipped models: measured, the wall times in their records, with the
  device each one trained on;
* retraining on a Colab T4: estimated (no T4 was available), from the training FLOPs counted
  with `torch.utils.flop_counter` on one batch of each model's own objective, forward and
  backward, times the images the record says it saw, at an assumed sustained rate, plus an
  assumed fixed cost per optimiser step (small models on a GPU are launch-bound).
"""

from __future__ import annotations

import re
import time
from typing import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from .. import env
from ..checkpoint import read_record
from ..plotting import glue
from . import get
from .base import Run, checkpoint_dir, loaders

T4_FP32_PEAK = 8.1e12        # FLOP/s, NVIDIA T4 datasheet (FP32)
T4_UTILISATION = 0.25        # assumed sustained fraction of the peak for the course's small models
T4_STEP_OVERHEAD_S = 1e-3    # assumed kernel-launch and optimiser cost per training step on a GPU


def _one_batch(run: Run, n: int = 2):
    """A batch of ``n`` training examples in the form the run's objective takes, on the CPU."""
    shape = getattr(run.model, "image_shape", None)
    if shape is not None:                                   # FLOPs do not depend on pixel values
        x = torch.bernoulli(torch.full((n, *shape), 0.5))
        return (x, torch.arange(n) % 10) if run.train.labels else x
    make = run.data if run.data is not None else loaders
    train_batches, _ = make(run.train, torch.device("cpu"), True)
    batch = next(iter(train_batches))
    return tuple(b[:n] for b in batch) if isinstance(batch, (tuple, list)) else batch[:n]


def training_flops_per_image(run: Run) -> float:
    """FLOPs of one training step of ``run``'s objective (forward and backward), per image.

    Introduced in: How to use this book. Counted by `FlopCounterMode` on a batch of two.
    """
    env.seed_everything(0)
    model = run.build(run.model).train()
    objective = run.objective(run.train, lambda: 0.0)
    batch = _one_batch(run)
    with FlopCounterMode(display=False) as counter:
        objective(model, batch)["loss"].backward()
    size = (batch[0] if isinstance(batch, (tuple, list)) else batch).shape[0]
    return counter.get_total_flops() / size


def retraining(names: Sequence[str]) -> dict:
    """Measured training time of ``names`` (from their records) and the T4 estimate (introduced in: How to use this book)."""
    shipped = {n: get(n) for n in names}                     # an unknown name: an error listing the known ones
    records = {n: read_record(checkpoint_dir() / n) for n in names}
    flops = sum(training_flops_per_image(shipped[n]) * r["images_seen"] for n, r in records.items())
    steps = sum(r["images_seen"] / shipped[n].train.batch_size for n, r in records.items())
    return {"seconds": sum(r["wall_time_s"] for r in records.values()),
            "devices": sorted({r.get("device_name", r["device"]) for r in records.values()}),
            "flops": flops, "steps": steps,
            "t4_seconds": flops / (T4_FP32_PEAK * T4_UTILISATION) + steps * T4_STEP_OVERHEAD_S}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _devices(names: Sequence[str]) -> str:
    """'CPU (x86_64, 1 or 2 threads)' rather than one entry per thread count."""
    cpus = [re.fullmatch(r"CPU \((.+), (\d+) threads?\)", n) for n in names]
    if len(names) > 1 and all(cpus) and len({m.group(1) for m in cpus}) == 1:
        threads = sorted({int(m.group(2)) for m in cpus})
        return f"CPU ({cpus[0].group(1)}, {' or '.join(map(str, threads))} threads)"
    return ", ".join(names)


def report(chapter_start: float, names: Sequence[str] = (), device: torch.device | str | None = None) -> dict:
    """Glue and print this chapter's run times (introduced in: How to use this book).

    ``chapter_start`` is the `time.perf_counter()` of the chapter's first cell; ``names`` the
    shipped models the chapter loads or reads. Glues what the "Running this chapter" box at the
    top of the page shows: ``rt_read`` (measured) and, when there are models, ``rt_models``,
    ``rt_train`` and ``rt_train_device`` (measured, from the records), ``rt_t4``, ``rt_tflop``,
    ``rt_t4_util`` and ``rt_step_ms`` (the estimate and its assumptions).
    """
    read_s = time.perf_counter() - chapter_start
    where = env.device_name(torch.device(device) if device is not None else env.pick_device())
    glue("rt_read", f"{_duration(read_s)} on {where}")
    print(f"chapter ran in {read_s:.1f} s on {where} (measured)")
    if not names:
        return {"read_s": read_s}
    r = retraining(names)
    glue("rt_models", f"{len(names)} shipped model{'s' * (len(names) > 1)}")
    glue("rt_train", _duration(r["seconds"]))
    glue("rt_train_device", _devices(r["devices"]))
    glue("rt_t4", _duration(r["t4_seconds"]))
    glue("rt_tflop", r["flops"] / 1e12)
    glue("rt_t4_util", T4_UTILISATION)
    glue("rt_step_ms", T4_STEP_OVERHEAD_S * 1e3)
    print(f"retraining {len(names)} models: {r['seconds'] / 60:.1f} min on {_devices(r['devices'])} (records); "
          f"Colab T4 estimate {r['t4_seconds'] / 60:.1f} min from {r['flops'] / 1e12:.2f} TFLOP")
    return {"read_s": read_s, **r}
