"""Disentanglement metrics beyond MIG: the FactorVAE score (interventions) and DCI (a regressor).

Introduced in: β-VAE and disentanglement. Re-exported by `course_lib.metrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Encoder = Callable[[torch.Tensor], torch.Tensor]   # images (B, ...) -> latent means (B, M)


# ---------------------------------------------------------------- FactorVAE score (Kim & Mnih 2018)
@torch.no_grad()
def _encode(encode_mean: Encoder, data, index: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    return torch.cat([encode_mean(data.images(i)) for i in index.split(batch_size)])


def sample_codes(encode_mean: Encoder, data, n: int = 10_000, generator: torch.Generator | None = None,
                 batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random points: latent means (n, M) and factor classes (n, F), ready for `mig` and `dci`.

    Introduced in: β-VAE and disentanglement.
    """
    index = data.sample_index(n, generator)
    return _encode(encode_mean, data, index, batch_size), data.factors(index)


@dataclass
class FactorVAEResult:
    """``score``: eval accuracy of the majority-vote classifier; votes are (F, M) counts of (factor, argmin latent).

    Introduced in: β-VAE and disentanglement.
    """

    score: float
    train_accuracy: float
    votes_train: torch.Tensor
    votes_eval: torch.Tensor
    majority: torch.Tensor       # (M,) the factor each latent votes for
    active: torch.Tensor         # (M,) latents kept (empirical std >= prune_std)


@torch.no_grad()
def factor_vae_score(encode_mean: Encoder, data, n_train: int = 10_000, n_eval: int = 5_000, batch_size: int = 64,
                     n_variance: int = 10_000, prune_std: float = 0.05,
                     generator: torch.Generator | None = None) -> FactorVAEResult:
    """The FactorVAE disentanglement score (Kim & Mnih 2018), as configured in disentanglement_lib.

    Introduced in: β-VAE and disentanglement. s_j^2: each latent's variance over ``n_variance``
    random images; latents with s_j < ``prune_std`` are dead and never chosen (disentanglement_lib's
    study configs: prune_dims.threshold = 0.05; its code default, 0, keeps all). One vote: pick a
    factor k at random, draw ``batch_size`` images that share a random value of v_k, and take
    j* = argmin_j Var_batch(z_j / s_j). The classifier maps each latent to the factor it got most
    training votes for; the score is its accuracy on ``n_eval`` fresh votes (chance: 1/F).
    """
    f_count, per_chunk = len(data.factor_sizes), max(1, 8192 // batch_size)
    global_var = _encode(encode_mean, data, data.sample_index(n_variance, generator)).var(0)   # s_j^2: (M,)
    active, m = global_var.sqrt() >= prune_std, global_var.numel()
    dev = generator.device if generator is not None else data.device

    def votes(n: int) -> torch.Tensor:
        counts = torch.zeros(f_count * m, dtype=torch.long)
        for start in range(0, n, per_chunk):
            v = min(per_chunk, n - start)
            k = torch.randint(f_count, (v,), generator=generator, device=dev).to(data.device)  # factor held fixed
            index = data.sample_fixed_factor(k, batch_size, generator)                   # (V, B)
            z = _encode(encode_mean, data, index.flatten()).view(v, batch_size, m)
            ratio = (z.var(1) / global_var).masked_fill(~active, math.inf)               # Var(z_j / s_j): (V, M)
            counts += torch.bincount((k * m + ratio.argmin(1)).cpu(), minlength=f_count * m)
        return counts.view(f_count, m)

    train = votes(n_train) if active.any() else torch.zeros(f_count, m, dtype=torch.long)
    majority = train.argmax(0)                                                           # (M,)

    def accuracy(c: torch.Tensor) -> float:                  # votes whose latent's majority factor is right
        return float(c[majority, torch.arange(m)].sum() / c.sum().clamp_min(1))

    evals = votes(n_eval) if active.any() else train
    return FactorVAEResult(accuracy(evals), accuracy(train), train, evals, majority, active.cpu())


# ---------------------------------------------------------------- DCI (Eastwood & Williams 2018)
def _ridge(x: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """argmin_W (1/2N) ||Y - X W||^2 + (lam/2) ||W||^2 = (X'X/N + lam I)^-1 X'Y/N for x (N, M), y (N, F): (M, F)."""
    gram = x.T @ x / len(x) + lam * torch.eye(x.shape[1], dtype=x.dtype)     # (M, M)
    return torch.linalg.solve(gram, x.T @ y / len(x))                       # (M, F)


def dci_from_importance(importance: torch.Tensor) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Disentanglement, completeness and their per-code (M,) and per-factor (F,) terms from R (M, F).

    Introduced in: β-VAE and disentanglement. P_jk = R_jk / sum_k R_jk; D_j = 1 - H_F(P_j.) with
    logs in base F; D = sum_j rho_j D_j with rho_j = sum_k R_jk / sum R. Completeness C_k = 1 -
    H_M(R_.k / sum_j R_jk), C = mean_k C_k (as Eastwood & Williams' code). All zero R: D = C = 0.
    """
    r = torch.as_tensor(importance, dtype=torch.float64).abs()
    m, f = r.shape
    if m < 2 or f < 2:
        raise ValueError(f"need at least 2 latents and 2 factors, got R of shape {tuple(r.shape)}")

    def one_minus_entropy(p: torch.Tensor, base: int) -> torch.Tensor:   # rows of p: 1 - H_base(p / sum p)
        total = p.sum(1, keepdim=True)
        q = torch.where(total > 0, p / total.clamp_min(1e-300), torch.full_like(p, 1 / p.shape[1]))
        return 1 + (q * q.clamp_min(1e-300).log()).sum(1) / math.log(base)

    per_code, per_factor = one_minus_entropy(r, f), one_minus_entropy(r.T, m)
    if float(r.sum()) == 0:
        return 0.0, 0.0, per_code, per_factor
    rho = r.sum(1) / r.sum()                                             # relative importance of each latent
    return float((rho * per_code).sum()), float(per_factor.mean()), per_code, per_factor


@dataclass
class DCIResult:
    """D, C and informativeness (mean test NRMSE: 0 = perfect prediction, 1 = predicting the mean).

    Introduced in: β-VAE and disentanglement.
    """

    disentanglement: float
    completeness: float
    informativeness: float
    importance: torch.Tensor     # (M, F) |regression weights| on standardised data
    per_code: torch.Tensor       # (M,) D_j
    per_factor: torch.Tensor     # (F,) C_k
    errors: torch.Tensor         # (F,) test NRMSE per factor


def dci(codes: torch.Tensor, factors: torch.Tensor, ridge: float = 0.01, train_fraction: float = 0.8) -> DCIResult:
    """DCI (Eastwood & Williams 2018) with a linear regressor: importance R_jk = |W_jk|.

    Introduced in: β-VAE and disentanglement. Codes and classes are standardised with the
    training rows' statistics (the first ``train_fraction``); W = (X'X/N + ridge I)^-1 X'Y/N.
    Linear like Eastwood & Williams' Lasso, in closed form (no scikit-learn, a known answer to
    test). Not L1: its threshold (their alpha = 0.02) zeroes the chance weights of an uninformative
    code but for one or two, and D jumps to 1 (measured on pure noise); ridge spreads them, D ~ 0.1.
    Being linear, it misses a factor coded non-monotonically (orientation as sin and cos).
    """
    x, y = codes.double().cpu(), factors.double().cpu()
    cut = math.ceil(len(x) * train_fraction)
    if cut >= len(x):
        raise ValueError("train_fraction leaves no test points")
    mx, sx, my, sy = x[:cut].mean(0), x[:cut].std(0), y[:cut].mean(0), y[:cut].std(0)
    x = (x - mx) / torch.where(sx > 0, sx, torch.ones_like(sx)) * (sx > 0)   # constant latents become 0
    y = (y - my) / torch.where(sy > 0, sy, torch.ones_like(sy))
    w = _ridge(x[:cut], y[:cut], ridge)                                    # (M, F)
    errors = ((x[cut:] @ w - y[cut:]) ** 2).mean(0).sqrt() / y[cut:].std(0).clamp_min(1e-12)
    d, c, per_code, per_factor = dci_from_importance(w.abs())
    return DCIResult(d, c, float(errors.mean()), w.abs(), per_code, per_factor, errors)
