"""Re-evaluate shipped checkpoints with their current evaluation settings, and store the result.

A measurement, not a test. Evaluation settings (``Run.eval``, e.g. `VAEEval`) are not part of
the checkpoint hash, so changing them never discards the trained weights; this script loads
each named checkpoint (never trains), runs ``Run.evaluate`` with its current settings, and
rewrites the record through `course_lib.checkpoint.save_checkpoint` (weights untouched, metrics
of the previous evaluation replaced, training metrics kept). Usage:

  python benchmarks/evaluate_shipped.py vae_mlp2d vae_mlp2d_vamp
  python benchmarks/evaluate_shipped.py vae_mlp2d --dry-run      # print, write nothing
"""

from __future__ import annotations

import argparse
import json
import time

import course_lib
from course_lib import runs
from course_lib.checkpoint import config_dict, save_checkpoint

TRAINING_KEYS = ("train_", "valid_")   # metrics written by the Trainer, kept as they are


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="shipped checkpoint names")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dry-run", action="store_true", help="print the metrics, do not rewrite the records")
    args = parser.parse_args(argv)
    if course_lib.smoke():
        parser.error("VAE_COURSE_SMOKE is set: unset it to evaluate shipped models for real")
    device = course_lib.setup(seed=0, device=args.device).device
    results = {}
    for name in args.names:
        run = runs.get(name)
        if run.evaluate is None:
            parser.error(f"{name} has no evaluation function")
        model, record = runs.trained(name, device, allow_training=False)
        start = time.perf_counter()
        metrics = run.evaluate(model, run, device)
        seconds = round(time.perf_counter() - start, 1)
        kept = {k: v for k, v in record["metrics"].items() if k.startswith(TRAINING_KEYS)}
        record = {**record, "metrics": {**kept, **metrics}, "eval": config_dict(run.eval),
                  "eval_wall_time_s": seconds, "eval_device_name": course_lib.env.device_name(device)}
        if not args.dry_run:
            save_checkpoint(runs.checkpoint_dir() / name, model, record)
        results[name] = {"eval_s": seconds, **metrics}
        print(json.dumps({name: results[name]}, indent=1), flush=True)
    return results


if __name__ == "__main__":
    main()
