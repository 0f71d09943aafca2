"""Retrain any shipped model: ``python -m course_lib.retrain NAME [NAME ...]`` (or ``all``, ``--list``).

Introduced in: How to use this book. Under ``torchrun --nproc_per_node=N`` every rank trains its
shard of each global batch and rank 0 publishes (see "Training on several GPUs"). Every checkpoint in ``checkpoints/`` is a `Run` in
`course_lib.runs`; the chapters load the same runs, so what they load and what this
command trains cannot drift apart. Training runs on the best device (CUDA, MPS, CPU),
resumes an interrupted run, and replaces the shipped files only when the run finished
with finite metrics.
"""

from __future__ import annotations

import argparse
import sys

from . import distributed, env, runs


def main(argv: list[str] | None = None) -> int:
    """The command line (introduced in: How to use this book)."""
    parser = argparse.ArgumentParser(description="Retrain shipped checkpoints (GPU when present).")
    parser.add_argument("names", nargs="*", help="checkpoint names, or 'all'")
    parser.add_argument("--list", action="store_true", help="list the shipped models and exit")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--directory", default=None, help="write the checkpoints here (default: checkpoints/)")
    parser.add_argument("--smoke", action="store_true", help="the small, fast setting (needs --directory)")
    args = parser.parse_args(argv)
    if args.list or not args.names:
        for name, run in sorted(runs.SHIPPED.items()):
            weights = "weights+record" if run.ship_weights else "record only"
            print(f"{name:24s} {run.family:12s} {run.train.epochs:3d} epochs  {run.train.dataset:16s} "
                  f"hash {run.hash()}  {weights}")
        return 0
    names = sorted(runs.SHIPPED) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in runs.SHIPPED]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; see --list")
    if (env.smoke() or args.smoke) and args.directory is None:
        parser.error(f"the smoke setting ({env.SMOKE_VAR} or --smoke) never writes over the shipped models: "
                     "pass --directory, or unset it to retrain them for real")
    device = distributed.init_from_env()               # under torchrun: this rank's device
    settings = env.setup(device=args.device or (str(device) if device is not None else None),
                         verbose=distributed.is_main())
    for name in names:
        _, record = runs.fit(name, device=settings.device, directory=args.directory, smoke=args.smoke or env.smoke())
        if not distributed.is_main():
            continue
        print(f"{name}: {record['epochs']} epochs in {record['wall_time_s']} s on "
              f"{record.get('device_name')}; metrics {record['metrics']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
