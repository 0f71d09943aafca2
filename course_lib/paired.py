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


class _Given(nn.Module):
    """A conditional model with its labels bound, so that `log_weights` sees encode(x), decode(z), prior()."""

    def __init__(self, model: nn.Module, y: torch.Tensor) -> None:
        super().__init__()
        self.model, self.y = model, y

    def encode(self, x):
        return self.model.encode(x, self.y)

    def decode(self, z):                                                   # z (k, B, M): the labels repeat over k
        return self.model.decode(z, self.y.expand(*z.shape[:-1]))

    def prior(self):
        return self.model.prior()


@torch.no_grad()
def per_image_bounds(model: nn.Module, x: torch.Tensor, k: int, batch: int = 100, chunk: int = 250,
                     seed: int = 0, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per image (N,): ``iwae`` = L_k = log (1/k) sum_i w_i, ``elbo`` = (1/k) sum_i log w_i,
    ``rate`` = E_q[log q - log p] and ``distortion`` = -E_q[log p(x|z)], all from the same k draws.

    Introduced in: Priors, posterior collapse and tighter bounds. ``-iwae`` is the k-sample
    NLL estimate of `nll_estimate`; ``-elbo`` its negative-ELBO column. With labels ``y`` (a
    conditional model) the bounds are on log p(x|y) (the Benchmark chapter).
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator(x.device).manual_seed(seed)
    out: dict[str, list] = {"iwae": [], "elbo": [], "rate": [], "distortion": []}
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        m = model if y is None else _Given(model, y[start:start + batch])
        parts = [log_weights(m, xb, min(chunk, k - s), gen) for s in range(0, k, chunk)]
        log_w, log_px, log_ratio = (torch.cat(t) for t in zip(*parts))    # (k, B) each
        out["iwae"].append(torch.logsumexp(log_w, 0) - math.log(k))        # log (1/k) sum_i w_i
        out["elbo"].append(log_w.mean(0))                                  # (1/k) sum_i log w_i
        out["rate"].append(log_ratio.mean(0))                              # MC estimate of KL(q || p)
        out["distortion"].append(-log_px.mean(0))
    model.train(was_training)
    return {key: torch.cat(v) for key, v in out.items()}


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
