"""The mutual information gap (MIG), with two estimators, written from the papers.

Introduced in: β-VAE and disentanglement. Everything is model-agnostic: a metric takes latent
means ``codes`` (N, M) with integer factor classes ``factors`` (N, F), or, when it needs
interventions, ``encode_mean`` (images -> (B, M) means) plus a `course_lib.dsprites.FactorGrid`
such as `DSprites`. Information is in nats. Which estimator gave a MIG must be said with it:
`mig` (20 bins, disentanglement_lib) and `mig_full_grid` (Chen et al. 2018) differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch



@dataclass
class MIGResult:
    """``score``: mean over factors of ``per_factor`` (F,); ``mi`` (M, F) in nats; ``entropies`` H(v_k) (F,).

    Introduced in: β-VAE and disentanglement.
    """

    score: float
    per_factor: torch.Tensor
    mi: torch.Tensor
    entropies: torch.Tensor


# ---------------------------------------------------------------- MIG, discretised (disentanglement_lib)
def discretize(codes: torch.Tensor, bins: int = 20) -> torch.Tensor:
    """Equal-width histogram bins over each latent's range: (N, M) -> (N, M) int64 in [0, bins).

    Introduced in: β-VAE and disentanglement. As ``np.digitize(z, np.histogram(z, bins)[1][:-1]) - 1``:
    bin b holds min + b w <= z < min + (b + 1) w with w = (max - min) / bins; the maximum goes to the last bin.
    """
    lo, hi = codes.min(0).values, codes.max(0).values                 # (M,)
    width = ((hi - lo) / bins).clamp_min(torch.finfo(codes.dtype).tiny)
    return ((codes - lo) / width).floor().long().clamp(0, bins - 1)   # b = floor((z - min) / w)


def _mutual_info(a: torch.Tensor, b: torch.Tensor) -> float:
    """I(a; b) = sum_ab p(a, b) log p(a, b) / (p(a) p(b)) for two (N,) integer arrays, in nats."""
    ka, kb = int(a.max()) + 1, int(b.max()) + 1
    p = torch.bincount(a * kb + b, minlength=ka * kb).view(ka, kb).double() / len(a)   # p(a, b)
    outer = p.sum(1, keepdim=True) * p.sum(0, keepdim=True)                           # p(a) p(b)
    nz = p > 0
    return float((p[nz] * (p[nz] / outer[nz]).log()).sum())


def discrete_mutual_info(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """I(a_j; b_k) for (N, M) and (N, F) integer arrays: (M, F) float64, nats.

    Introduced in: β-VAE and disentanglement.
    """
    a, b = a.long().cpu(), b.long().cpu()
    return torch.tensor([[_mutual_info(a[:, j], b[:, k]) for k in range(b.shape[1])] for j in range(a.shape[1])],
                        dtype=torch.float64)


def discrete_entropy(b: torch.Tensor) -> torch.Tensor:
    """H(b_k) = -sum_v p(v) log p(v) for each column of an (N, F) integer array: (F,) nats.

    Introduced in: β-VAE and disentanglement.
    """
    b = b.long().cpu()
    return torch.tensor([_mutual_info(b[:, k], b[:, k]) for k in range(b.shape[1])], dtype=torch.float64)


def mig_from_mi(mi: torch.Tensor, entropies: torch.Tensor) -> tuple[float, torch.Tensor]:
    """MIG from an (M, F) MI matrix and H(v_k) (F,): the mean of (1/H(v_k)) (I_(1)k - I_(2)k), and per factor.

    Introduced in: β-VAE and disentanglement. I_(1)k >= I_(2)k are the two largest values of
    column k (the two latents most informative about factor k).
    """
    mi, entropies = torch.as_tensor(mi, dtype=torch.float64), torch.as_tensor(entropies, dtype=torch.float64)
    if mi.dim() != 2 or mi.shape[0] < 2 or entropies.shape != mi.shape[1:]:
        raise ValueError(f"need mi (M >= 2, F), entropies (F,); got {tuple(mi.shape)}, {tuple(entropies.shape)}")
    if bool((entropies <= 0).any()):
        raise ValueError("a factor has zero entropy (it never varies): drop it before computing MIG")
    top = mi.sort(dim=0, descending=True).values                       # (M, F), each column sorted
    per_factor = (top[0] - top[1]) / entropies                         # (F,)
    return float(per_factor.mean()), per_factor


def mig(codes: torch.Tensor, factors: torch.Tensor, bins: int = 20) -> MIGResult:
    """Mutual Information Gap (Chen et al. 2018) with disentanglement_lib's estimator.

    Introduced in: β-VAE and disentanglement. Each latent mean is binned into ``bins``
    equal-width bins (`discretize`), then I(z_j; v_k) and H(v_k) are plug-in discrete estimates
    on the N given points (disentanglement_lib: N = 10,000 random images). With more than
    ``bins`` values a factor cannot reach MIG 1: log(bins) / log(K_k) bounds it.
    """
    mi, h = discrete_mutual_info(discretize(codes, bins), factors), discrete_entropy(factors)
    return MIGResult(*mig_from_mi(mi, h), mi, h)


# ---------------------------------------------------------------- MIG over the factor grid (Chen et al.)
def _log_mixture(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, max_elements: int) -> torch.Tensor:
    """log (1/N) sum_n N(z_sj; mean_nj, exp(logvar_nj)) for z (S, M), mean/logvar (N, M): (S, M)."""
    n, m = mean.shape
    mean_t, inv_var = mean.T.contiguous(), torch.exp(-logvar).T.contiguous()      # (M, N)
    const = (-0.5 * (math.log(2 * math.pi) + logvar)).T.contiguous()               # (M, N)
    out, step = [], max(1, max_elements // (n * m))
    for s in range(0, len(z), step):
        lp = z[s:s + step, :, None] - mean_t                                       # (s, M, N)
        lp.square_().mul_(inv_var).mul_(-0.5).add_(const)                          # log N(z; mean_n, var_n)
        out.append(torch.logsumexp(lp, dim=2) - math.log(n))
    return torch.cat(out)


def mig_full_grid(mean: torch.Tensor, logvar: torch.Tensor, factors: torch.Tensor, n_samples: int = 10_000,
                  generator: torch.Generator | None = None, max_elements: int = 2**24) -> MIGResult:
    """MIG with Chen et al.'s estimator: Gaussian posteriors q(z|x_n) marginalised over the given points.

    Introduced in: β-VAE and disentanglement. ``mean``, ``logvar`` (N, M): q(z|x_n) at every
    point of the factor grid (dSprites: all 737,280 images, or every combination of a subset of
    each factor's values); ``factors`` (N, F). With q(z_j) = (1/N) sum_n q(z_j|x_n) and
    q(z_j|v_k = v) the same mean over the points with v_k = v,
      I(z_j; v_k) = H(z_j) - H(z_j|v_k) = E_n E_{z ~ q(z|x_n)} [log q(z_j|v_k(n)) - log q(z_j)],
    from one draw z_s ~ q(z|x_s) at ``n_samples`` random points (all if n_samples >= N), clamped
    at 0; H(v_k) empirical (log K_k on a grid). Chen et al.'s code uses separate random draws for
    the two entropies; shared draws cancel most Monte Carlo noise. They drop dSprites' shape
    (pass ``factors[:, 1:]``). Cost ~ 2 n_samples N M densities: the full grid wants a GPU.
    """
    dtype = torch.float64 if mean.dtype == torch.float64 else torch.float32
    mean, logvar, factors = mean.to(dtype), logvar.to(dtype), factors.long().to(mean.device)
    dev = generator.device if generator is not None else mean.device
    pick = torch.randperm(len(mean), generator=generator, device=dev).to(mean.device)[:n_samples]   # (S,)
    eps = torch.randn(len(pick), mean.shape[1], generator=generator, device=dev, dtype=dtype).to(mean.device)
    z = mean[pick] + torch.exp(0.5 * logvar[pick]) * eps                       # z_s ~ q(z|x_s): (S, M)
    log_q = _log_mixture(z, mean, logvar, max_elements)                         # log q(z_sj): (S, M)
    mi = torch.zeros(mean.shape[1], factors.shape[1], dtype=torch.float64)      # (M, F)
    for k in range(factors.shape[1]):
        log_cond = torch.empty_like(log_q)                                      # log q(z_sj | v_k = v_k(s))
        for v in factors[pick, k].unique():
            group = factors[:, k] == v                                          # the N_v points with v_k = v
            mine = factors[pick, k] == v                                        # the draws that belong to them
            log_cond[mine] = _log_mixture(z[mine], mean[group], logvar[group], max_elements)
        mi[:, k] = (log_cond - log_q).mean(0).clamp_min(0).double().cpu()      # H(z_j) - H(z_j|v_k)
    h = discrete_entropy(factors)
    return MIGResult(*mig_from_mi(mi, h), mi, h)


from .metrics_more import (DCIResult, FactorVAEResult, dci, dci_from_importance, factor_vae_score,  # noqa: E402,F401
                           sample_codes)
