"""Train Part IV's runs (conditional VAEs; VQ-VAE and its PixelCNN prior) and write the targets.

A measurement, not a test. ``train NAME ...`` trains the named runs of
`course_lib.runs.conditional` and `course_lib.runs.discrete` one after the other (resuming
interrupted ones, skipping finished ones). Train ``pixelcnn_mnist`` in a process started after
``vqvae_mnist`` finished: its config holds the parent's weight hash, read at import.
``targets`` reads the records, checks the targets of the issue and writes them, under
``"targets"``, into every record of the part (weights untouched):

  CVAE: -log p(x_h|x_o) <= 72 nats with one quadrant observed and >= 25 nats below the baseline;
  the judge assigns the conditioning label to >= 98% of 10,000 samples; 0 <= NLL(x) - NLL(x|y) <= ln 10
  (NLL(x) of the separately trained unconditional network; also with the CVAE's own marginal).
  VQ-VAE: >= 95% of codes used and perplexity >= K/2 (EMA + restarts); PixelCNN code NLL <= half of
  49 ln K; class-conditional prior samples judged as their class >= 90%. Reported beside them: the
  Fréchet LeNet distance of chapter 07 for VQ-VAE + PixelCNN samples, uniform random codes and
  Part II's Gaussian-prior VAE (`vae_mlp32`).

Usage::

  python benchmarks/part4.py train mnist_classifier cvae_mnist --threads 1
  python benchmarks/part4.py targets
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

from course_lib import runs
from course_lib.evaluation import eval_images, test_subset
from course_lib.objectives_conditional import conditional_log_likelihood
from course_lib.runs import conditional, discrete
from course_lib.runs.sweep import read_records, script

LOCAL = Path(__file__).resolve().parent / "results" / "weights"   # weights of record-only members
NAMES = [*conditional.SHIPPED, *discrete.SHIPPED]
TARGETS = {"sop_q1_nll_max": 72.0, "sop_q1_gain_min": 25.0, "cvae_sample_accuracy_min": 0.98,
           "nll_gap_range": [0.0, math.log(10)], "codes_used_min": 0.95, "perplexity_min_fraction_of_k": 0.5,
           "prior_code_nll_max_fraction_of_uniform": 0.5, "prior_sample_accuracy_min": 0.90}


@torch.no_grad()
def prior_sample_accuracy(n: int = 1000, seed: int = 0) -> float:
    """Class-conditional PixelCNN samples decoded by the parent, judged by ``mnist_classifier``."""
    prior, _ = runs.trained("pixelcnn_mnist", "cpu", allow_training=False)
    parent = discrete.load_parent(runs.get("pixelcnn_mnist").train, torch.device("cpu"))
    judge, _ = runs.trained("mnist_classifier", "cpu", allow_training=False)
    y = torch.arange(n) % 10
    gen = torch.Generator().manual_seed(seed)
    codes = torch.cat([prior.sample(len(yb), yb, generator=gen) for yb in y.split(500)])
    x = parent.decode_codes(codes).mean
    return float((judge(x).argmax(-1) == y).float().mean())


@torch.no_grad()
def own_marginal_gap(n: int = 1000, k: int = 100) -> tuple[float, float]:
    """log p(x|y) - log p(x) with the CVAE's own marginal p(x) = (1/10) sum_y p(x|y), on the test images
    of `evaluate_cvae` (each term importance sampled); returns (mean gap, mean -log p(x))."""
    model, _ = runs.trained("cvae_mnist", "cpu", allow_training=False)
    data = test_subset("dynamic_mnist", n, "cpu")
    x, y = eval_images(data), data.y
    torch.manual_seed(0)
    per_label = torch.stack([torch.cat([conditional_log_likelihood(model, xb, torch.full_like(yb, c), k)
                                        for xb, yb in zip(x.split(100), y.split(100))]) for c in range(10)])
    log_px = torch.logsumexp(per_label, 0) - math.log(10)                     # (n,) log (1/10) sum_y p(x|y)
    log_pxy = per_label.gather(0, y[None])[0]                                  # (n,) log p(x|y_true)
    return float((log_pxy - log_px).mean()), float(-log_px.mean())


@torch.no_grad()
def sample_flds(n: int = 10_000, seed: int = 0) -> dict[str, float]:
    """The Fréchet LeNet distance (chapter 07's definition: ``lenet_mnist`` features, float64, n samples
    against the n test images) of decoder means: VQ-VAE + PixelCNN (class-balanced), VQ-VAE with
    uniform random codes, and Part II's Bernoulli ``vae_mlp32`` with its N(0, I) prior."""
    from course_lib.fld import fld
    from course_lib.runs.sigma import reference_stats

    device = torch.device("cpu")
    lenet, ref = reference_stats("mnist", device, n)
    prior, _ = runs.trained("pixelcnn_mnist", device, allow_training=False)
    parent = discrete.load_parent(runs.get("pixelcnn_mnist").train, device)
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    codes = torch.cat([prior.sample(len(yb), yb, generator=gen) for yb in y.split(1000)])     # (n, 7, 7)
    learned = torch.cat([parent.decode_codes(c).mean for c in codes.split(1000)])
    uniform = torch.randint(0, parent.config.codes, codes.shape, generator=gen)
    random_codes = torch.cat([parent.decode_codes(c).mean for c in uniform.split(1000)])
    vae, _ = runs.trained("vae_mlp32", device, allow_training=False)
    z = torch.randn(n, vae.config.latent, generator=gen)
    vae_samples = torch.cat([vae.decode(b).mean for b in z.split(1000)])
    return {"fld_vq_pixelcnn": fld(learned, ref, lenet), "fld_vq_uniform": fld(random_codes, ref, lenet),
            "fld_vae_mlp32": fld(vae_samples, ref, lenet), "fld_n": n}


def table() -> dict:
    """Every record's numbers and the targets checked."""
    rec = read_records(NAMES)
    m = {k: r["metrics"] for k, r in rec.items()}
    checks: dict = {}
    if {"sop_cvae", "sop_baseline"} <= set(m):
        q1 = m["sop_cvae"]["nll_q1"]
        checks["sop_q1_nll"] = [q1, q1 <= TARGETS["sop_q1_nll_max"]]
        gain = m["sop_baseline"]["nll_q1"] - q1
        checks["sop_q1_gain"] = [gain, gain >= TARGETS["sop_q1_gain_min"]]
    if "cvae_mnist" in m:
        acc = m["cvae_mnist"]["sample_accuracy"]
        checks["cvae_sample_accuracy"] = [acc, acc >= TARGETS["cvae_sample_accuracy_min"]]
    if {"cvae_mnist", "cvae_mnist_uncond"} <= set(m):
        gap = m["cvae_mnist_uncond"]["test_nll"] - m["cvae_mnist"]["test_nll"]
        checks["nll_gap"] = [gap, 0.0 <= gap <= math.log(10)]
        own, nll_x = own_marginal_gap()
        checks["nll_gap_own_marginal"] = [own, 0.0 <= own <= math.log(10)]
        checks["cvae_own_marginal_nll"] = [nll_x, None]
    if "vqvae_mnist" in m:
        vq, k = m["vqvae_mnist"], runs.get("vqvae_mnist").model.codes
        checks["codes_used"] = [vq["test_codes_used"], vq["test_codes_used"] >= TARGETS["codes_used_min"]]
        checks["perplexity"] = [vq["test_perplexity"], vq["test_perplexity"] >= k * TARGETS["perplexity_min_fraction_of_k"]]
    if "pixelcnn_mnist" in m:
        p = m["pixelcnn_mnist"]
        frac = p["test_code_nll"] / p["uniform_code_nll"]
        checks["prior_code_nll_fraction"] = [frac, frac <= TARGETS["prior_code_nll_max_fraction_of_uniform"]]
        acc = prior_sample_accuracy()
        checks["prior_sample_accuracy"] = [acc, acc >= TARGETS["prior_sample_accuracy_min"]]
        checks.update({k: [v, None] for k, v in sample_flds().items()})     # reported, not targets
    if "mnist_classifier" in m:
        checks["judge_test_accuracy"] = [m["mnist_classifier"]["test_accuracy"], None]
    rows = {k: {"images_seen": r["images_seen"], "wall_time_s": round(r["wall_time_s"], 1), "device": r["device_name"],
                "parameters": r["parameters"], "epochs": r["epochs"]} for k, r in rec.items()}
    return {"targets": TARGETS, "checks": checks, "rows": rows, "missing": sorted(set(NAMES) - set(rec))}


def main(argv: list[str] | None = None) -> int:
    return script(__doc__, NAMES, table, ("targets", "checks"), ("checks", "missing"), argv, local=LOCAL)


if __name__ == "__main__":
    sys.exit(main())
