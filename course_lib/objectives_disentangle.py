"""Objectives that ask a VAE for disentangled codes, as named pure functions.

Introduced in: β-VAE and disentanglement. Like `course_lib.objectives`, each takes a model with
``encode``, ``decode`` and ``prior`` and returns a dict of batch means in nats with ``loss``,
``rate`` = KL(q(z|x) || p(z)) (closed form) and ``distortion`` = -E_q[log p(x|z)], plus its
own terms. The β-VAE is `course_lib.objectives.elbo` with ``beta``; here are the
capacity-annealed β-VAE (Burgess et al. 2018), β-TCVAE (Chen et al. 2018) and FactorVAE
(Kim & Mnih 2018), and the aggregate-posterior estimators behind the ELBO decomposition

    E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || prod_j q(z_j)) + sum_j KL(q(z_j) || p(z_j))
                             (index-code MI)  (total correlation, TC)   (dimension-wise KL)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Independent, Normal, kl_divergence

from .objectives import elbo


def annealed_elbo(model: nn.Module, x: torch.Tensor, capacity: float, gamma: float = 1000.0) -> dict[str, torch.Tensor]:
    """loss = distortion + gamma |rate - C|: the KL is pushed to the target capacity C (nats).

    Introduced in: β-VAE and disentanglement. Burgess et al. (2018) raise C linearly during
    training (the schedule lives in the run) so that the code gains information gradually.
    """
    out = elbo(model, x)
    loss = out["distortion"] + gamma * (out["rate"] - capacity).abs()       # |KL - C|, batch mean first
    return {**out, "loss": loss, "capacity": torch.tensor(float(capacity), device=x.device)}


def pairwise_log_density(z: torch.Tensor, mu: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log q(z_ij | x_k) = log N(z_ij; mu_kj, scale_kj^2) for z (B, M), mu and scale (K, M): (B, K, M).

    Introduced in: β-VAE and disentanglement.
    """
    return Normal(mu[None], scale[None]).log_prob(z[:, None])             # row b: sample, column k: posterior


def aggregate_log_density(z: torch.Tensor, mu: torch.Tensor, scale: torch.Tensor, dataset_size: int,
                          sampling: str = "mws") -> tuple[torch.Tensor, torch.Tensor]:
    """Estimates of log q(z_i) and log prod_j q(z_ij), (B,) each, from one batch: z_i ~ q(z|x_i).

    Introduced in: β-VAE and disentanglement. q(z) = (1/N) sum_n q(z|x_n) over all N =
    ``dataset_size`` training images; the batch's own posteriors stand in for the N.
    ``"mws"``, minibatch-weighted sampling (Chen et al. 2018, what β-TCVAE trains with):
        log q(z_i) ~ logsumexp_k log q(z_i|x_k) - log(N B),  and per dimension j alike.
    ``"stratified"``: weight 1/N on the sample's own posterior and (N - 1) / (N (B - 1)) on the
    others: unbiased for q(z_i) when the others are drawn from the rest of the data, and exact
    when the batch is the whole data set (B = N): the estimator for measuring the decomposition.
    """
    b = z.shape[0]
    log_q = pairwise_log_density(z, mu, scale)                             # (B, B, M)
    if sampling == "mws":
        log_w = torch.full((b, b), -math.log(dataset_size * b), dtype=z.dtype, device=z.device)
    elif sampling == "stratified":
        if b < 2:
            raise ValueError("stratified sampling needs a batch of at least 2")
        log_w = torch.full((b, b), math.log((dataset_size - 1) / (dataset_size * (b - 1))), dtype=z.dtype,
                           device=z.device)
        log_w.fill_diagonal_(-math.log(dataset_size))                      # the sample's own posterior: 1/N
    else:
        raise ValueError(f"sampling must be 'mws' or 'stratified', got {sampling!r}")
    log_qz = torch.logsumexp(log_w + log_q.sum(2), dim=1)                  # log sum_k w_k q(z_i|x_k): (B,)
    log_prod = torch.logsumexp(log_w[:, :, None] + log_q, dim=1).sum(1)    # sum_j log sum_k w_k q(z_ij|x_k)
    return log_qz, log_prod


def elbo_decomposition(q: Independent, z: torch.Tensor, prior, dataset_size: int,
                       sampling: str = "mws") -> dict[str, torch.Tensor]:
    """Index-code MI, total correlation and dimension-wise KL at samples z (B, M) of q(z|x) (a batch).

    Introduced in: β-VAE and disentanglement. With log q(z) and log prod_j q(z_j) from
    `aggregate_log_density`, mi = mean(log q(z|x) - log q(z)), tc = mean(log q(z) - log prod_j q(z_j)),
    dim_kl = mean(log prod_j q(z_j) - log p(z)); they sum to mean(log q(z|x) - log p(z)), whose
    expectation is the rate.
    """
    base = q.base_dist
    log_qz, log_prod = aggregate_log_density(z, base.loc, base.scale, dataset_size, sampling)
    log_qzx, log_pz = q.log_prob(z), prior.log_prob(z)                     # (B,) each
    return {"mi": (log_qzx - log_qz).mean(), "tc": (log_qz - log_prod).mean(),
            "dim_kl": (log_prod - log_pz).mean()}


def beta_tcvae(model: nn.Module, x: torch.Tensor, dataset_size: int, alpha: float = 1.0, beta: float = 6.0,
               gamma: float = 1.0) -> dict[str, torch.Tensor]:
    """β-TCVAE: loss = distortion + alpha MI + beta TC + gamma dim-KL, estimated by minibatch-weighted sampling.

    Introduced in: β-VAE and disentanglement. ``dataset_size`` is N, the number of training
    images (737,280 for dSprites): it sets the log-weights -log(N B) (a wrong N biases TC).
    alpha = gamma = 1 penalises only the TC beyond the ELBO (Chen et al.).
    """
    q = model.encode(x)
    z = q.rsample()                                                        # (B, M), reparameterised
    distortion = -model.decode(z).log_prob(x).mean()
    p = model.prior()
    terms = elbo_decomposition(q, z, p, dataset_size, "mws")
    loss = distortion + alpha * terms["mi"] + beta * terms["tc"] + gamma * terms["dim_kl"]
    return {"loss": loss, "rate": kl_divergence(q, p).mean(), "distortion": distortion, **terms}


def permute_dims(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shuffle each column of z (B, M) across the batch independently: samples of prod_j q(z_j).

    Introduced in: β-VAE and disentanglement.
    """
    noise = torch.rand(z.shape, generator=generator, device=z.device)
    return z.gather(0, noise.argsort(0))                                   # column j: a permutation of z[:, j]


def factor_vae(model: nn.Module, x: torch.Tensor, gamma: float = 10.0) -> dict[str, torch.Tensor]:
    """FactorVAE: the negative ELBO + gamma TC, with TC ~ mean log D(z) / (1 - D(z)) from the discriminator.

    Introduced in: β-VAE and disentanglement. ``model.discriminator`` maps codes to two logits,
    "from q(z)" and "from prod_j q(z_j)"; their difference is the log density ratio. The
    discriminator's weights enter as detached copies, so this loss never trains it: that is
    `discriminator_loss`, on detached ``codes`` (returned for it), with an optimizer of its own.
    """
    q = model.encode(x)
    z = q.rsample()                                                        # (B, M)
    distortion = -model.decode(z).log_prob(x).mean()
    rate = kl_divergence(q, model.prior()).mean()
    frozen = {k: v.detach().clone() for k, v in model.discriminator.named_parameters()}
    logits = torch.func.functional_call(model.discriminator, frozen, (z,))  # (B, 2)
    tc = (logits[:, 0] - logits[:, 1]).mean()                              # log D / (1 - D)
    return {"loss": distortion + rate + gamma * tc, "rate": rate, "distortion": distortion, "tc": tc,
            "codes": z.detach()}


def discriminator_loss(model: nn.Module, codes: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy of D on codes (class 0) and on their column-permuted copies (class 1), and its accuracy.

    Introduced in: β-VAE and disentanglement. ``codes`` (B, M) must be detached from the VAE.
    """
    both = torch.cat([codes, permute_dims(codes)])                          # (2B, M)
    labels = torch.cat([torch.zeros(len(codes)), torch.ones(len(codes))]).long().to(codes.device)
    logits = model.discriminator(both)
    return {"disc_loss": F.cross_entropy(logits, labels),
            "disc_accuracy": (logits.argmax(1) == labels).float().mean()}
