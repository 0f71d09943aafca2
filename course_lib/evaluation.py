"""Evaluating latent-variable models: k-sample NLL estimates, active units, fair test subsets.

Introduced in: The variational autoencoder. Everything here needs only a model's
``encode``, ``decode`` and ``prior``, so later chapters evaluate their models the same way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .data import Split, load
from .vae import log_weights


def eval_images(data: Split, seed: int = 0) -> torch.Tensor:
    """The images of ``data`` to evaluate on: a dynamically binarized split is binarized once, seeded."""
    if data.binarize != "dynamic":
        return data.x
    return torch.bernoulli(data.x, generator=torch.Generator(data.x.device).manual_seed(seed))  # x_b ~ Bernoulli(x)


@torch.no_grad()
def nll_estimate(model: nn.Module, data: Split | torch.Tensor, k: int = 1000, batch: int = 100,
                 chunk: int = 250, seed: int = 0) -> dict[str, float]:
    """-log p(x) estimated by the k-sample IWAE bound, averaged over ``data`` (introduced in: The variational autoencoder).

    Dynamically binarized splits are binarized once with a fixed seed (the test set of
    Burda et al. 2015). Returns nll, its standard error, the negative ELBO, k and n, in nats.
    """
    model.eval()
    x_all = eval_images(data, seed) if isinstance(data, Split) else data
    torch.manual_seed(seed)
    nll, neg_elbo = [], []
    for xb in x_all.split(batch):
        log_w = torch.cat([log_weights(model, xb, min(chunk, k - s))[0] for s in range(0, k, chunk)])
        nll.append(-(torch.logsumexp(log_w, 0) - math.log(k)))  # (B,)
        neg_elbo.append(-log_w.mean(0))
    nll_t, elbo_t = torch.cat(nll), torch.cat(neg_elbo)
    return {"nll": float(nll_t.mean()), "nll_stderr": float(nll_t.std() / math.sqrt(len(nll_t))),
            "neg_elbo": float(elbo_t.mean()), "k": k, "n": len(nll_t)}


@torch.no_grad()
def active_units(model: nn.Module, x: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Burda et al.'s count: dimensions u whose posterior mean varies, Cov_x(E_q[z_u]) > threshold."""
    mu = torch.cat([model.encode(xb).mean for xb in x.split(500)])  # (N, M)
    variance = mu.var(0)
    return int((variance > threshold).sum()), variance


def test_subset(name: str, n: int, device: torch.device | str) -> Split:
    """``n`` test images drawn at random (seed 0): the test files are ordered, so the first n are biased."""
    full = load(name, "test", device)
    idx = torch.randperm(len(full), generator=torch.Generator().manual_seed(0))[:n].to(full.x.device)
    return Split(full.name, full.split, full.x[idx], None if full.y is None else full.y[idx], full.binarize)
