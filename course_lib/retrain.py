"""Retrain any shipped model: ``python -m course_lib.retrain NAME [NAME ...]`` (or ``all``, ``--list``).

Introduced in: How to use this book. Every checkpoint in ``checkpoints/`` is produced by one
function listed in `MODELS`; the chapters call the same function, so what they load and what
this command trains cannot drift apart. Training runs on the GPU when one is present and
overwrites the shipped checkpoint (weights + JSON record) atomically.
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from typing import Callable

from . import autoencoders, env, tour, vae_training

# name -> the function of ``device`` that returns (model, record) via `train_or_load`: one entry
# per shipped checkpoint, taken from each family's table of shipped configs.
MODELS: dict[str, Callable] = {
    "tour_classifier": tour.trained_classifier,
    **{name: partial(autoencoders.trained_ae, name) for name in autoencoders.SHIPPED},
    **{name: partial(vae_training.trained_vae, name) for name in vae_training.CONFIGS},
}


def resolve(name: str) -> Callable:
    """The function that trains or loads checkpoint ``name``."""
    if name not in MODELS:
        raise KeyError(f"no shipped model called {name!r}; known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def _describe(fn: Callable) -> str:
    """``module.function`` (with its bound arguments) for ``--list``."""
    inner = fn.func if isinstance(fn, partial) else fn
    args = ", ".join(repr(a) for a in getattr(fn, "args", ()))
    return f"{inner.__module__}.{inner.__name__}({args})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Retrain shipped checkpoints (GPU when present).")
    parser.add_argument("names", nargs="*", help="checkpoint names, or 'all'")
    parser.add_argument("--list", action="store_true", help="list the shipped models and exit")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        for name, fn in sorted(MODELS.items()):
            print(f"{name:32s} {_describe(fn)}")
        return 0
    names = sorted(MODELS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; see --list")
    if env.smoke():
        parser.error(f"{env.SMOKE_VAR} is set: unset it to retrain shipped models for real")
    settings = env.setup()
    for name in names:
        os.environ[env.RETRAIN_VAR] = name
        _, record = resolve(name)(device=settings.device)
        print(f"{name}: {record.get('epochs')} epochs in {record.get('wall_time_s')} s on "
              f"{record.get('device_name')}; metrics {record.get('metrics')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
