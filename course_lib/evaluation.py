"""Evaluating latent-variable models: k-sample NLL estimates, active units, reconstruction error.

Introduced in: The variational autoencoder. Everything here needs only a model's
``encode``, ``decode`` and ``prior`` (or its own ``log_weights(x, k, generator)``), so
every family is evaluated the same way. Randomness comes from a local, seeded
`torch.Generator`: evaluating never changes the global RNG, and the same seed gives the
same number.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .data import Split, load
from .paired import per_image_bounds


def eval_images(data: Split, seed: int = 0) -> torch.Tensor:
    """The images of ``data`` to evaluate on: a dynamically binarized split is binarized once, seeded.

    Introduced in: The variational autoencoder.
    """
    if data.binarize != "dynamic":
        return data.x
    gen = torch.Generator(data.x.device).manual_seed(seed)
    return torch.bernoulli(data.x, generator=gen)                     # x_b ~ Bernoulli(x)


@torch.no_grad()
def nll_estimate(model: nn.Module, data: Split | torch.Tensor, k: int = 1000, batch: int = 100,
                 chunk: int = 250, seed: int = 0) -> dict[str, float]:
    """-log p(x) estimated by the k-sample IWAE bound, averaged over ``data`` (introduced in: The variational autoencoder).

    Dynamically binarized splits are binarized once with a fixed seed (the test set of
    Burda et al. 2015). Returns nll, its standard error, the negative ELBO, k and n, in nats.
    """
    x_all = eval_images(data, seed) if isinstance(data, Split) else data
    bounds = per_image_bounds(model, x_all, k, batch, chunk, seed)     # one loop, shared with paired comparisons
    nll_t, elbo_t = -bounds["iwae"], -bounds["elbo"]                   # (N,) each
    return {"nll": float(nll_t.mean()), "nll_stderr": float(nll_t.std() / math.sqrt(len(nll_t))),
            "neg_elbo": float(elbo_t.mean()), "k": k, "n": len(nll_t)}


@torch.no_grad()
def active_units(model: nn.Module, x: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Burda et al.'s count: dimensions u whose posterior mean varies, Cov_x(E_q[z_u]) > threshold.

    Introduced in: The variational autoencoder. Returns the count and the (M,) variances.
    """
    mu = torch.cat([model.encode(xb).mean for xb in x.split(500)])   # (N, M)
    variance = mu.var(0)
    return int((variance > threshold).sum()), variance


@torch.no_grad()
def reconstruction_error(model: nn.Module, x: torch.Tensor) -> float:
    """Mean over images of the summed squared error between x and E[x | z = E_q[z|x]].

    Introduced in: The variational autoencoder.
    """
    errors = [(model.decode(model.encode(xb).mean).mean - xb).pow(2).flatten(1).sum(1) for xb in x.split(500)]
    return float(torch.cat(errors).mean())


def test_subset(name: str, n: int, device: torch.device | str, seed: int = 0) -> Split:
    """``n`` test images drawn at random (seeded): the test files are ordered, so the first n are biased.

    Introduced in: The variational autoencoder.
    """
    full = load(name, "test", device)
    idx = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed))[:n].to(full.x.device)
    return Split(full.name, full.split, full.x[idx], None if full.y is None else full.y[idx], full.binarize)
