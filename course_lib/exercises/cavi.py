"""Exercise checks of the chapter "Coordinate ascent VI" (Part I)."""

from __future__ import annotations


import torch

from ..vi.cavi import cavi_update_assignments
from .check import ExerciseError, check_close


def check_assignment_update(your_update) -> None:
    """Exercise check (Coordinate ascent VI): ``your_update(x, m, s2)`` -> phi of shape (N, K).

    Introduced in: Coordinate ascent variational inference.
    """
    gen = torch.Generator().manual_seed(3)
    x = 3 * torch.randn(7, 2, generator=gen, dtype=torch.float64)
    m = 3 * torch.randn(4, 2, generator=gen, dtype=torch.float64)
    s2 = torch.tensor([0.05, 0.5, 1.0, 2.0], dtype=torch.float64)
    phi = your_update(x, m, s2)
    if torch.is_tensor(phi) and phi.shape == (7, 4) and torch.isfinite(phi).all():
        rows = phi.sum(-1)
        if not torch.allclose(rows, torch.ones_like(rows), atol=1e-6):
            raise ExerciseError("the rows of phi do not sum to 1: q(c_i) is a distribution over k, normalise over the last dimension")
        no_var = cavi_update_assignments(x, m, torch.zeros_like(s2))
        if torch.allclose(phi.double(), no_var, atol=1e-6):
            raise ExerciseError("you used ||m_k||^2 for E||mu_k||^2: the variance of q(mu_k) adds D * s2_k")
    check_close(phi, cavi_update_assignments(x, m, s2), "phi (the assignment probabilities)", rtol=1e-6, atol=1e-8)
