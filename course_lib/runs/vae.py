"""The shipped VAEs of the chapters on the VAE: training and evaluation.

Introduced in: The variational autoencoder. After training, `evaluate_vae` stores active
units and k-sample test NLLs, with standard errors, in the record (``VAEEval``: evaluation
settings are not part of the checkpoint hash, so evaluating differently never discards
trained weights; `benchmarks/evaluate_shipped.py` re-evaluates a shipped checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import env
from ..checkpoint import CheckpointError
from ..data import IMAGE_SHAPE
from ..evaluation import active_units, eval_images, test_subset
from ..models.ar_vae import ARVAE, ARVAEConfig
from ..models.vae import VAE, VAEConfig
from ..nets import pixels
from ..objectives import elbo, iwae_bound
from ..objectives_more import free_bits_elbo
from ..paired import mean_se, paired_difference, per_image_bounds
from .base import Run, TrainConfig


@dataclass(frozen=True)
class VAETrain(TrainConfig):
    """Training of a VAE: the beta-weighted ELBO, with an optional linear KL warm-up.

    Introduced in: The variational autoencoder.
    """

    dataset: str = "dynamic_mnist"
    epochs: int = 20
    beta: float = 1.0               # KL weight
    warmup_epochs: int = 0          # beta rises linearly from 0 over this many epochs
    valid_n: int | None = 5000
    valid_batch: int = 500


@dataclass(frozen=True)
class VAETrainMore(VAETrain):
    """A VAE trained on another bound: the IWAE bound (``k`` > 1) or the ELBO with free bits.

    Introduced in: Priors, posterior collapse and tighter bounds. (A subclass, so the configs,
    and hashes, of the runs trained with `VAETrain` are unchanged.) Validation always reports
    the plain ELBO, so every run's validation curve means the same thing.
    """

    k: int = 1                      # importance samples of the training bound (1: the ELBO)
    free_bits: float = 0.0          # lambda: nats per latent dimension the rate may use for free


@dataclass(frozen=True)
class VAEEval:
    """What `evaluate_vae` measures after training (introduced in: The variational autoencoder)."""

    k: int = 0                      # importance samples for the test NLL (0: none)
    n: int = 2000                   # random test images for the NLL and active units (10000: all)
    sets: tuple[str, ...] = ("dynamic", "static")   # binary test sets (Bernoulli decoders)
    paired_with: str = ""           # a shipped run evaluated on the same images: differences and their s.e.


def vae_objective(train: VAETrain, epochs_done):
    """The training loss: negative ELBO with KL weight beta * min(1, epochs done / warm-up epochs),
    or the IWAE bound, or free bits (`VAETrainMore`); the plain ELBO in evaluation.

    Introduced in: The variational autoencoder.
    """
    k, free_bits = getattr(train, "k", 1), getattr(train, "free_bits", 0.0)

    def objective(model: VAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ramp = min(1.0, epochs_done() / train.warmup_epochs) if train.warmup_epochs and model.training else 1.0
        beta = train.beta * ramp
        if model.training and k > 1:
            out = iwae_bound(model, x, k)                      # loss = -L_k (Burda et al. 2016)
        elif model.training and free_bits > 0:
            out = free_bits_elbo(model, x, free_bits, beta)
        else:
            out = elbo(model, x, beta=beta)
        return {**out, "beta": torch.tensor(beta, device=x.device)}

    return objective


def _test_images(name: str, n: int, device: torch.device) -> torch.Tensor:
    return eval_images(test_subset(name, n, device))               # dynamic splits: binarized once, seed 0


def _partner(name: str, device: torch.device):
    from . import trained                                          # the registry (imports this module)

    try:
        return trained(name, device, allow_training=False)[0]
    except CheckpointError as err:
        print(f"[evaluate_vae] no paired comparison with {name}: {err}")
        return None


@torch.no_grad()
def evaluate_vae(model: VAE, run: Run, device: torch.device) -> dict:
    """Active units and (if ``eval.k``) per-image k-sample bounds on random test images: the NLL
    and negative ELBO with standard errors, and paired differences with ``eval.paired_with``.

    Introduced in: The variational autoencoder.
    """
    smoke = env.smoke()
    k, n = (20, 200) if smoke else (run.eval.k, run.eval.n)
    metrics: dict = {"active_units": active_units(model, _test_images(run.train.dataset, n, device))[0]}
    if not run.eval.k:
        return metrics
    bernoulli = getattr(run.model, "likelihood", "bernoulli") == "bernoulli"
    names = {"dynamic": "dynamic_mnist", "static": "binarized_mnist"}
    test_sets = {tag: names[tag] for tag in run.eval.sets} if bernoulli else {"test": run.train.dataset}
    partner = _partner(run.eval.paired_with, device) if run.eval.paired_with else None
    for tag, name in test_sets.items():
        x = _test_images(name, n, device)
        ours = per_image_bounds(model, x, k)
        (nll, nll_se), (nelbo, nelbo_se) = mean_se(-ours["iwae"]), mean_se(-ours["elbo"])
        metrics.update({f"{tag}_nll": nll, f"{tag}_nll_stderr": nll_se, f"{tag}_neg_elbo": nelbo,
                        f"{tag}_neg_elbo_stderr": nelbo_se, f"{tag}_k": k, f"{tag}_n": len(x)})
        if partner is not None:                                    # ours minus theirs, same images and seed
            theirs = per_image_bounds(partner, x, k)
            for key, bound in (("nll", "iwae"), ("neg_elbo", "elbo")):
                diff, se = paired_difference(-ours[bound], -theirs[bound])
                metrics.update({f"{tag}_diff_{key}": diff, f"{tag}_diff_{key}_stderr": se})
    return metrics


def vae_run(model: VAEConfig, train: VAETrain, eval: VAEEval = VAEEval()) -> Run:
    """A shipped VAE run (introduced in: The variational autoencoder)."""
    return Run("vae", model, train, build=VAE, objective=vae_objective, evaluate=evaluate_vae, eval=eval)


def ar_vae_run(model: ARVAEConfig, train: VAETrain, eval: VAEEval = VAEEval()) -> Run:
    """A shipped VAE with an autoregressive decoder (introduced in: Priors, posterior collapse and tighter bounds)."""
    return Run("ar_vae", model, train, build=ARVAE, objective=vae_objective, evaluate=evaluate_vae, eval=eval)


MLP32 = VAEConfig(latent=32)
GAUSS_TRAIN = VAETrain(dataset="mnist", epochs=10)
FULL_2D = VAEEval(k=1000, n=10_000, sets=("dynamic",))          # the whole test set: ~5 min per model on a CPU
SHIPPED: dict[str, Run] = {
    "vae_mlp2d": vae_run(VAEConfig(latent=2), VAETrain(epochs=30), FULL_2D),
    "vae_mlp2d_vamp": vae_run(VAEConfig(latent=2, prior="vamp"), VAETrain(epochs=30),
                              VAEEval(k=1000, n=10_000, sets=("dynamic",), paired_with="vae_mlp2d")),
    "vae_mlp32": vae_run(MLP32, VAETrain(), VAEEval(k=500)),
    "vae_mlp32_warmup": vae_run(MLP32, VAETrain(warmup_epochs=10), VAEEval(k=500, sets=("dynamic",), paired_with="vae_mlp32")),
    "vae_gauss_s010": vae_run(VAEConfig(latent=32, likelihood="gaussian", sigma=0.1), GAUSS_TRAIN),
    "vae_gauss_s071": vae_run(VAEConfig(latent=32, likelihood="gaussian", sigma=math.sqrt(0.5)), GAUSS_TRAIN),
    "vae_gauss_meanmse": vae_run(VAEConfig(latent=32, likelihood="gaussian", sigma=math.sqrt(pixels(IMAGE_SHAPE) / 2)),
                                 GAUSS_TRAIN),
    "vae_conv": vae_run(VAEConfig(arch="conv", latent=32), VAETrain(epochs=50), VAEEval(k=1000)),
    "vae_cat": vae_run(VAEConfig(arch="conv", latent=32, likelihood="categorical"),
                       VAETrain(dataset="mnist", epochs=5)),
    # Priors, posterior collapse and tighter bounds: the same MLP as vae_mlp32, other bounds
    "vae_mlp32_freebits": vae_run(MLP32, VAETrainMore(free_bits=0.5),
                                  VAEEval(k=500, sets=("dynamic",), paired_with="vae_mlp32")),
    "vae_mlp32_iwae5": vae_run(MLP32, VAETrainMore(k=5), VAEEval(k=500, sets=("dynamic",), paired_with="vae_mlp32")),
    # an autoregressive (MADE) decoder: it models much of x without z, so the code carries less
    "vae_ar": ar_vae_run(ARVAEConfig(), VAETrainMore(), VAEEval(k=500, sets=("dynamic",), paired_with="vae_mlp32")),
}
