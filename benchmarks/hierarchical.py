"""Train Part V's runs (hierarchical VAEs) and write the targets of the issue into their records.

A measurement, not a test. ``train NAME ...`` trains the named runs of
`course_lib.runs.hierarchical` one after the other (resuming interrupted ones, skipping finished
ones). ``targets`` reads the records, checks the targets and writes them, under ``"targets"``,
into every record of the part (weights untouched; the history's floats kept to 5 significant digits, the per-step loss
thinned to at most 100 points):

  hvae_mnist: test NLL (IWAE, k = 1000, dynamically binarized MNIST) at least 3 nats below the
  single-level conv VAE's (``vae_conv``); every layer keeps KL >= 0.5 nat; < 0.1% of updates
  skipped; all of Part V's training within one CPU hour. The protocol asked for is the whole
  10,000-image test set; ``nll_n`` says how many images the record's number used.

Usage::

  python benchmarks/hierarchical.py train hvae_mnist --threads 1
  python benchmarks/hierarchical.py targets
"""

from __future__ import annotations


from course_lib import runs
from course_lib.checkpoint import read_record
from course_lib.runs import hierarchical
from course_lib.runs.sweep import compact_history, read_records, script

NAMES = list(hierarchical.SHIPPED)
MAIN, BASELINE = "hvae_mnist", "vae_conv"
STEP_POINTS = 100          # per-step loss points kept in Part V's records (the tree's size budget)
TARGETS = {"nll_gain_min": 3.0, "layer_kl_min": 0.5, "skipped_max": 0.001, "cpu_seconds_max": 3600.0,
           "nll_n": 10_000, "nll_k": 1000}


def table() -> dict:
    """Every record's numbers and the targets checked: {check: [value, passed or None]}."""
    rec = read_records(NAMES)
    rows = {name: {"layer_kl": r["metrics"]["layer_kl"], "layer_active": r["metrics"]["layer_active"],
                   "nll": r["metrics"].get("dynamic_nll"), "neg_elbo": r["metrics"].get("dynamic_neg_elbo"),
                   "images_seen": r["images_seen"], "wall_time_s": r["wall_time_s"]} for name, r in rec.items()}
    checks: dict = {}
    if MAIN in rec:
        m, base = rec[MAIN]["metrics"], read_record(runs.checkpoint_dir() / BASELINE)["metrics"]
        gain = base["dynamic_nll"] - m["dynamic_nll"]
        skipped = rec[MAIN]["history"]["train"].get("skipped", [0.0])
        checks.update({
            "nll": [m["dynamic_nll"], None], "nll_stderr": [m["dynamic_nll_stderr"], None],
            "baseline_nll": [base["dynamic_nll"], None],
            "nll_gain": [gain, gain >= TARGETS["nll_gain_min"]],
            "layer_kl_min": [min(m["layer_kl"]), min(m["layer_kl"]) >= TARGETS["layer_kl_min"]],
            "skipped": [sum(skipped) / len(skipped), sum(skipped) / len(skipped) < TARGETS["skipped_max"]],
            "nll_n": [m["dynamic_n"], m["dynamic_n"] >= TARGETS["nll_n"]],
            "nll_k": [m["dynamic_k"], m["dynamic_k"] >= TARGETS["nll_k"]]})
    cpu = sum(r["wall_time_s"] for r in rec.values())
    checks["cpu_seconds"] = [cpu, cpu <= TARGETS["cpu_seconds_max"] and set(rec) == set(NAMES)]
    return {"targets": TARGETS, "checks": checks, "rows": rows, "missing": sorted(set(NAMES) - set(rec))}


def compacted(name: str, record: dict) -> dict:
    """The record with its history thinned and rounded (the tree's size budget; the chapter prints 2 digits)."""
    return {**record, "history": compact_history(record["history"], STEP_POINTS)}


def main(argv: list[str] | None = None) -> int:
    return script(__doc__, NAMES, table, ("targets", "checks"), ("checks", "missing"), argv, edit=compacted)


if __name__ == "__main__":
    raise SystemExit(main())
