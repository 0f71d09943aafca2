"""Exercise checks of the chapter "Benchmark"."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .check import ExerciseError, check_close


def check_bound_summary(your_summary: Callable[[torch.Tensor], tuple]) -> None:
    """Check ``your_summary(log_w) -> (nll, stderr)`` for log weights ``log_w`` of shape (k, N).

    Introduced in: Benchmark. nll is the mean over the N images of -L_k, with
    L_k = log (1/k) sum_i w_i per image, and stderr the standard error of that mean. The log
    weights are far below zero (-700 to -900 nats, as for a Gaussian decoder), so exponentiating
    them underflows to 0; the usual slips (the ELBO's mean of log w, a missing log k, dividing the standard
    deviation by N, the spread of the log weights) are named.
    """
    g = torch.Generator().manual_seed(11)
    k, n = 64, 50
    centre = -700.0 - 200.0 * torch.rand(n, generator=g, dtype=torch.float64)         # (N,) per-image level
    log_w = centre + 2.0 * torch.randn(k, n, generator=g, dtype=torch.float64)         # (k, N)
    answer = your_summary(log_w.clone())
    if answer is None:
        raise ExerciseError("your_summary returned None: did you forget to `return nll, stderr`?")
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ExerciseError("your_summary should return two numbers: (nll, stderr)")
    if not math.isfinite(float(answer[0])):
        raise ExerciseError("your nll is not finite: exp(log w) underflows to 0 at -800 nats, so log(mean(exp(log w))) "
                            "is -inf. Compute log (1/k) sum_i w_i from the log weights with torch.logsumexp")
    per_image = -(torch.logsumexp(log_w, 0) - math.log(k))                             # -L_k, (N,)
    nll, se = per_image.mean(), per_image.std() / math.sqrt(n)
    check_close(answer[0], nll, "your nll", rtol=1e-6, atol=1e-6, mistakes={
        "that is the negative ELBO, the mean of log w: L_k is the log of the MEAN of the weights w = exp(log w)":
            -log_w.mean(),
        "L_k = logsumexp(log w) - log k: subtract log k (a mean, not a sum, of the k weights)":
            -torch.logsumexp(log_w, 0).mean(),
        "average over the k samples (dim 0) inside the log, then over the N images": -(
            torch.logsumexp(log_w, 1) - math.log(n)).mean()})
    check_close(answer[1], se, "your stderr", rtol=1e-6, atol=1e-9, mistakes={
        "the standard error of a mean of N values is std / sqrt(N), not std / N": per_image.std() / n,
        "that is the spread of the images' NLLs, not of their mean: divide by sqrt(N)": per_image.std(),
        "the standard error is over the N per-image values of -L_k, not over the raw log weights":
            log_w.std() / math.sqrt(log_w.numel())})
