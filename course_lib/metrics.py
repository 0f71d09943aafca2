"""Disentanglement metrics, written from the papers: MIG (two estimators), FactorVAE score, DCI.

Introduced in: β-VAE and disentanglement. Everything is model-agnostic: a metric takes latent
means ``codes`` (N, M) with integer factor classes ``factors`` (N, F), or, when it needs
interventions, ``encode_mean`` (images -> (B, M) means) plus a `course_lib.dsprites.FactorGrid`
such as `DSprites`. Information is in nats. Which estimator gave a MIG must be said with it:
`mig` (20 bins, disentanglement_lib) and `mig_full_grid` (Chen et al. 2018) differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .exercises import ExerciseError, check_close

Encoder = Callable[[torch.Tensor], torch.Tensor]   # images (B, ...) -> latent means (B, M)


@dataclass
class MIGResult:
    """``score``: mean over factors of ``per_factor`` (F,); ``mi`` (M, F) in nats; ``entropies`` H(v_k) (F,)."""

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
    """I(a_j; b_k) for (N, M) and (N, F) integer arrays: (M, F) float64, nats."""
    a, b = a.long().cpu(), b.long().cpu()
    return torch.tensor([[_mutual_info(a[:, j], b[:, k]) for k in range(b.shape[1])] for j in range(a.shape[1])],
                        dtype=torch.float64)


def discrete_entropy(b: torch.Tensor) -> torch.Tensor:
    """H(b_k) = -sum_v p(v) log p(v) for each column of an (N, F) integer array: (F,) nats."""
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


# ---------------------------------------------------------------- FactorVAE score (Kim & Mnih 2018)
@torch.no_grad()
def _encode(encode_mean: Encoder, data, index: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    return torch.cat([encode_mean(data.images(i)) for i in index.split(batch_size)])


def sample_codes(encode_mean: Encoder, data, n: int = 10_000, generator: torch.Generator | None = None,
                 batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random points: latent means (n, M) and factor classes (n, F), ready for `mig` and `dci`."""
    index = data.sample_index(n, generator)
    return _encode(encode_mean, data, index, batch_size), data.factors(index)


@dataclass
class FactorVAEResult:
    """``score``: eval accuracy of the majority-vote classifier; votes are (F, M) counts of (factor, argmin latent)."""

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
    """D, C and informativeness (mean test NRMSE: 0 = perfect prediction, 1 = predicting the mean)."""

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


# ---------------------------------------------------------------- exercise
def check_mig(your_mig: Callable[[torch.Tensor, torch.Tensor], float]) -> None:
    """Check ``your_mig(mi, entropies)``: MI matrix (M, F) and H(v_k) (F,) -> MIG; names the usual slips.

    Introduced in: β-VAE and disentanglement.
    """
    answers, expected = [], []
    for mi in (torch.tensor([[0.69, 0.0], [0.21, 0.21], [0.0, 0.0]]),
               torch.tensor([[1.2, 0.1, 0.4], [0.3, 0.9, 0.5], [0.2, 0.8, 0.1], [1.0, 0.0, 0.3]])):
        h = mi.max(0).values + 0.3                                        # entropies above every MI
        answer, right = your_mig(mi.clone(), h.clone()), mig_from_mi(mi, h)[0]
        if answer is None:
            raise ExerciseError("your_mig returned None: did you forget to `return` it?")
        top = mi.sort(0, descending=True).values                          # each factor's column sorted
        slips = {"divide each gap by its factor's entropy H(v_k)": (top[0] - top[1]).mean(),
                 "the gap is to the second-largest MI, not the smallest": ((top[0] - top[-1]) / h).mean(),
                 "average the gaps over factors (you summed them)": ((top[0] - top[1]) / h).sum()}
        for hint, wrong in slips.items():
            if abs(float(answer) - float(wrong)) < 1e-6 < abs(float(wrong) - right):
                raise ExerciseError(f"your MIG is {float(answer):.4g}, expected {right:.4g}: {hint}")
        answers.append(float(answer)), expected.append(right)
    check_close(torch.tensor(answers), torch.tensor(expected), "your MIG")
