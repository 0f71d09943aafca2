"""Per-image variational inference for a trained VAE, and the split of its bound's gap.

Introduced in: Lab: the amortisation gap. An encoder answers q(z|x) for every image with one
network (amortised inference); fitting a separate diagonal Gaussian q*(z) to each image by
black-box VI (the reparameterisation estimator and Adam of the chapters on black-box VI) shows
what that shortcut costs. Following Cremer et al. (2018), the gap of the amortised bound splits
into an approximation gap (the family) and an amortisation gap (the encoder):

    log p(x) - ELBO[q(z|x)] = (log p(x) - ELBO[q*]) + (ELBO[q*] - ELBO[q(z|x)]).

The model's weights are never changed; ``mu`` and ``log_sigma`` are (B, M) tensors, one
Gaussian per image, and every function returns per-image values (B,) so that means come with
standard errors (`course_lib.paired`).
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.distributions import Independent, Normal

from .vi.fitting import StepSizes


@contextlib.contextmanager
def _frozen(model: nn.Module):
    """The model's parameters need no gradients while per-image Gaussians are fitted."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def local_elbo(model: nn.Module, x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor,
               eps: torch.Tensor) -> torch.Tensor:
    """ELBO of each image under its own q = N(mu, diag exp(2 log_sigma)), from draws ``eps`` (S, B, M): (B,).

    Introduced in: Lab: the amortisation gap. z = mu + sigma * eps (reparameterised);
    log p(x|z) averaged over the S draws, minus the closed-form KL to a standard normal prior
    (the Monte Carlo log q - log p at the draws for any other prior).
    """
    q = Independent(Normal(mu, log_sigma.exp()), 1)
    z = mu + log_sigma.exp() * eps                                   # (S, B, M)
    log_px = model.decode(z).log_prob(x).mean(0)                     # (B,)
    prior = model.prior()
    base = prior.base_dist if isinstance(prior, Independent) else prior
    if isinstance(base, Normal):
        rate = torch.distributions.kl_divergence(q, prior)           # closed form, (B,)
    else:
        rate = (q.log_prob(z) - prior.log_prob(z)).mean(0)           # Monte Carlo, (B,)
    return log_px - rate


def encoder_gaussians(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The encoder's q(z|x) as (mu, log_sigma), (B, M) each (introduced in: Lab: the amortisation gap)."""
    with torch.no_grad():
        q = model.encode(x)
    return q.mean.clone(), q.stddev.log().clone()


def fit_local_gaussians(model: nn.Module, x: torch.Tensor, mu0: torch.Tensor, log_sigma0: torch.Tensor,
                        steps: int = 500, draws: int = 16, seed: int = 0, sizes: StepSizes | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Fit one diagonal Gaussian per image by stochastic gradient ascent on `local_elbo`.

    Introduced in: Lab: the amortisation gap. Starts from (mu0, log_sigma0) (B, M), e.g. the
    encoder's answer; each step draws ``draws`` noise vectors per image and takes an Adam step
    with the decaying base rate of ``sizes`` (`course_lib.vi.StepSizes`; default lr 0.01). The
    images' objectives are independent and Adam scales every coordinate separately, so this is
    B separate black-box VI runs done at once. Returns (mu, log_sigma, trace of the mean ELBO).
    """
    sizes = sizes or StepSizes(adam_lr=0.01, adam_t0=100.0, adam_power=0.7)
    gen = torch.Generator(x.device).manual_seed(seed)
    mu = mu0.detach().clone().requires_grad_(True)
    log_sigma = log_sigma0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([mu, log_sigma], lr=sizes.adam_lr)
    trace = []
    with _frozen(model), torch.enable_grad():
        for t in range(steps):
            for group in opt.param_groups:                           # alpha_t = alpha_0 (1 + t / t0)^-kappa
                group["lr"] = sizes.adam_lr * (1 + t / sizes.adam_t0) ** -sizes.adam_power
            eps = torch.randn((draws, *mu.shape), generator=gen, device=mu.device, dtype=mu.dtype)
            elbo = local_elbo(model, x, mu, log_sigma, eps)          # (B,)
            opt.zero_grad(set_to_none=True)
            (-elbo.sum()).backward()                                 # independent per image: sum = B separate runs
            opt.step()
            trace.append(float(elbo.detach().mean()))
    return mu.detach(), log_sigma.detach(), trace


@torch.no_grad()
def iwae_with_proposal(model: nn.Module, x: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor, k: int,
                       seed: int = 0, chunk: int = 250) -> torch.Tensor:
    """log (1/k) sum_i p(x, z_i) / q(z_i), z_i ~ q = N(mu, diag sigma^2): a k-sample bound on log p(x), (B,).

    Introduced in: Lab: the amortisation gap. Any proposal gives a lower bound that tightens as
    k grows; a proposal close to the posterior (such as a per-image fit) makes it tight sooner.
    """
    q = Independent(Normal(mu, log_sigma.exp()), 1)
    gen = torch.Generator(x.device).manual_seed(seed)
    log_w = []
    for start in range(0, k, chunk):
        eps = torch.randn((min(chunk, k - start), *mu.shape), generator=gen, device=mu.device, dtype=mu.dtype)
        z = mu + log_sigma.exp() * eps                               # (k', B, M)
        log_w.append(model.decode(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z))
    return torch.logsumexp(torch.cat(log_w), 0) - math.log(k)


def gap_split(log_px: torch.Tensor, elbo_local: torch.Tensor, elbo_amortised: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image gaps (Cremer et al. 2018): ``approximation`` = log p(x) - ELBO[q*],
    ``amortisation`` = ELBO[q*] - ELBO[q(z|x)], and their sum ``total`` (introduced in: Lab: the amortisation gap).
    """
    approximation, amortisation = log_px - elbo_local, elbo_local - elbo_amortised
    return {"approximation": approximation, "amortisation": amortisation, "total": approximation + amortisation}
