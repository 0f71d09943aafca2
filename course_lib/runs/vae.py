"""The shipped VAEs of the chapter "The variational autoencoder": training and evaluation.

Introduced in: The variational autoencoder. After training, `evaluate_vae` stores active
units and k-sample test NLLs in the record (``VAEEval``: evaluation settings are not part of
the checkpoint hash, so evaluating differently never discards trained weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import env
from ..data import IMAGE_SHAPE
from ..evaluation import active_units, eval_images, nll_estimate, test_subset
from ..models.vae import VAE, VAEConfig
from ..nets import pixels
from ..objectives import elbo
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
class VAEEval:
    """What `evaluate_vae` measures after training (introduced in: The variational autoencoder)."""

    k: int = 0                      # importance samples for the test NLL (0: none)
    n: int = 2000                   # random test images for the NLL and active units


def vae_objective(train: VAETrain, epochs_done):
    """The negative ELBO with KL weight beta * min(1, epochs done / warm-up epochs) while training.

    Introduced in: The variational autoencoder.
    """

    def objective(model: VAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ramp = min(1.0, epochs_done() / train.warmup_epochs) if train.warmup_epochs and model.training else 1.0
        out = elbo(model, x, beta=train.beta * ramp)
        return {**out, "beta": torch.tensor(train.beta * ramp, device=x.device)}

    return objective


@torch.no_grad()
def evaluate_vae(model: VAE, run: Run, device: torch.device) -> dict:
    """Active units and (if ``eval.k``) k-sample NLL estimates on random test images.

    Introduced in: The variational autoencoder.
    """
    smoke = env.smoke()
    k, n = (20, 200) if smoke else (run.eval.k, run.eval.n)
    data = test_subset(run.train.dataset, run.eval.n if not smoke else 200, device)
    metrics: dict = {"active_units": active_units(model, eval_images(data))[0]}
    if run.eval.k:
        test_sets = {"dynamic": "dynamic_mnist", "static": "binarized_mnist"} \
            if run.model.likelihood == "bernoulli" else {"test": run.train.dataset}
        for tag, name in test_sets.items():
            est = nll_estimate(model, test_subset(name, n, device), k=k)
            metrics.update({f"{tag}_{key}": value for key, value in est.items()})
    return metrics


def vae_run(model: VAEConfig, train: VAETrain, eval: VAEEval = VAEEval()) -> Run:
    """A shipped VAE run (introduced in: The variational autoencoder)."""
    return Run("vae", model, train, build=VAE, objective=vae_objective, evaluate=evaluate_vae, eval=eval)


MLP32 = VAEConfig(latent=32)
GAUSS_TRAIN = VAETrain(dataset="mnist", epochs=10)
SHIPPED: dict[str, Run] = {
    "vae_mlp2d": vae_run(VAEConfig(latent=2), VAETrain(epochs=30)),
    "vae_mlp2d_vamp": vae_run(VAEConfig(latent=2, prior="vamp"), VAETrain(epochs=30)),
    "vae_mlp32": vae_run(MLP32, VAETrain(), VAEEval(k=500)),
    "vae_mlp32_warmup": vae_run(MLP32, VAETrain(warmup_epochs=10)),
    "vae_gauss_s010": vae_run(VAEConfig(latent=32, likelihood="gaussian", sigma=0.1), GAUSS_TRAIN),
    "vae_gauss_s071": vae_run(VAEConfig(latent=32, likelihood="gaussian", sigma=math.sqrt(0.5)), GAUSS_TRAIN),
    "vae_gauss_meanmse": vae_run(VAEConfig(latent=32, likelihood="gaussian", sigma=math.sqrt(pixels(IMAGE_SHAPE) / 2)),
                                 GAUSS_TRAIN),
    "vae_conv": vae_run(VAEConfig(arch="conv", latent=32), VAETrain(epochs=50), VAEEval(k=1000)),
    "vae_cat": vae_run(VAEConfig(arch="conv", latent=32, likelihood="categorical"),
                       VAETrain(dataset="mnist", epochs=5)),
}
