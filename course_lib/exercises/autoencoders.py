"""Exercise checks of the chapter "Autoencoders"."""

from __future__ import annotations

import torch

from ..models.linear import ppca_closed_form, principal_angles
from .check import ExerciseError, check_close


def check_principal_angles(fn) -> None:
    """``fn(a, b)`` returns the principal angles in radians, largest first (introduced in: Autoencoders)."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(20, 3, generator=gen, dtype=torch.float64), torch.randn(20, 3, generator=gen, dtype=torch.float64)
    b = b @ torch.tensor([[2.0, 1, 0], [0, 1, 0], [1, 0, 3]], dtype=torch.float64)  # not orthonormal
    answer = fn(a, b)
    if torch.is_tensor(answer) and answer.numel() == 3 and float(answer.flatten()[0]) < float(answer.flatten()[-1]):
        raise ExerciseError("the angles are in increasing order: return the largest first (like scipy)")
    if torch.is_tensor(answer) and answer.numel() == 3 and float(answer.abs().max()) > 1.6:
        raise ExerciseError("angles larger than pi/2: degrees instead of radians?")
    check_close(answer, principal_angles(a, b), "principal angles", rtol=1e-5, atol=1e-6)


def check_ppca_sigma2(fn) -> None:
    """``fn(x, q)`` returns the maximum-likelihood PPCA sigma^2 of x (N, D) with q latent dimensions.

    Introduced in: Autoencoders.
    """
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(200, 10, generator=gen, dtype=torch.float64) * torch.linspace(3, 0.5, 10, dtype=torch.float64)
    lam = torch.linalg.eigvalsh(torch.cov(x.T, correction=0)).flip(0)      # eigenvalues of S, largest first
    d, q = x.shape[1], 3
    check_close(fn(x, q), ppca_closed_form(x, q).sigma2, "sigma^2", rtol=1e-6, mistakes={
        "the discarded eigenvalues were divided by D instead of D - q": lam[q:].sum() / d,
        "the mean was taken over the q kept eigenvalues, not the D - q discarded ones": lam[:q].mean(),
        "S was computed with 1/(N-1) (torch.cov's default) instead of 1/N": lam[q:].mean() * x.shape[0] / (x.shape[0] - 1)})


def check_diagonal_gap(fn) -> None:
    """``fn(W, sigma2)`` returns log p(x) - ELBO of PPCA with the best diagonal Gaussian q(z|x):
    1/2 (sum_m log A_mm - log det A), A = W^T W + sigma2 I_M (introduced in: Autoencoders).
    """
    gen = torch.Generator().manual_seed(2)
    W = torch.randn(12, 4, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 1.5, 1.0, 0.5], dtype=torch.float64)
    sigma2 = 0.3
    half_gap = lambda A: 0.5 * (A.diagonal().log().sum() - torch.logdet(A))
    A = W.T @ W + sigma2 * torch.eye(4, dtype=torch.float64)
    check_close(fn(W, sigma2), half_gap(A), "the gap log p(x) - ELBO", mistakes={
        "sigma^2 I was left out of A = W^T W + sigma^2 I": half_gap(W.T @ W),
        "the D x D matrix W W^T + sigma^2 I_D was used instead of the M x M matrix A":
            half_gap(W @ W.T + sigma2 * torch.eye(12, dtype=torch.float64)),
        "log det A minus the sum of log A_mm: the sign is flipped (the gap is never negative)": -half_gap(A)})
