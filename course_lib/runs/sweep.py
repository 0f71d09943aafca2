"""What every benchmark script of a part does: train the runs that are missing, then store targets.

Introduced in: β-VAE and disentanglement. `train_missing` trains each named run unless its
finished checkpoint already matches its config (interrupted runs resume), and keeps the weights
of record-only members in a local, untracked folder so they can be re-evaluated later;
`store_targets` writes a part's measured targets into each finished record without touching
the weights. The benchmark scripts under ``benchmarks/`` add only their own measurements.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from safetensors.torch import save_file

from ..checkpoint import CheckpointError, load_checkpoint, read_record, save_checkpoint
from ..trainer import thin_curve
from .base import Run, checkpoint_dir, fit_run


def train_missing(table: Mapping[str, Run], names: Sequence[str] = (), directory: str | Path | None = None,
                  local: str | Path | None = None, device: str = "cpu", smoke: bool = False) -> dict[str, dict]:
    """Train the runs ``names`` of ``table`` (all when empty) that have no finished, matching checkpoint.

    Introduced in: β-VAE and disentanglement. Returns the new records by name. A run another
    process is training is skipped with a message; record-only runs keep their weights in ``local``.
    ``smoke=True`` trains on the small smoke setting (for tests), never over shipped files.
    """
    directory = Path(directory) if directory is not None else checkpoint_dir()
    done: dict[str, dict] = {}
    for name in names or list(table):
        run = table[name]
        try:
            if read_record(directory / name)["config_hash"] == run.hash():
                print(f"{name}: already trained, skipped", flush=True)
                continue
        except CheckpointError:
            pass                                                   # missing, stale or unreadable: train it
        try:
            model, record = fit_run(name, run, device, directory, smoke=smoke, verbose=False)
        except CheckpointError as err:
            if "another process" not in str(err):
                raise
            print(f"{name}: {err}", flush=True)
            continue
        if not run.ship_weights and local is not None:             # kept locally (untracked) for re-evaluation
            Path(local).mkdir(parents=True, exist_ok=True)
            save_file(model.state_dict(), Path(local) / f"{name}.safetensors")
        print(f"{name}: {record['images_seen']:,} images in {record['wall_time_s']:.0f} s", flush=True)
        done[name] = record
    return done


def read_records(names: Sequence[str], directory: str | Path | None = None) -> dict[str, dict]:
    """The finished records of ``names`` that exist (missing ones are left out) (introduced in: β-VAE and disentanglement)."""
    directory = Path(directory) if directory is not None else checkpoint_dir()
    found = {}
    for name in names:
        try:
            found[name] = read_record(directory / name)
        except CheckpointError:
            pass
    return found


def store_targets(table: Mapping[str, Run], targets: dict, names: Sequence[str] = (),
                  directory: str | Path | None = None, edit: Callable[[str, dict], dict | None] | None = None
                  ) -> list[str]:
    """Write ``targets`` under ``"targets"`` into every finished record of ``names`` (weights unchanged).

    Introduced in: β-VAE and disentanglement. Returns the names written; missing runs are skipped.
    ``edit(name, record)`` may change a record first (e.g. `compact_history`), or return None to
    leave that record as it is.
    """
    directory = Path(directory) if directory is not None else checkpoint_dir()
    written = []
    for name in names or list(table):
        run = table[name]
        try:
            record = read_record(directory / name)
        except CheckpointError:
            continue
        if edit is not None and (record := edit(name, record)) is None:
            continue
        record["targets"] = targets
        rewrite_record(run, directory / name, record)
        written.append(name)
    return written


def rewrite_record(run: Run, stem: str | Path, record: dict) -> dict:
    """Save ``record`` as checkpoint ``stem``'s record, re-saving its weights unchanged (checked against the run's hash).

    Introduced in: β-VAE and disentanglement. For numbers measured after training (targets,
    benchmarks): `save_checkpoint` recomputes the weights' checksum, so the record still describes them.
    """
    model = None
    if run.ship_weights:
        model = run.build(run.model)
        load_checkpoint(stem, model, expect_hash=run.hash())
    return save_checkpoint(stem, model, record)


def compact_history(history: dict, points: int, digits: int = 5, parts: Sequence[str] | None = None) -> dict:
    """A record's history thinned to at most ``points`` per-step losses and rounded to ``digits`` significant
    digits (all of it, or only the entries named in ``parts``), to keep sweep records small.

    Introduced in: β versus σ: the decoder variance.
    """
    def rounded(value):
        if isinstance(value, float):
            return float(f"{value:.{digits}g}")
        if isinstance(value, list):
            return [rounded(v) for v in value]
        if isinstance(value, dict):
            return {k: rounded(v) for k, v in value.items()}
        return value

    history = dict(history)
    if len(history["step_loss"]) > points:                          # block means of block means
        values, stride = thin_curve(history["step_loss"], points)
        history.update(step_loss=values, step_loss_stride=history["step_loss_stride"] * stride)
    return rounded(history) if parts is None else {**history, **{p: rounded(history[p]) for p in parts}}


def command_line(doc: str, commands: Sequence[str], argv: list[str] | None = None) -> argparse.Namespace:
    """``COMMAND [NAMES ...] [--threads N]`` for a benchmark script; sets torch's thread count.

    Introduced in: β-VAE and disentanglement.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("command", choices=tuple(commands))
    parser.add_argument("names", nargs="*")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args


def script(doc: str, names: Sequence[str], measure: Callable[[], dict], stored: Sequence[str], shown: Sequence[str],
           argv: list[str] | None = None, local: str | Path | None = None,
           edit: Callable[[str, dict], dict | None] | None = None,
           extra: Mapping[str, Callable[[str], None]] | None = None) -> int:
    """The command line of a part's benchmark script (introduced in: β-VAE and disentanglement).

    ``train [NAMES]``: `train_missing`. ``targets``: ``measure()`` gives a dict with ``"rows"`` (the
    runs measured); its ``stored`` entries go into those records (`store_targets` with ``edit``),
    its ``shown`` entries are printed. ``extra`` adds commands run once per name.
    """
    from . import SHIPPED

    args = command_line(doc, ("train", "targets", *(extra or {})), argv)
    if args.command == "train":
        train_missing(SHIPPED, args.names or names, local=local)
    elif args.command != "targets":
        for name in args.names or names:
            extra[args.command](name)
    else:
        result = measure()
        store_targets(SHIPPED, {k: result[k] for k in stored}, list(result["rows"]), edit=edit)
        print(json.dumps({k: result[k] for k in shown}, indent=1))
    return 0


__all__ = ["train_missing", "read_records", "store_targets", "rewrite_record", "compact_history", "command_line", "script"]
