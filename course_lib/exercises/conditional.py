"""Exercise checks of the chapter "Conditional VAEs"."""

from __future__ import annotations

import math
from typing import Callable

import torch

from .check import ExerciseError, check_close


def check_iw_nll(your_nll: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """Check ``your_nll(log_px, log_pz, log_qz)`` -> -log p(x_h|x_o) per image (B,), from (k, B) terms.

    Introduced in: Conditional VAEs. log_px = log p(x_h|z_i, x_o), log_pz = log p(z_i|x_o) (the
    prior network), log_qz = log q(z_i|x); the answer is -log (1/k) sum_i exp(log_px + log_pz - log_qz).
    """
    g = torch.Generator().manual_seed(3)
    k, b = 50, 4
    log_px = -60 - 10 * torch.rand(k, b, generator=g, dtype=torch.float64)
    log_pz = torch.randn(k, b, generator=g, dtype=torch.float64) - 3
    log_qz = torch.randn(k, b, generator=g, dtype=torch.float64) - 2
    answer = your_nll(log_px.clone(), log_pz.clone(), log_qz.clone())
    if answer is None:
        raise ExerciseError("your_nll returned None: did you forget to `return` it?")
    log_w = log_px + log_pz - log_qz                                              # (k, B)
    right = -(torch.logsumexp(log_w, 0) - math.log(k))
    check_close(answer, right, "your -log p(x_h|x_o)", sizes={"samples k": k, "images": b}, mistakes={
        "that is the negative ELBO (the mean of log w): average the weights w, not their logs": -log_w.mean(0),
        "log (1/k) sum_i w_i: subtract log k after the logsumexp": -torch.logsumexp(log_w, 0),
        "the weight is p(x_h|z) p(z|x_o) / q(z|x): add log p(z|x_o) and subtract log q(z|x)":
            -(torch.logsumexp(log_px - log_pz + log_qz, 0) - math.log(k)),
        "return the negative log-likelihood (a positive number of nats), not log p": -right,
        "the logsumexp runs over the k samples (dim 0), one value per image": -(torch.logsumexp(log_w, 1) - math.log(b)),
    })
