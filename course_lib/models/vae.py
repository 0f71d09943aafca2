"""The one-stochastic-layer VAE: Gaussian q(z|x), a choice of decoder likelihood and prior.

Introduced in: The variational autoencoder. A `VAE` exposes ``encode(x)`` -> q(z|x),
``decode(z)`` -> p(x|z) and ``prior()`` -> p(z), all `torch.distributions` objects; the
objectives that train it (`elbo`, `iwae_bound`) are pure functions in
`course_lib.objectives`. Variants (likelihood, prior, MLP or conv) are config fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Distribution, Independent

from .. import distributions as D
from ..nets import MNIST_SHAPE, conv_decoder, conv_encoder, mlp_decoder, mlp_encoder


@dataclass(frozen=True)
class VAEConfig:
    """Architecture of a `VAE` (how it trains is a `course_lib.runs` training config).

    Introduced in: The variational autoencoder.
    """

    image_shape: tuple[int, int, int] = MNIST_SHAPE  # (C, H, W) of the data
    arch: str = "mlp"               # "mlp" (D-hidden-2M) or "conv" (two stride-2 convolutions)
    latent: int = 2                 # M, the dimension of z
    hidden: int = 256               # MLP hidden width
    channels: int = 32              # conv width (doubled in the second layer)
    likelihood: str = "bernoulli"   # "bernoulli" | "gaussian" (fixed sigma) | "categorical" (256 levels)
    sigma: float = 0.1              # decoder std of the Gaussian likelihood
    prior: str = "normal"           # "normal" | "mog" (learnable mixture) | "vamp" (VampPrior)
    components: int = 50            # J, mixture components / pseudo-inputs

    def __post_init__(self) -> None:
        for field, allowed in (("arch", ("mlp", "conv")), ("likelihood", D.LIKELIHOODS), ("prior", D.PRIORS)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"VAEConfig.{field}={getattr(self, field)!r}; choose one of {', '.join(allowed)}")


SIGMA_MODES = ("fixed", "learned", "per_pixel", "optimal")


@dataclass(frozen=True)
class SigmaVAEConfig(VAEConfig):
    """A Gaussian-decoder `VAE` whose sigma is fixed, learned (one scalar or one per pixel) or set in closed form.

    Introduced in: β versus σ: the decoder variance. (A subclass, so the configs, and hashes, of
    the VAEs shipped with `VAEConfig` are unchanged.) ``learned`` and ``per_pixel`` hold a raw
    parameter r and use log sigma = m + softplus(r - m), a soft floor at m = ``min_log_sigma``;
    ``optimal`` keeps log sigma in a buffer that the objective sets to log sqrt(MSE) (Rybkin et al. 2021).
    """

    likelihood: str = "gaussian"
    sigma_mode: str = "fixed"       # "fixed" (``sigma``) | "learned" | "per_pixel" | "optimal"
    min_log_sigma: float = -4.6     # the soft floor m of log sigma (sigma >= ~0.01)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma_mode not in SIGMA_MODES or self.likelihood != "gaussian":
            raise ValueError(f"SigmaVAEConfig needs likelihood='gaussian' and sigma_mode in {SIGMA_MODES}; "
                             f"got {self.likelihood!r}, {self.sigma_mode!r}")


def soft_clip_log_sigma(raw: torch.Tensor, floor: float) -> torch.Tensor:
    """log sigma = m + softplus(r - m): ~r above the floor m, never below it, smooth (introduced in: β versus σ: the decoder variance)."""
    return floor + nn.functional.softplus(raw - floor)


class VAE(nn.Module):
    """A VAE with Gaussian q(z|x) (introduced in: The variational autoencoder)."""

    def __init__(self, config: VAEConfig = VAEConfig()) -> None:
        super().__init__()
        self.config = c = config
        out = D.decoder_channels(c.likelihood, c.image_shape[0])
        if c.arch == "mlp":
            self.encoder = mlp_encoder(c.image_shape, c.hidden, 2 * c.latent)          # x -> (mu, logvar)
            self.decoder = mlp_decoder(c.latent, c.hidden, c.image_shape, out)
        else:
            self.encoder = conv_encoder(c.image_shape, c.channels, 2 * c.latent)
            self.decoder = conv_decoder(c.latent, c.channels, c.image_shape, out)
        self.register_buffer("zero", torch.zeros(c.latent))
        if c.prior == "mog":   # learnable weights, means and scales of J Gaussians
            self.mix_logits = nn.Parameter(torch.zeros(c.components))
            self.mix_means = nn.Parameter(torch.randn(c.components, c.latent))
            self.mix_logstd = nn.Parameter(torch.zeros(c.components, c.latent))
        elif c.prior == "vamp":  # J learnable pseudo-inputs u_j, through a sigmoid into [0, 1]
            self.pseudo = nn.Parameter(torch.randn(c.components, *c.image_shape) * 0.1)
        mode = getattr(c, "sigma_mode", "fixed")
        if mode in ("learned", "per_pixel"):   # raw r of the soft-clipped log sigma: () or (C, H, W), sigma = 1 at start
            self.log_sigma_raw = nn.Parameter(torch.zeros(() if mode == "learned" else c.image_shape))
        elif mode == "optimal":                # log sigma* = log sqrt(MSE), written by the objective, not trained
            self.register_buffer("log_sigma_opt", torch.zeros(()))

    def log_sigma(self) -> torch.Tensor:
        """log sigma of the Gaussian decoder: fixed, soft-clipped learned, or the closed-form buffer.

        Introduced in: β versus σ: the decoder variance.
        """
        mode = getattr(self.config, "sigma_mode", "fixed")
        if mode in ("learned", "per_pixel"):
            return soft_clip_log_sigma(self.log_sigma_raw, self.config.min_log_sigma)
        if mode == "optimal":
            return self.log_sigma_opt
        return torch.tensor(self.config.sigma, device=self.zero.device).log()

    def encode(self, x: torch.Tensor) -> Independent:
        """q(z|x) = N(mu(x), diag sigma^2(x)), one M-dimensional event per image."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)                                  # (B, M) each
        return D.diagonal_gaussian(mu, logvar)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z) for z of shape (..., M); ``.mean`` is image-shaped (..., C, H, W), in [0, 1]."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, z.shape[-1]))                                 # (prod(lead), C', H, W)
        sigma = self.config.sigma if getattr(self.config, "sigma_mode", "fixed") == "fixed" else self.log_sigma().exp()
        return D.likelihood(self.config.likelihood, out.reshape(*lead, *out.shape[1:]), sigma)

    def prior(self) -> Distribution:
        """p(z): N(0, I), a learnable mixture of Gaussians, or the VampPrior (1/J) sum_j q(z|u_j)."""
        if self.config.prior == "normal":
            return D.standard_normal(self.zero)
        if self.config.prior == "mog":
            return D.mixture_of_gaussians(self.mix_logits, self.mix_means, self.mix_logstd)
        return D.vamp_prior(self.encode, self.pseudo)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        from ..objectives import elbo

        return elbo(self, x)
