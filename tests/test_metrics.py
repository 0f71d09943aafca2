"""Disentanglement metrics on synthetic codes with known answers (no model, no images)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib import metrics
from course_lib.dsprites import FACTOR_SIZES
from course_lib.exercises.disentanglement import check_mig
from course_lib import metrics_more
from course_lib.factors import FactorGrid
from course_lib.exercises import ExerciseError

SMALL = (3, 4, 8, 6, 6)     # a stratified dSprites-like grid, small enough for the full-grid estimator on a CPU


class Toy(FactorGrid):
    """A factor grid whose 'image' is its factor classes, so an encoder is any function of them."""

    def images(self, index: torch.Tensor) -> torch.Tensor:
        return self.factors(index).float()


def aligned(classes: torch.Tensor, sizes: tuple[int, ...], g: torch.Generator, noise: float = 0.002) -> torch.Tensor:
    """z_k = v_k / (K_k - 1) + noise: one latent per factor, in [0, 1]."""
    return classes.float() / (torch.tensor(sizes).float() - 1) + noise * torch.randn(classes.shape, generator=g)


def rotation(m: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(m, m, generator=torch.Generator().manual_seed(seed)))
    return q


def standardise(z: torch.Tensor) -> torch.Tensor:
    return (z - z.mean(0)) / z.std(0)


@pytest.fixture(scope="module")
def sample() -> tuple[torch.Tensor, torch.Tensor]:
    """10,000 random dSprites factor tuples (as disentanglement_lib draws for MIG) and aligned codes."""
    g = torch.Generator().manual_seed(0)
    grid = Toy(FACTOR_SIZES)
    factors = grid.factors(grid.sample_index(10_000, g))
    return aligned(factors, FACTOR_SIZES, g), factors


# ---------------------------------------------------------------- MIG, discretised
def test_bins_are_disentanglement_libs_equal_width_histogram() -> None:
    codes = torch.randn(1000, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) ** 3
    ours = metrics.discretize(codes, 20).numpy()
    for j in range(3):
        x = codes[:, j].numpy()
        assert np.array_equal(ours[:, j], np.digitize(x, np.histogram(x, 20)[1][:-1]) - 1)
    assert metrics.discretize(torch.ones(5, 1)).unique().tolist() == [0]   # a constant latent: one bin


def test_mig_by_hand_on_four_points() -> None:
    # v1 = (0,0,1,1), v2 = (0,1,0,1); z1 = v1, z2 = v1 AND v2, z3 constant.
    # I(z1;v1) = log 2, I(z1;v2) = 0, I(z2;v1) = I(z2;v2) = H(1/4) - (1/2) log 2 =: i, I(z3;.) = 0;
    # H(v) = log 2, so MIG_1 = 1 - i/log 2, MIG_2 = i/log 2, mean 1/2.
    factors = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    codes = torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, 0.5], [1.0, 0.0, 0.5], [1.0, 1.0, 0.5]])
    i = 2 * math.log(2) - 0.75 * math.log(3) - 0.5 * math.log(2)
    result = metrics.mig(codes, factors)
    expected_mi = torch.tensor([[math.log(2), 0.0], [i, i], [0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(result.mi, expected_mi, atol=1e-12)
    assert torch.allclose(result.entropies, torch.full((2,), math.log(2), dtype=torch.float64))
    assert torch.allclose(result.per_factor, torch.tensor([1 - i / math.log(2), i / math.log(2)], dtype=torch.float64))
    assert result.score == pytest.approx(0.5, abs=1e-12)


def test_the_exercise_checker_names_the_slips(capsys) -> None:
    check_mig(lambda mi, h: metrics.mig_from_mi(mi, h)[0])
    assert "Correct" in capsys.readouterr().out
    top2 = lambda mi: mi.sort(0, descending=True).values[:2]                      # noqa: E731
    with pytest.raises(ExerciseError, match="divide each gap"):
        check_mig(lambda mi, h: float((top2(mi)[0] - top2(mi)[1]).mean()))
    with pytest.raises(ExerciseError, match="second-largest"):
        check_mig(lambda mi, h: float(((mi.max(0).values - mi.min(0).values) / h).mean()))
    with pytest.raises(ExerciseError, match="return"):
        check_mig(lambda mi, h: None)


def test_binned_mig_aligned_rotated_and_noise(sample) -> None:
    codes, factors = sample
    result = metrics.mig(codes, factors)
    print(f"\nbinned MIG (20 bins, dSprites factor sizes, N = 10,000): aligned {result.score:.3f}, "
          f"per factor {[round(v, 3) for v in result.per_factor.tolist()]}")
    assert result.score >= 0.85
    assert bool((result.per_factor[:2] > 0.95).all())                            # <= 20 values: nothing lost
    cap = torch.tensor([math.log(20) / math.log(k) for k in FACTOR_SIZES[2:]], dtype=torch.float64)
    assert bool((result.per_factor[2:] <= cap + 1e-9).all())                     # > 20 values: log 20 / log K
    rotated = metrics.mig(standardise(codes) @ rotation(5), factors).score
    noise = metrics.mig(torch.randn(codes.shape, generator=torch.Generator().manual_seed(2)), factors).score
    print(f"binned MIG: rotated {rotated:.3f}, noise {noise:.4f}")
    assert rotated < 0.2 and noise < 0.02


# ---------------------------------------------------------------- MIG over the full grid
def test_full_grid_mig_and_agreement_with_the_binned_estimator() -> None:
    g = torch.Generator().manual_seed(3)
    factors = Toy(SMALL).factors(torch.arange(math.prod(SMALL)))                 # every grid point
    mean = aligned(factors, SMALL, g)
    cases = {"aligned": (mean, math.log(0.005**2)),
             "rotated": (standardise(mean) @ rotation(5) * 0.2, math.log(0.005**2)),
             "collapsed": (torch.randn(mean.shape, generator=g), 0.0)}           # q(z|x) = N(m_n, 1), m_n noise
    scores = {}
    for name, (m, logvar) in cases.items():
        full = metrics.mig_full_grid(m, torch.full_like(m, logvar), factors, n_samples=1000, generator=g)
        scores[name] = (full.score, metrics.mig(m, factors).score)
    print("\nMIG full grid vs 20 bins:", {k: tuple(round(v, 3) for v in s) for k, s in scores.items()})
    assert scores["aligned"][0] > 0.9 and abs(scores["aligned"][0] - scores["aligned"][1]) < 0.03
    assert scores["rotated"][0] < 0.25 and scores["collapsed"][0] < 0.02


def test_full_grid_mi_matches_numerical_integration() -> None:
    # one factor v uniform on K = 8 values, z_0 | v ~ N(v / 7, (1/7)^2), z_1 ~ N(0, 1) carries nothing:
    # I(z_0; v) = H(z_0) - (1/2) log(2 pi e sigma^2), with H(z_0) of the mixture by quadrature
    k, repeats, sigma = 8, 400, 1 / 7
    v = torch.arange(k).repeat_interleave(repeats)
    mean = torch.stack([v / (k - 1), torch.zeros(len(v))], 1).double()
    logvar = torch.stack([torch.full((len(v),), 2 * math.log(sigma)), torch.zeros(len(v))], 1).double()
    z = torch.linspace(-1.5, 2.5, 20_001, dtype=torch.float64)
    density = torch.exp(-0.5 * ((z[:, None] - torch.arange(k) / (k - 1)) / sigma) ** 2).mean(1) / (sigma * math.sqrt(2 * math.pi))
    truth = float(-torch.trapezoid(density * density.log(), z) - 0.5 * math.log(2 * math.pi * math.e * sigma**2))
    result = metrics.mig_full_grid(mean, logvar, v[:, None], n_samples=len(v), generator=torch.Generator().manual_seed(6))
    assert float(result.mi[0, 0]) == pytest.approx(truth, abs=0.04) and float(result.mi[1, 0]) < 0.01


# ---------------------------------------------------------------- FactorVAE score
def test_factor_vae_score_aligned_is_one_and_noise_is_chance() -> None:
    g = torch.Generator().manual_seed(4)
    grid = Toy(FACTOR_SIZES)
    scales = torch.tensor([1.0, 10.0, 0.5, 3.0, 0.3])   # unnormalised, a fixed z_1 (noise 0.5) varies more than a free z_4
    def encode(x: torch.Tensor) -> torch.Tensor:
        z = aligned(x.long(), FACTOR_SIZES, g, noise=0.05) * scales
        return torch.cat([z, torch.full((len(x), 1), 0.7)], 1)                    # + a dead (constant) latent
    kw = dict(n_train=2000, n_eval=1000, n_variance=5000, generator=g)
    result = metrics.factor_vae_score(encode, grid, **kw)
    assert result.score == 1.0 and result.active.tolist() == [True] * 5 + [False]
    assert result.majority[:5].tolist() == [0, 1, 2, 3, 4]
    noise = metrics.factor_vae_score(lambda x: torch.randn(len(x), 5, generator=g), grid, **kw).score
    print(f"\nFactorVAE score: aligned {result.score:.3f}, noise {noise:.3f} (chance 1/5)")
    assert abs(noise - 1 / 5) < 0.06


# ---------------------------------------------------------------- DCI
def test_dci_from_hand_made_importance_matrices() -> None:
    d, c, _, _ = metrics.dci_from_importance(torch.eye(3))
    assert (d, c) == (pytest.approx(1.0), pytest.approx(1.0))
    d, c, _, _ = metrics.dci_from_importance(torch.ones(3, 3))
    assert (d, c) == (pytest.approx(0.0, abs=1e-12), pytest.approx(0.0, abs=1e-12))
    # latent 0 explains both factors, latent 1 nothing: not disentangled, but complete
    d, c, per_code, per_factor = metrics.dci_from_importance(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert d == pytest.approx(0.0, abs=1e-12) and c == pytest.approx(1.0)
    # rows (1, 3) and (0, 1): D_0 = 1 - H_2(1/4, 3/4), D_1 = 1, rho = (4/5, 1/5)
    d, _, _, _ = metrics.dci_from_importance(torch.tensor([[1.0, 3.0], [0.0, 1.0]]))
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert d == pytest.approx(0.8 * (1 - h) + 0.2)
    # 3 latents, 2 factors: D_j uses logs in base F = 2, C_k in base M = 3
    d, c, _, _ = metrics.dci_from_importance(torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    assert d == pytest.approx(0.5 * 0 + 0.25 * 1 + 0.25 * 1) and c == pytest.approx(1 - math.log(2) / math.log(3))


def test_ridge_has_its_closed_form_on_orthogonal_inputs() -> None:
    x = torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=torch.float64)   # X'X / N = I
    y = x @ torch.tensor([[2.0, 0.0], [0.5, -1.0]], dtype=torch.float64)
    assert torch.allclose(metrics_more._ridge(x, y, 0.25), torch.tensor([[2.0, 0.0], [0.5, -1.0]], dtype=torch.float64) / 1.25)


def test_dci_aligned_rotated_and_noise(sample) -> None:
    codes, factors = sample
    good = metrics.dci(codes, factors)
    rotated = metrics.dci(standardise(codes) @ rotation(5), factors)
    noise = metrics.dci(torch.randn(codes.shape, generator=torch.Generator().manual_seed(5)), factors)
    print(f"\nDCI disentanglement: aligned {good.disentanglement:.3f}, rotated {rotated.disentanglement:.3f}, "
          f"noise {noise.disentanglement:.3f}; informativeness (NRMSE) {good.informativeness:.3f}, "
          f"{rotated.informativeness:.3f}, {noise.informativeness:.3f}")
    assert good.disentanglement > 0.95 and good.completeness > 0.95 and good.informativeness < 0.05
    assert rotated.disentanglement < 0.4 and rotated.informativeness < 0.05     # same information, mixed
    assert noise.disentanglement < 0.25 and noise.informativeness > 0.95
