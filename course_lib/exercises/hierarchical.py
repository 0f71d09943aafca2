"""Exercise checks of the chapter "Hierarchical VAEs"."""

from __future__ import annotations

from typing import Callable

import torch

from .check import ExerciseError, check_close


def check_merge(your_merge: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple]) -> None:
    """Check ``your_merge(mu1, sigma1, mu2, sigma2) -> (mu, sigma)``: the normalised product of two Gaussians.

    Introduced in: Hierarchical VAEs. The reference multiplies the two densities on a grid
    (float64) and reads off the mean and standard deviation, so it does not share the formula;
    the usual slips (averaging the means, weighting by sigma instead of sigma^-2, returning the
    variance, adding the variances) are named.
    """
    g = torch.Generator().manual_seed(3)
    mu1, mu2 = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    s1 = 0.3 + torch.rand(6, generator=g, dtype=torch.float64)
    s2 = 0.3 + torch.rand(6, generator=g, dtype=torch.float64)
    answer = your_merge(mu1.clone(), s1.clone(), mu2.clone(), s2.clone())
    if answer is None:
        raise ExerciseError("your_merge returned None: did you forget to `return mu, sigma`?")
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ExerciseError("your_merge should return two tensors: (mu, sigma)")
    grid = torch.linspace(-8, 8, 40001, dtype=torch.float64)[:, None]              # (G, 1)
    log_density = (torch.distributions.Normal(mu1, s1).log_prob(grid)
                   + torch.distributions.Normal(mu2, s2).log_prob(grid))          # (G, 6): log of the product
    w = torch.softmax(log_density, 0)                                              # normalised on the grid
    mean = (w * grid).sum(0)
    std = (w * (grid - mean) ** 2).sum(0).sqrt()
    p1, p2 = s1.pow(-2), s2.pow(-2)
    slips_mu = {"the merged mean weights each mean by its precision 1/sigma^2, not a plain average": (mu1 + mu2) / 2,
                "weight by the precision 1/sigma^2, not by sigma (or 1/sigma)": (mu1 / s1 + mu2 / s2) / (1 / s1 + 1 / s2)}
    check_close(answer[0], mean, "your merged mean", rtol=1e-6, atol=1e-6, mistakes=slips_mu)
    slips_sigma = {"return the standard deviation, not the variance 1/(1/s1^2 + 1/s2^2)": 1 / (p1 + p2),
                   "precisions add, not variances: 1/sigma^2 = 1/s1^2 + 1/s2^2": (s1 ** 2 + s2 ** 2).sqrt(),
                   "sigma = (1/s1^2 + 1/s2^2)^(-1/2): you returned the summed precision": p1 + p2}
    check_close(answer[1], std, "your merged sigma", rtol=1e-6, atol=1e-6, mistakes=slips_sigma)
