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

``full NAME`` measures NAME and ``vae_conv`` on the whole test set with the same images, k and
noise (`course_lib.benchmark.cached_bounds`: about an hour on 2 CPU threads, resumable per model)
and writes both NLLs and their paired difference into NAME's record (``full_*`` metrics); the
targets then use them.

Usage::

  python benchmarks/hierarchical.py train hvae_mnist --threads 1
  python benchmarks/hierarchical.py full hvae_mnist --threads 2
  python benchmarks/hierarchical.py targets
"""

from __future__ import annotations


from course_lib import runs
from course_lib.benchmark import cached_bounds
from course_lib.checkpoint import read_record
from course_lib.paired import mean_se, paired_difference
from course_lib.runs import hierarchical
from course_lib.runs.sweep import compact_history, read_records, rewrite_record, script

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
        if "full_nll" in m:                         # the whole test set, paired with the baseline
            m = {**m, "dynamic_nll": m["full_nll"], "dynamic_nll_stderr": m["full_nll_stderr"],
                 "dynamic_n": m["full_n"], "dynamic_k": m["full_k"]}
            base = {**base, "dynamic_nll": m["full_baseline_nll"]}
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
    if MAIN in rec and "full_gain_stderr" in rec[MAIN]["metrics"]:
        checks["nll_gain_stderr"] = [rec[MAIN]["metrics"]["full_gain_stderr"], None]   # paired, per image
    cpu = sum(r["wall_time_s"] for r in rec.values())
    checks["cpu_seconds"] = [cpu, cpu <= TARGETS["cpu_seconds_max"] and set(rec) == set(NAMES)]
    return {"targets": TARGETS, "checks": checks, "rows": rows, "missing": sorted(set(NAMES) - set(rec))}


def full(name: str, n: int = 10_000, k: int = 1000) -> None:
    """NAME against the baseline on the first n protocol images (all 10,000), paired; written into NAME's record."""
    ours, theirs = cached_bounds(name, n, k), cached_bounds(BASELINE, n, k)
    (nll, se), (nelbo, _) = mean_se(-ours["iwae"]), mean_se(-ours["elbo"])
    base, base_se = mean_se(-theirs["iwae"])
    gain, gain_se = paired_difference(-theirs["iwae"], -ours["iwae"])      # baseline minus ours, per image
    record = read_record(runs.checkpoint_dir() / name)
    record["metrics"].update({"full_nll": nll, "full_nll_stderr": se, "full_neg_elbo": nelbo, "full_k": k, "full_n": n,
                              "full_baseline_nll": base, "full_baseline_nll_stderr": base_se,
                              "full_gain": gain, "full_gain_stderr": gain_se})
    rewrite_record(runs.get(name), runs.checkpoint_dir() / name, record)
    print(f"{name}: {nll:.3f} +- {se:.3f} nats; {BASELINE}: {base:.3f} +- {base_se:.3f}; gain {gain:.3f} +- {gain_se:.3f} "
          f"(k = {k}, {n} images)")


def compacted(name: str, record: dict) -> dict:
    """The record with its history thinned and rounded (the tree's size budget; the chapter prints 2 digits)."""
    return {**record, "history": compact_history(record["history"], STEP_POINTS)}


def main(argv: list[str] | None = None) -> int:
    return script(__doc__, NAMES, table, ("targets", "checks"), ("checks", "missing"), argv, edit=compacted,
                  extra={"full": full})


if __name__ == "__main__":
    raise SystemExit(main())
