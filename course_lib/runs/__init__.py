"""Every shipped model, by name, and how to get it: `trained(name)` (introduced in: How to use this book).

One file per chapter group holds ``SHIPPED = {name: Run(...)}``; this module merges them.
Chapters call ``trained(name)``, ``python -m course_lib.retrain NAME`` calls `fit(name)`, so
what a chapter loads and what the command trains cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from . import autoencoders, conditional, discrete, disentanglement, hierarchical, sigma, toolkit, vae
from .base import Run, TrainConfig, checkpoint_dir, fit_run, smoke_dir
from .base import trained as _trained

SHIPPED: dict[str, Run] = {**toolkit.SHIPPED, **autoencoders.SHIPPED, **vae.SHIPPED,
                           **disentanglement.SHIPPED, **sigma.SHIPPED, **conditional.SHIPPED,
                           **discrete.SHIPPED, **hierarchical.SHIPPED}


def get(name: str) -> Run:
    """The `Run` called ``name``; a clear error lists the known names (introduced in: How to use this book)."""
    if name not in SHIPPED:
        raise KeyError(f"no shipped model called {name!r}; known: {', '.join(sorted(SHIPPED))} "
                       "(`python -m course_lib.retrain --list`)")
    return SHIPPED[name]


def trained(name: str, device: torch.device | str | None = None, directory: str | Path | None = None,
            allow_training: bool = True) -> tuple[nn.Module, dict]:
    """The shipped model ``name`` and its record, trained first if missing or stale (introduced in: How to use this book)."""
    return _trained(name, get(name), device, directory, allow_training)


def fit(name: str, device: torch.device | str | None = None, directory: str | Path | None = None,
        smoke: bool | None = None) -> tuple[nn.Module, dict]:
    """Retrain the shipped model ``name`` (resuming an interrupted run) and publish it.

    Introduced in: How to use this book.
    """
    return fit_run(name, get(name), device, directory, smoke)


__all__ = ["SHIPPED", "Run", "TrainConfig", "get", "trained", "fit", "fit_run", "checkpoint_dir", "smoke_dir"]
