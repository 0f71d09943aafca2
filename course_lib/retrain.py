"""Retrain any shipped model: ``python -m course_lib.retrain NAME [NAME ...]`` (or ``all``, ``--list``).

Introduced in: How to use this book. Every checkpoint in ``checkpoints/`` is produced by one
function listed in `MODELS`; the chapters call the same function, so what they load and what
this command trains cannot drift apart. Training runs on the GPU when one is present and
overwrites the shipped checkpoint (weights + JSON record) atomically.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Callable

from . import env

# name -> "module:function"; the function returns (model, record) via `train_or_load`.
MODELS: dict[str, str] = {
    "tour_classifier": "course_lib.tour:trained_classifier",
    "ae_mnist_z2": "course_lib.autoencoders:trained_ae_mnist_z2",
    "ae_mnist_z4": "course_lib.autoencoders:trained_ae_mnist_z4",
    "ae_mnist_z8": "course_lib.autoencoders:trained_ae_mnist_z8",
    "ae_mnist_z16": "course_lib.autoencoders:trained_ae_mnist_z16",
    "ae_mnist_z32": "course_lib.autoencoders:trained_ae_mnist_z32",
    "ae_fashion_z16": "course_lib.autoencoders:trained_ae_fashion_z16",
    "ae_mnist_z16_denoise": "course_lib.autoencoders:trained_ae_mnist_z16_denoise",
    "vae_mlp2d": "course_lib.vae_training:trained_mlp2d",
    "vae_mlp2d_vamp": "course_lib.vae_training:trained_mlp2d_vamp",
    "vae_mlp32": "course_lib.vae_training:trained_mlp32",
    "vae_mlp32_warmup": "course_lib.vae_training:trained_mlp32_warmup",
    "vae_gauss_s010": "course_lib.vae_training:trained_gauss_s010",
    "vae_gauss_s071": "course_lib.vae_training:trained_gauss_s071",
    "vae_gauss_meanmse": "course_lib.vae_training:trained_gauss_meanmse",
    "vae_conv": "course_lib.vae_training:trained_conv",
    "vae_cat": "course_lib.vae_training:trained_cat",
}


def resolve(name: str) -> Callable:
    """The function that trains or loads checkpoint ``name``."""
    if name not in MODELS:
        raise KeyError(f"no shipped model called {name!r}; known: {', '.join(sorted(MODELS))}")
    module, func = MODELS[name].split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Retrain shipped checkpoints (GPU when present).")
    parser.add_argument("names", nargs="*", help="checkpoint names, or 'all'")
    parser.add_argument("--list", action="store_true", help="list the shipped models and exit")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        for name, target in sorted(MODELS.items()):
            print(f"{name:32s} {target}")
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
