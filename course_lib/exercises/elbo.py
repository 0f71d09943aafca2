"""Exercise checks of the chapter "Latent-variable models and the ELBO" (Part I)."""

from __future__ import annotations


import torch

from ..vi.gaussian import ConjugateGaussian
from .check import check_close


def check_conjugate_elbo(your_elbo) -> None:
    """Exercise check (Latent-variable models and the ELBO): ``your_elbo(x, m, v, noise_var)``.

    The model is z ~ N(0, 1), x_i | z ~ N(z, noise_var); q(z) = N(m, v) with m, v tensors of
    the same shape (a grid). The answer must have the shape of m.
    Introduced in: Latent-variable models and the ELBO.
    """
    gen = torch.Generator().manual_seed(1)
    x = 1.0 + 0.7 * torch.randn(6, generator=gen, dtype=torch.float64)
    m = torch.linspace(-1.0, 2.0, 5, dtype=torch.float64).unsqueeze(1).expand(5, 4)
    v = torch.tensor([0.05, 0.2, 0.5, 1.5], dtype=torch.float64).expand(5, 4)
    model = ConjugateGaussian(noise_var=0.49)
    check_close(your_elbo(x, m, v, 0.49), model.elbo(x, m, v), "your ELBO on a grid of (m, v)",
                rtol=1e-6, atol=1e-8)
