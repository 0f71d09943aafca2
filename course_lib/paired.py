"""Per-image bounds, standard errors and paired comparisons of two models on the same images.

Introduced in: Priors, posterior collapse and tighter bounds. Two models evaluated on the
same test images differ far less from each other than the images differ among themselves,
so the standard error of the *difference* of their per-image bounds is much smaller than
either model's own. Draws come from a local seeded `torch.Generator`, as in
`course_lib.evaluation.nll_estimate` (same images, seed and k give the same numbers), so two
models with the same latent size also share their noise (common random numbers).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .objectives import log_weights


@torch.no_grad()
def per_image_bounds(model: nn.Module, x: torch.Tensor, k: int, batch: int = 100, chunk: int = 250,
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """Per image: ``iwae`` = L_k = log (1/k) sum_i w_i and ``elbo`` = (1/k) sum_i log w_i, (N,) each.

    Introduced in: Priors, posterior collapse and tighter bounds. ``-iwae`` is the k-sample
    NLL estimate of `nll_estimate`; ``-elbo`` its negative-ELBO column.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator(x.device).manual_seed(seed)
    iwae, elbo = [], []
    for xb in x.split(batch):
        log_w = torch.cat([log_weights(model, xb, min(chunk, k - s), gen)[0] for s in range(0, k, chunk)])  # (k, B)
        iwae.append(torch.logsumexp(log_w, 0) - math.log(k))
        elbo.append(log_w.mean(0))
    model.train(was_training)
    return {"iwae": torch.cat(iwae), "elbo": torch.cat(elbo)}


def mean_se(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-image ``values`` (N,) and its standard error std / sqrt(N).

    Introduced in: Priors, posterior collapse and tighter bounds.
    """
    values = values.double()
    return float(values.mean()), float(values.std() / math.sqrt(len(values)))


def paired_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean and standard error of ``a - b`` for per-image values of two models on the same images.

    Introduced in: Priors, posterior collapse and tighter bounds.
    """
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same images: shapes {tuple(a.shape)} and {tuple(b.shape)}")
    return mean_se(a - b)
