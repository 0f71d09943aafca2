"""Train the Part III sweep (β-VAE, β-TCVAE, annealed, FactorVAE on dSprites) and write the targets.

A measurement, not a test. ``train NAME ...`` trains the named runs of
`course_lib.runs.disentanglement` one after the other (resuming interrupted ones, skipping
finished ones); run two of these in parallel on two cores. ``targets`` reads every record,
checks the targets of the issue and writes the table, under ``"targets"``, into every record
of the sweep (records are rewritten through the checkpoint format, weights untouched):

  median MIG over seeds: β-TCVAE >= 0.20; β-VAE (β = 4) > the plain VAE (β = 1); the plain VAE <= 0.10;
  FactorVAE score >= 0.75 for the best model; binned and grid MIG within 0.03 on every model.

Usage::

  python benchmarks/disentanglement_sweep.py train betavae_b4 tcvae_b6 --threads 1
  python benchmarks/disentanglement_sweep.py targets
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from course_lib import runs
from course_lib.checkpoint import CheckpointError, config_dict, read_record, save_checkpoint
from course_lib.runs import disentanglement as dis
from course_lib.runs.sweep import script

LOCAL = Path(__file__).resolve().parent / "results" / "weights"   # weights of record-only sweep members
TARGETS = {"tcvae_median_mig_min": 0.20, "vae_median_mig_max": 0.10, "best_factorvae_min": 0.75,
           "mig_estimators_max_gap": 0.03}


def groups() -> dict[str, list[str]]:
    """Sweep members by setting: the seeds of one configuration together."""
    out: dict[str, list[str]] = {}
    for name in dis.SHIPPED:
        out.setdefault(name.split("_seed")[0], []).append(name)
    return out


def table() -> dict:
    """Per model: the metrics of the chapter's table, and medians over seeds; the targets checked."""
    rows, missing = {}, []
    for name in dis.SHIPPED:
        try:
            r = read_record(runs.checkpoint_dir() / name)
        except CheckpointError:
            missing.append(name)
            continue
        m = r["metrics"]
        rows[name] = {k: round(m[k], 4) for k in ("mig", "mig_grid", "factorvae_score", "dci_disentanglement",
                                                    "dci_completeness", "dci_informativeness", "distortion",
                                                    "recon_sq_error", "rate", "mi", "tc", "dim_kl")}
        rows[name].update(active_units=m["active_units"], images_seen=r["images_seen"],
                          wall_time_s=round(r["wall_time_s"], 1), device=r["device_name"],
                          images_per_s=round(r["images_seen"] / r["wall_time_s"], 1))
    medians = {g: {k: statistics.median(rows[n][k] for n in names)
                   for k in ("mig", "mig_grid", "factorvae_score", "dci_disentanglement")}
               for g, names in groups().items() if all(n in rows for n in names)}
    checks = {}
    if {"tcvae_b6", "betavae_b1", "betavae_b4"} <= set(medians):
        tc, vae, b4 = medians["tcvae_b6"]["mig"], medians["betavae_b1"]["mig"], medians["betavae_b4"]["mig"]
        checks = {"tcvae_median_mig": [tc, tc >= TARGETS["tcvae_median_mig_min"]],
                  "vae_median_mig": [vae, vae <= TARGETS["vae_median_mig_max"]],
                  "beta4_above_vae": [b4 - vae, b4 > vae]}
    if rows:
        best = max(r["factorvae_score"] for r in rows.values())
        gap = max(abs(r["mig"] - r["mig_grid"]) for r in rows.values())
        checks.update(best_factorvae_score=[best, best >= TARGETS["best_factorvae_min"]],
                      mig_estimators_max_gap=[gap, gap <= TARGETS["mig_estimators_max_gap"]])
    return {"targets": TARGETS, "checks": checks, "medians": medians, "rows": rows, "missing": missing}


def reevaluate(name: str) -> None:
    """Evaluate a finished run again with the current `DisentangleEval` (not hashed), keeping its training record."""
    stem, run = runs.checkpoint_dir() / name, runs.get(name)
    record = read_record(stem)
    if run.ship_weights:
        model, _ = runs.trained(name, device="cpu", allow_training=False)
    else:
        model = run.build(run.model)
        model.load_state_dict(load_file(LOCAL / f"{name}.safetensors"))
    start = time.perf_counter()
    record["metrics"].update(run.evaluate(model.eval(), run, torch.device("cpu")))
    record["eval"] = config_dict(run.eval)
    record["eval_wall_time_s"] = round(time.perf_counter() - start, 1)
    save_checkpoint(stem, model if run.ship_weights else None, record)
    print(f"{name}: re-evaluated in {record['eval_wall_time_s']} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    return script(__doc__, list(dis.SHIPPED), table, ("targets", "checks", "medians"), ("checks", "medians", "missing"),
                  argv, local=LOCAL, extra={"reevaluate": reevaluate})


if __name__ == "__main__":
    sys.exit(main())
