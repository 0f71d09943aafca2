"""What every benchmark script of a part does: train the runs that are missing, then store targets.

Introduced in: β-VAE and disentanglement. `train_missing` trains each named run unless its
finished checkpoint already matches its config (interrupted runs resume), and keeps the weights
of record-only members in a local, untracked folder so they can be re-evaluated later;
`store_targets` writes a part's measured targets into each finished record without touching
the weights. The benchmark scripts under ``benchmarks/`` add only their own measurements.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Sequence

import torch
from safetensors.torch import save_file

from ..checkpoint import CheckpointError, load_checkpoint, read_record, save_checkpoint
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
                  directory: str | Path | None = None) -> list[str]:
    """Write ``targets`` under ``"targets"`` into every finished record of ``names`` (weights unchanged).

    Introduced in: β-VAE and disentanglement. Returns the names written; missing runs are skipped.
    """
    directory = Path(directory) if directory is not None else checkpoint_dir()
    written = []
    for name in names or list(table):
        run = table[name]
        try:
            record = read_record(directory / name)
        except CheckpointError:
            continue
        record["targets"] = targets
        model = None
        if run.ship_weights:                                        # re-save the same weights with the record
            model = run.build(run.model)
            load_checkpoint(directory / name, model, expect_hash=run.hash())
        save_checkpoint(directory / name, model, record)
        written.append(name)
    return written


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


__all__ = ["train_missing", "read_records", "store_targets", "command_line"]
