"""Exercise checks of the lab "The amortisation gap" (introduced in: Lab: the amortisation gap)."""

from __future__ import annotations

import torch

from ..amortisation import gap_split, local_elbo
from ..models.vae import VAE, VAEConfig
from ..nets import MNIST_SHAPE
from .check import ExerciseError, check_close

B, M, S = 6, 3, 50   # images, latent dimensions, draws of the checks


def check_local_elbo(fn) -> None:
    """``fn(model, x, mu, log_sigma, eps)`` returns the ELBO of each image under its own
    q = N(mu, diag exp(2 log_sigma)), shape (B,) (introduced in: Lab: the amortisation gap).
    """
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=M, hidden=16))
    gen = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.rand(B, *MNIST_SHAPE, generator=gen), generator=gen)
    mu, log_sigma = torch.randn(B, M, generator=gen), 0.3 * torch.randn(B, M, generator=gen) - 1.0
    eps = torch.randn(S, B, M, generator=gen)
    with torch.no_grad():
        expected = local_elbo(model, x, mu, log_sigma, eps)
        answer = fn(model, x, mu, log_sigma, eps)
        as_logvar = local_elbo(model, x, mu, 0.5 * log_sigma, eps)
        no_rate = model.decode(mu + log_sigma.exp() * eps).log_prob(x).mean(0)
        at_mean = local_elbo(model, x, mu, log_sigma, torch.zeros_like(eps))
    if torch.is_tensor(answer) and answer.numel() == 1 and B > 1:
        raise ExerciseError("one number came back: return one ELBO per image, shape (B,) (average over the "
                            "draws, dim 0, not over the images)")
    check_close(answer, expected, "the per-image ELBO", sizes={"draws": S}, mistakes={
        "log_sigma treated as log sigma^2 (sigma = exp(log_sigma / 2)); here sigma = exp(log_sigma)": as_logvar,
        "the rate KL(q || p(z)) is missing: that is only E_q log p(x|z)": no_rate,
        "z was set to the posterior mean: draw z = mu + sigma * eps": at_mean})


def check_gap_split(fn) -> None:
    """``fn(log_px, elbo_star, elbo_amortised)`` returns (approximation gap, amortisation gap) per image.

    Introduced in: Lab: the amortisation gap.
    """
    gen = torch.Generator().manual_seed(0)
    log_px = -90 + torch.randn(5, generator=gen)
    elbo_star = log_px - 1 - torch.rand(5, generator=gen)
    elbo_amortised = elbo_star - 2 - torch.rand(5, generator=gen)
    answer = fn(log_px, elbo_star, elbo_amortised)
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        raise ExerciseError("return two tensors: (approximation gap, amortisation gap)")
    want = gap_split(log_px, elbo_star, elbo_amortised)
    approx, amort = want["approximation"], want["amortisation"]
    check_close(answer[0], approx, "the approximation gap", mistakes={
        "the two gaps are swapped: the approximation gap is log p(x) - ELBO[q*]": amort,
        "the sign is flipped: gaps are never negative, log p(x) >= ELBO[q*] >= ELBO[q(z|x)]": -approx,
        "that is the whole gap log p(x) - ELBO[q(z|x)], not its approximation part": approx + amort})
    check_close(answer[1], amort, "the amortisation gap", mistakes={
        "the sign is flipped: ELBO[q*] - ELBO[q(z|x)] >= 0": -amort,
        "that is the whole gap log p(x) - ELBO[q(z|x)], not its amortisation part": approx + amort})
