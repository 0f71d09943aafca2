"""Exercise checks of the chapter "β versus σ: the decoder variance"."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..nets import MNIST_SHAPE
from ..objectives_sigma import optimal_log_sigma
from .check import ExerciseError, check_close


def _nll(x: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor, half_log_2pi: bool = True) -> torch.Tensor:
    """Mean over images of -log N(x; mean, sigma^2 I) summed over pixels."""
    sq = (x - mean).square().flatten(1).sum(1)                                      # SSE per image (B,)
    d = x[0].numel()
    const = 0.5 * math.log(2 * math.pi) if half_log_2pi else 0.0
    return (sq / (2 * sigma ** 2) + d * (sigma.log() + const)).mean()


def check_optimal_sigma(your_fn: Callable[[torch.Tensor, torch.Tensor], tuple]) -> None:
    """Check ``your_fn(x, mean) -> (sigma_star, loss)``: the closed-form decoder std and the loss at it.

    Introduced in: β versus σ: the decoder variance. ``sigma_star`` is one number for the batch,
    ``loss`` the mean over images of the negative Gaussian log-likelihood summed over pixels.
    """
    g = torch.Generator().manual_seed(11)
    got_s, got_l, want_s, want_l, slips_s, slips_l = [], [], [], [], {}, {}
    for b, shape, scale in ((16, MNIST_SHAPE, 0.1), (5, (1, 8, 8), 0.3), (32, (3, 4, 4), 0.02)):
        x = torch.rand(b, *shape, generator=g, dtype=torch.float64)
        mean = (x + scale * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
        out = your_fn(x.clone(), mean.clone())
        if out is None or not isinstance(out, tuple) or len(out) != 2:
            raise ExerciseError("return a pair (sigma_star, loss); did you forget to `return` both?")
        s, l = (torch.as_tensor(v, dtype=torch.float64) for v in out)
        if s.dim() or l.dim():
            raise ExerciseError(f"sigma_star and loss are single numbers; got shapes {tuple(s.shape)} and "
                                f"{tuple(l.shape)} (sigma* is shared by every pixel and image)")
        sigma = optimal_log_sigma(x, mean).exp()
        got_s.append(s), got_l.append(l), want_s.append(sigma), want_l.append(_nll(x, mean, sigma))
        sse_sigma = (x - mean).square().flatten(1).sum(1).mean().sqrt()               # sqrt(SSE), not sqrt(MSE)
        for hint, wrong in {"sigma*^2 is the per-PIXEL mean squared error (SSE / D), not the per-image SSE":
                            sse_sigma, "you returned the variance sigma*^2; return the standard deviation sigma*":
                            sigma ** 2}.items():
            slips_s.setdefault(hint, []).append(wrong)
        for hint, wrong in {"the Gaussian's normaliser has (D/2) log(2 pi sigma^2): you left out the 2 pi":
                            _nll(x, mean, sigma, half_log_2pi=False),
                            "the loss is at sigma*: at the optimum SSE / (2 sigma*^2) = D / 2 per image, not 0":
                            _nll(x, mean, sigma) - x[0].numel() / 2,
                            "the loss is a mean over the images of the batch (you summed it)": _nll(x, mean, sigma) * b,
                            "the loss sums over the pixels of an image (yours is a per-pixel mean)":
                            _nll(x, mean, sigma) / x[0].numel()}.items():
            slips_l.setdefault(hint, []).append(wrong)
    check_close(torch.stack(got_s), torch.stack(want_s), "your sigma*",
                mistakes={h: torch.stack(v) for h, v in slips_s.items()})
    check_close(torch.stack(got_l), torch.stack(want_l), "your loss at sigma*",
                mistakes={h: torch.stack(v) for h, v in slips_l.items()})
