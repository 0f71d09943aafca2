"""Evaluating a model trained on dSprites: rate, distortion, KL per unit, the ELBO decomposition, the metrics.

Introduced in: β-VAE and disentanglement. `evaluate_disentanglement` measures everything the
chapter's tables and plots need and returns plain numbers (a record's ``metrics``). Randomness
comes from a local seeded generator: evaluating never changes the global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import torch
from torch import nn
from torch.distributions import Independent, Normal

from .dsprites import DSprites
from .metrics import dci, factor_vae_score, mig, mig_full_grid, sample_codes


@dataclass(frozen=True)
class DisentangleEval:
    """What `evaluate_disentanglement` measures (not part of a checkpoint's hash).

    Introduced in: β-VAE and disentanglement.
    """

    n_points: int = 10_000                       # random images: binned MIG (disentanglement_lib: 10,000) and DCI
    bins: int = 20                               # MIG bins
    grid_step: tuple[int, ...] = (1, 1, 4, 4, 4)  # full-grid MIG on every k-th value of each factor (11,520 points)
    grid_samples: int = 5_000                    # draws z ~ q(z|x) at random grid points for it
    fvae_train: int = 2_000                      # FactorVAE-score votes (disentanglement_lib: 10,000 / 5,000)
    fvae_eval: int = 1_000
    n_images: int = 2_000                        # images for rate, distortion, KL per unit, reconstruction
    decomposition_batch: int = 2_000             # codes for MI / TC / dim-KL ...
    decomposition_reference: int = 20_000        # ... against this many reference posteriors
    seed: int = 0

    def smoke(self) -> "DisentangleEval":
        """A small, fast version for the smoke setting."""
        return DisentangleEval(1_000, self.bins, (1, 2, 8, 8, 8), 1_000, 100, 50, 500, 500, 2_000, self.seed)


def grid_index(data: DSprites, step: tuple[int, ...]) -> torch.Tensor:
    """Indices of every combination of every ``step[k]``-th value of factor k: (prod_k ceil(K_k / step_k),).

    Introduced in: β-VAE and disentanglement.
    """
    axes = [torch.arange(0, k, s) for k, s in zip(data.factor_sizes, step)]
    classes = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).view(-1, len(axes))   # (G, F)
    return data.index_from_factors(classes)


@torch.no_grad()
def posterior_stats(model: nn.Module, images: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Means and log-variances of q(z|x) for a stack of images: (N, M) each.

    Introduced in: β-VAE and disentanglement.
    """
    mus, logvars = [], []
    for xb in images.split(batch):
        base = model.encode(xb).base_dist
        mus.append(base.loc), logvars.append(2 * base.scale.log())
    return torch.cat(mus), torch.cat(logvars)


@torch.no_grad()
def kl_per_unit(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z_j|x) || N(0, 1)) averaged over the images, per unit j: (M,) nats; they sum to the rate.

    Introduced in: β-VAE and disentanglement.
    """
    return (0.5 * (mu**2 + logvar.exp() - 1 - logvar)).mean(0)


@torch.no_grad()
def reference_decomposition(q: Independent, z: torch.Tensor, prior, ref_mu: torch.Tensor, ref_scale: torch.Tensor,
                            dataset_size: int, chunk: int = 1000) -> dict[str, float]:
    """Index-code MI, TC and dimension-wise KL at z_i ~ q(z|x_i), (B, M), against R reference posteriors.

    Introduced in: β-VAE and disentanglement. The stratified estimate with a reference set that
    is not the batch: q(z_i) ~ (1/N) q(z_i|x_i) + ((N - 1)/N) (1/R) sum_r q(z_i|x_r) for R images
    drawn from the data (``ref_mu``, ``ref_scale``: (R, M)), and alike per dimension. It resolves
    densities down to ~1/R, so it stays unbiased-ish up to rates of about log R nats, where one
    batch of B codes gives out at log B. Done in chunks of ``chunk`` reference posteriors.
    """
    base = q.base_dist
    joint, marg = [], []
    for mu_c, scale_c in zip(ref_mu.split(chunk), ref_scale.split(chunk)):
        log_q = Normal(mu_c[None], scale_c[None]).log_prob(z[:, None])        # (B, chunk, M)
        joint.append(torch.logsumexp(log_q.sum(2), 1)), marg.append(torch.logsumexp(log_q, 1))
    n, r = dataset_size, len(ref_mu)
    others = math.log((n - 1) / (n * r))                                     # weight of each reference posterior
    own = Normal(base.loc, base.scale).log_prob(z)                           # (B, M): the sample's own posterior
    log_qz = torch.logaddexp(own.sum(1) - math.log(n), torch.logsumexp(torch.stack(joint), 0) + others)     # (B,)
    log_prod = torch.logaddexp(own - math.log(n), torch.logsumexp(torch.stack(marg), 0) + others).sum(1)
    log_qzx, log_pz = q.log_prob(z), prior.log_prob(z)
    return {"mi": float((log_qzx - log_qz).mean()), "tc": float((log_qz - log_prod).mean()),
            "dim_kl": float((log_prod - log_pz).mean())}


@torch.no_grad()
def evaluate_disentanglement(model: nn.Module, data: DSprites, settings: DisentangleEval = DisentangleEval()) -> dict:
    """Rate, distortion, KL per unit, active units, MI / TC / dim-KL, MIG (binned and grid), FactorVAE score, DCI.

    Introduced in: β-VAE and disentanglement. Every metric is computed on the encoder means.
    MIG ``mig`` uses ``bins`` bins on ``n_points`` random images (disentanglement_lib);
    ``mig_grid`` is Chen et al.'s estimator over the sub-grid ``grid_step`` (all five factors in
    both, shape included). Information in nats.
    """
    s = settings
    was_training = model.training
    model.eval()
    gen = torch.Generator(data.device).manual_seed(s.seed)
    encode_mean = lambda x: model.encode(x).mean                            # noqa: E731
    x = data.images(data.sample_index(s.n_images, gen))                     # (n, 1, S, S)
    mu, logvar = posterior_stats(model, x)
    kl_unit = kl_per_unit(mu, logvar)                                        # (M,)
    distortion = torch.cat([-model.decode(m).log_prob(xb) for m, xb in zip(mu.split(1000), x.split(1000))])
    sq_error = torch.cat([(model.decode(m).mean - xb).pow(2).flatten(1).sum(1) for m, xb in zip(mu.split(1000), x.split(1000))])
    q = model.encode(x[:s.decomposition_batch])
    z = q.base_dist.loc + q.base_dist.scale * torch.randn(q.base_dist.loc.shape, generator=gen, device=data.device)
    ref_mu, ref_logvar = posterior_stats(model, data.images(data.sample_index(s.decomposition_reference, gen)))
    parts = reference_decomposition(q, z, model.prior(), ref_mu, (0.5 * ref_logvar).exp(), len(data))
    codes, factors = sample_codes(encode_mean, data, s.n_points, gen)
    binned = mig(codes, factors, s.bins)
    g_mu, g_logvar = posterior_stats(model, data.images(grid := grid_index(data, s.grid_step)))
    grid = mig_full_grid(g_mu, g_logvar, data.factors(grid), n_samples=s.grid_samples, generator=gen)
    fvae = factor_vae_score(encode_mean, data, s.fvae_train, s.fvae_eval, generator=gen)
    d = dci(codes, factors)
    model.train(was_training)
    return {"rate": float(kl_unit.sum()), "distortion": float(distortion.mean()),
            "recon_sq_error": float(sq_error.mean()), "kl_per_unit": [round(float(v), 4) for v in kl_unit],
            "active_units": int((mu.var(0) > 0.01).sum()), **{k: float(v) for k, v in parts.items()},
            "mig": binned.score, "mig_per_factor": [round(float(v), 4) for v in binned.per_factor],
            "mig_mi": [[round(float(v), 4) for v in row] for row in binned.mi],
            "mig_grid": grid.score, "mig_grid_per_factor": [round(float(v), 4) for v in grid.per_factor],
            "mig_grid_points": len(g_mu), "factorvae_score": fvae.score, "factorvae_train_accuracy": fvae.train_accuracy,
            "dci_disentanglement": d.disentanglement, "dci_completeness": d.completeness,
            "dci_informativeness": d.informativeness}
