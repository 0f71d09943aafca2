"""The variational autoencoder family: encoders, decoder likelihoods, priors, objectives.

Introduced in: The variational autoencoder. A `VAE` exposes ``encode(x)`` -> q(z|x),
``decode(z)`` -> p(x|z) and ``prior()`` -> p(z), all `torch.distributions` objects; the
objectives (`elbo`, `iwae_bound`) are pure functions returning ``loss``, ``rate`` and
``distortion`` (batch means of per-image sums, in nats). Variants are config fields.
Evaluation (NLL estimates, active units) is in `course_lib.evaluation`; the shipped runs
and their training are in `course_lib.vae_training`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import (Bernoulli, Categorical, Distribution, Independent, MixtureSameFamily,
                                 Normal, kl_divergence)

IMAGE = (1, 28, 28)


@dataclass
class VAEConfig:
    arch: str = "mlp"               # "mlp" (784-256-2M, the seeds') or "conv"
    latent: int = 2                 # M, the dimension of z
    hidden: int = 256               # MLP hidden width
    channels: int = 32              # conv width (doubled in the second layer)
    likelihood: str = "bernoulli"   # "bernoulli" | "gaussian" (fixed sigma) | "categorical" (256 levels)
    sigma: float = 0.1              # decoder std of the Gaussian likelihood
    prior: str = "normal"           # "normal" | "mog" (learnable mixture) | "vamp" (VampPrior)
    components: int = 50            # mixture components / pseudo-inputs
    dataset: str = "dynamic_mnist"
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0               # KL weight
    warmup_epochs: int = 0          # KL warm-up: beta rises linearly from 0 over this many epochs
    eval_k: int = 0                 # importance samples for the NLL stored in the record (0: none)
    eval_n: int = 10_000            # test images used for that NLL
    seed: int = 0


# ----------------------------------------------------------------------------- likelihoods
class PixelCategorical(Distribution):
    """256 grey levels per pixel. ``log_prob`` takes images in [0, 1]; ``mean`` is the expected grey level."""

    arg_constraints: dict = {}

    def __init__(self, logits: torch.Tensor) -> None:  # logits: (..., 256, 28, 28), one softmax per pixel
        self.logits = logits
        super().__init__(logits.shape[:-3], torch.Size((1, *logits.shape[-2:])), validate_args=False)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        level = (x * 255).round().long()                       # x in [0,1] -> level 0..255, (..., 1, 28, 28)
        log_pi = torch.log_softmax(self.logits, dim=-3)         # log pi_{i,l}, normalised over the 256 levels
        log_pi, level = torch.broadcast_tensors(log_pi, level)  # broadcast batch dims (z samples vs images)
        return log_pi.gather(-3, level[..., :1, :, :]).sum((-3, -2, -1))  # sum_i log pi_{i, level_i}

    @property
    def mean(self) -> torch.Tensor:
        grey = torch.arange(256, device=self.logits.device, dtype=self.logits.dtype) / 255.0
        probs = torch.softmax(self.logits, dim=-3)              # (..., 256, 28, 28)
        return torch.einsum("...lhw,l->...hw", probs, grey).unsqueeze(-3)  # E[level]/255, (..., 1, 28, 28)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        levels = Categorical(logits=self.logits.movedim(-3, -1)).sample(sample_shape)  # (..., 28, 28)
        return levels.unsqueeze(-3).float() / 255.0


def likelihood(kind: str, out: torch.Tensor, sigma: float) -> Distribution:
    """p(x|z) from the decoder output ``out`` (..., C, 28, 28); every event is one whole image."""
    if kind == "bernoulli":
        return Independent(Bernoulli(logits=out), 3)  # log p = sum of 784 pixel terms
    if kind == "gaussian":
        return Independent(Normal(torch.sigmoid(out), sigma), 3)  # mean in [0,1], fixed std
    if kind == "categorical":  # (..., 256, 28, 28): 256 level logits per pixel
        return PixelCategorical(out)
    raise ValueError(f"unknown likelihood {kind!r}; choose bernoulli, gaussian or categorical")


# ----------------------------------------------------------------------------- networks
def encoder_net(c: VAEConfig) -> nn.Module:
    """x (B,1,28,28) -> (B, 2M): the mean and log-variance of q(z|x)."""
    if c.arch == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, c.hidden), nn.LeakyReLU(),
                             nn.Linear(c.hidden, 2 * c.latent))
    w = c.channels
    return nn.Sequential(nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(),         # (B, w, 14, 14)
                         nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(),     # (B, 2w, 7, 7)
                         nn.Flatten(), nn.Linear(2 * w * 49, 2 * c.latent))


def decoder_net(c: VAEConfig) -> nn.Module:
    """z (B, M) -> decoder output (B, C, 28, 28): logits, means or 256 level logits."""
    out = 256 if c.likelihood == "categorical" else 1
    if c.arch == "mlp":
        return nn.Sequential(nn.Linear(c.latent, c.hidden), nn.LeakyReLU(),
                             nn.Linear(c.hidden, out * 784), nn.Unflatten(1, (out, 28, 28)))
    w = c.channels
    return nn.Sequential(nn.Linear(c.latent, 2 * w * 49), nn.LeakyReLU(), nn.Unflatten(1, (2 * w, 7, 7)),
                         nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.LeakyReLU(),  # (B, w, 14, 14)
                         nn.ConvTranspose2d(w, out, 4, 2, 1))                    # (B, out, 28, 28)


class VAE(nn.Module):
    """A one-stochastic-layer VAE with Gaussian q(z|x) (introduced in: The variational autoencoder)."""

    def __init__(self, config: VAEConfig) -> None:
        super().__init__()
        self.config = c = config
        self.encoder, self.decoder = encoder_net(c), decoder_net(c)
        self.register_buffer("zero", torch.zeros(c.latent))
        if c.prior == "mog":  # learnable weights, means and scales of K Gaussians
            self.mix_logits = nn.Parameter(torch.zeros(c.components))
            self.mix_means = nn.Parameter(torch.randn(c.components, c.latent))
            self.mix_logstd = nn.Parameter(torch.zeros(c.components, c.latent))
        elif c.prior == "vamp":  # K learnable pseudo-inputs u_k, through a sigmoid into [0,1]
            self.pseudo = nn.Parameter(torch.randn(c.components, *IMAGE) * 0.1)
        elif c.prior != "normal":
            raise ValueError(f"unknown prior {c.prior!r}; choose normal, mog or vamp")

    def encode(self, x: torch.Tensor) -> Independent:
        """q(z|x) = N(mu(x), diag sigma^2(x)), one M-dimensional event per image."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)          # (B, M) each
        return Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)

    def decode(self, z: torch.Tensor) -> Distribution:
        """p(x|z) for z of shape (..., M); ``.mean`` is image-shaped (..., 1, 28, 28), in [0,1]."""
        lead = z.shape[:-1]
        out = self.decoder(z.reshape(-1, z.shape[-1]))          # (prod(lead), C, 28, 28)
        return likelihood(self.config.likelihood, out.reshape(*lead, *out.shape[1:]), self.config.sigma)

    def prior(self) -> Distribution:
        """p(z): N(0, I), a learnable mixture of Gaussians, or the VampPrior (1/K) sum_k q(z|u_k)."""
        c = self.config
        if c.prior == "normal":
            return Independent(Normal(self.zero, torch.ones_like(self.zero)), 1)
        if c.prior == "mog":
            comp = Independent(Normal(self.mix_means, self.mix_logstd.exp()), 1)
            return MixtureSameFamily(Categorical(logits=self.mix_logits), comp)
        q = self.encode(torch.sigmoid(self.pseudo))             # batch of K Gaussians
        return MixtureSameFamily(Categorical(logits=torch.zeros_like(self.pseudo[:, 0, 0, 0])), q)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return elbo(self, x)


# ----------------------------------------------------------------------------- objectives
def elbo(model: VAE, x: torch.Tensor, beta: float = 1.0, n_samples: int = 1) -> dict[str, torch.Tensor]:
    """Negative ELBO (beta-weighted): loss = distortion + beta * rate (introduced in: The variational autoencoder).

    distortion = -E_q[log p(x|z)], rate = KL(q(z|x) || p(z)); closed form when torch knows
    it (Gaussian prior), else the Monte Carlo estimate log q(z|x) - log p(z) at the sample.
    """
    q = model.encode(x)
    z = q.rsample((n_samples,))                    # z = mu + sigma * eps, (S, B, M): reparameterised
    distortion = -model.decode(z).log_prob(x).mean()   # log p(x|z) summed over pixels, (S, B) -> mean
    p = model.prior()
    try:
        rate = kl_divergence(q, p).mean()          # closed form, (B,) -> mean
    except NotImplementedError:
        rate = (q.log_prob(z) - p.log_prob(z)).mean()  # single-sample estimate per image
    return {"loss": distortion + beta * rate, "rate": rate, "distortion": distortion}


def log_weights(model: VAE, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x), z_i ~ q(z|x): (k, B), with log p(x|z) and log q - log p."""
    q = model.encode(x)
    z = q.rsample((k,))                                        # (k, B, M)
    log_px = model.decode(z).log_prob(x)                       # (k, B)
    log_ratio = q.log_prob(z) - model.prior().log_prob(z)      # log q - log p, (k, B)
    return log_px - log_ratio, log_px, log_ratio


def iwae_bound(model: VAE, x: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The importance-weighted bound log (1/k) sum_i w_i <= log p(x) (introduced in: The variational autoencoder).

    ``bound`` is the batch mean in nats (k=1 gives the ELBO); ``loss`` = -bound.
    """
    log_w, log_px, log_ratio = log_weights(model, x, k)
    bound = (torch.logsumexp(log_w, 0) - math.log(k)).mean()
    return {"loss": -bound, "rate": log_ratio.mean(), "distortion": -log_px.mean(), "bound": bound}


# ----------------------------------------------------------------------------- exercise
def check_gaussian_kl(kl_fn) -> None:
    """Exercise check (The variational autoencoder): ``kl_fn(mu, logvar)`` -> KL(N(mu, e^logvar) || N(0, I)), shape (B,)."""
    from .exercises import check_close

    gen = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(16, 5, generator=gen), torch.randn(16, 5, generator=gen)
    expected = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(-1)
    check_close(kl_fn(mu, logvar), expected, "the KL per image (summed over latent dimensions)")
