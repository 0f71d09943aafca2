"""Train the β-versus-σ sweep (course_lib.runs.sigma) and write the targets of issue 11 into its records.

A measurement, not a test. ``train NAME ...`` trains the named runs one after the other (resuming
interrupted ones, skipping finished ones); run two of these in parallel on two cores. ``targets``
reads every record, checks the targets, compacts each VAE record (the per-step loss curve thinned to
50 points, the history rounded to 5 digits, the sample PNG cut to ``SigmaEval.grid`` images: 34
records ship in a tight size budget) and writes the table, under ``"targets"``, into every VAE
record of the sweep (through the checkpoint format; the LeNets' weights are untouched):

  sigma* of the learned-sigma VAE (beta = 1) within 2% of sqrt(test per-pixel MSE);
  the fixed-sigma VAE at beta = 2 sigma*^2 within 1 nat (test negative ELBO) and 5% (FLD) of it;
  FLD spread over beta: learned sigma far below fixed sigma; the sigma-VAE's FLD <= 0.5x that of
  the sigma = 1 VAE and of the per-pixel-mean-MSE VAE.

Usage::

  python benchmarks/sigma_sweep.py train lenet_mnist sigma_mnist_learned_b1 --threads 1
  python benchmarks/sigma_sweep.py targets
"""

from __future__ import annotations

import sys

import torch

from course_lib import runs
from course_lib.checkpoint import CheckpointError, read_record
from course_lib.runs import sigma as sg
from course_lib.runs.sweep import compact_history, script
from course_lib.runs.base import HISTORY_POINTS

TARGETS = {"sigma_star_rel_max": 0.02, "matched_neg_elbo_max_nats": 1.0, "matched_fld_rel_max": 0.05,
           "sigma_vae_fld_ratio_max": 0.5}
THIN = 50        # per-step loss points kept in a sweep record (fit_run keeps HISTORY_POINTS)


def metric(name: str, key: str) -> float:
    return read_record(runs.checkpoint_dir() / name)["metrics"][key]


def table() -> dict:
    """Per dataset and row (fixed / learned sigma): FLD, negative ELBO, rate, MSE over beta; the targets checked."""
    rows, missing = {}, []
    for name in sg.SHIPPED:
        try:
            m = read_record(runs.checkpoint_dir() / name)["metrics"]
        except CheckpointError:
            missing.append(name)
            continue
        rows[name] = {k: round(v, 5) for k, v in m.items() if isinstance(v, float) and not k.startswith(("train_",
                                                                                                          "valid_"))}
    spreads, checks = {}, {}
    for tag in sg.DATASETS:
        for mode in ("fixed", "learned"):
            values = [rows[n]["fld"] for n in (f"sigma_{tag}_{mode}_b{sg.beta_tag(b)}" for b in sg.BETAS) if n in rows]
            if len(values) == len(sg.BETAS):
                spreads[f"{tag}_{mode}"] = {"min": min(values), "max": max(values), "ratio": max(values) / min(values)}
    s = "sigma_mnist_learned_b1"
    if s in rows:
        rel = abs(rows[s]["sigma"] / rows[s]["test_mse"] ** 0.5 - 1)
        checks["sigma_star_rel"] = [rel, rel <= TARGETS["sigma_star_rel_max"]]
        checks["sigma_star_vs_constant"] = [rows[s]["sigma"], abs(rows[s]["sigma"] / sg.SIGMA_STAR_MNIST - 1) < 0.01]
        if "sigma_mnist_matched" in rows:
            gap = abs(rows["sigma_mnist_matched"]["test_neg_elbo"] - rows[s]["test_neg_elbo"])
            rel_fld = abs(rows["sigma_mnist_matched"]["fld"] / rows[s]["fld"] - 1)
            checks["matched_neg_elbo_gap"] = [gap, gap <= TARGETS["matched_neg_elbo_max_nats"]]
            checks["matched_fld_rel"] = [rel_fld, rel_fld <= TARGETS["matched_fld_rel_max"]]
        for other in ("sigma_mnist_sigma1", "sigma_mnist_meanmse"):
            if other in rows:
                ratio = rows[s]["fld"] / rows[other]["fld"]
                checks[f"fld_ratio_vs_{other.removeprefix('sigma_mnist_')}"] = [ratio, ratio <= TARGETS["sigma_vae_fld_ratio_max"]]
    for tag in sg.DATASETS:
        if f"{tag}_fixed" in spreads and f"{tag}_learned" in spreads:
            a, b = spreads[f"{tag}_learned"]["ratio"], spreads[f"{tag}_fixed"]["ratio"]
            checks[f"{tag}_learned_spread_below_fixed"] = [a / b, a < b]
    return {"targets": TARGETS, "checks": checks, "spreads": spreads, "rows": rows, "missing": missing}


def compacted(name: str, record: dict) -> dict | None:
    """A VAE record with a thinner loss curve, rounded curves and its sample grid cut to the rows kept;
    None for a LeNet (left as trained)."""
    if sg.SHIPPED[name].ship_weights:
        return None
    record["history"] = compact_history(record["history"], THIN, parts=("train", "valid"))
    rows = sg.SigmaEval().grid // 8                                     # png_grid puts 8 images in a row
    png = sg.read_png_grid(record["metrics"]["samples_png"])            # (rows H, 8 W), uint8
    side = png.shape[1] // 8                                            # H = W of one image
    if png.shape[0] > rows * side:                                      # more rows than the grid keeps
        tiles = torch.from_numpy(png[: rows * side].copy()).reshape(rows, side, 8, side).permute(0, 2, 1, 3)
        record["metrics"]["samples_png"] = sg.png_grid(tiles.reshape(-1, 1, side, side).float() / 255)
        record["eval"] = {**record["eval"], "grid": rows * 8}
    return record


def main(argv: list[str] | None = None) -> int:
    assert HISTORY_POINTS >= THIN
    return script(__doc__, list(sg.SHIPPED), table, ("targets", "checks", "spreads"), ("checks", "spreads", "missing"),
                  argv, edit=compacted)


if __name__ == "__main__":
    sys.exit(main())
