"""Tests of course_lib.autoencoders: linear AE = PCA, PPCA (closed form, EM), conv AE, checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from course_lib import Trainer, checkpoint, load, runs
from course_lib.exercises import ExerciseError
from course_lib.exercises import autoencoders as checks
from course_lib.models import autoencoder as ae
from course_lib.models import linear
from course_lib.runs.autoencoders import LinearAETrain, fit_linear_ae
from helpers import finished_record


def low_rank_data(n: int = 400, d: int = 784, k: int = 3, noise: float = 0.02, seed: int = 0) -> torch.Tensor:
    """x = z B + 0.5 + noise, with a clear k-dimensional principal subspace (variances 9, 4, 1)."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, k, generator=gen))[0].T              # (k, d) orthonormal rows
    z = torch.randn(n, k, generator=gen) * torch.tensor([3.0, 2.0, 1.0][:k])
    return z @ basis + 0.5 + noise * torch.randn(n, d, generator=gen)


# ----------------------------------------------------------------------------- shapes and objectives
def test_conv_autoencoder_shapes():
    model = ae.ConvAutoencoder(ae.ConvAEConfig(latent=4, channels=4))
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        z = model.encode(x)
        x_hat = model.decode(z)
    assert z.shape == (5, 4)
    assert x_hat.shape == (5, 1, 28, 28) and float(x_hat.min()) >= 0 and float(x_hat.max()) <= 1


def test_linear_autoencoder_shapes():
    model = linear.LinearAutoencoder(torch.zeros(784), 3, (1, 28, 28))
    x = torch.rand(6, 1, 28, 28)
    assert model.encode(x).shape == (6, 3) and model(x).shape == (6, 1, 28, 28)


def test_objectives_keys_and_noise_parameter():
    torch.manual_seed(0)
    model = ae.ConvAutoencoder(ae.ConvAEConfig(latent=4, channels=4))
    x = torch.rand(8, 1, 28, 28)
    plain = ae.reconstruction_loss(model, x)
    assert set(plain) == {"loss", "distortion"} and plain["loss"].dim() == 0
    expected = (model(x) - x).pow(2).sum((1, 2, 3)).mean()
    torch.testing.assert_close(plain["loss"], expected)
    torch.testing.assert_close(ae.denoising_loss(model, x, noise=0.0)["loss"], plain["loss"])
    noisy = ae.denoising_loss(model, x, noise=0.5)["loss"]
    assert not torch.allclose(noisy, plain["loss"])
    assert plain["loss"].requires_grad


def test_corrupt_stays_in_unit_interval():
    x = torch.rand(4, 1, 28, 28)
    y = ae.corrupt(x, 0.5)
    assert float(y.min()) >= 0 and float(y.max()) <= 1 and not torch.equal(x, y)
    assert ae.corrupt(x, 0.0) is x


# ----------------------------------------------------------------------------- PCA, angles
def test_principal_angles_against_qr_svd():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(30, 4, generator=gen, dtype=torch.float64), torch.randn(30, 3, generator=gen, dtype=torch.float64)
    cos = torch.linalg.svdvals(torch.linalg.qr(a)[0].T @ torch.linalg.qr(b)[0])
    angles = linear.principal_angles(a, b)
    torch.testing.assert_close(angles, torch.arccos(cos.clamp(-1, 1)).flip(0))
    assert angles[0] >= angles[-1]
    # the same span in another basis: all angles zero
    g = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    assert float(linear.principal_angles(a, a @ g).max()) < 1e-6


def test_pca_recovers_planted_subspace():
    x = low_rank_data()
    mean, comps, variances = linear.pca(x, 3)
    assert comps.shape == (3, 784) and variances.shape == (3,)
    torch.testing.assert_close(comps @ comps.T, torch.eye(3), atol=1e-5, rtol=0)
    assert variances[0] > variances[1] > variances[2]


def test_linear_autoencoder_finds_pca_subspace():
    data = load("mnist", "train", limit=2000)  # real digits: a well-separated 9-dim principal subspace
    _, comps, _ = linear.pca(data.x.flatten(1), 9)
    config = LinearAETrain(latent=9, epochs=40, batch_size=100)
    model, angles = fit_linear_ae(data, config, reference=comps.T)
    assert len(angles) == config.epochs + 1
    assert angles[0] > 80 and angles[-1] < 5.0, angles[-1]
    # the decoder's span is PCA's, its basis is not
    cosines = (torch.nn.functional.normalize(model.decoder.weight.detach(), dim=0).T @ comps.T).abs()
    assert float(cosines.max(1).values.min()) < 0.99


def test_empty_fraction():
    gen = torch.Generator().manual_seed(0)
    uniform = torch.rand(20_000, 2, generator=gen)
    assert linear.empty_fraction(uniform, bins=20) < 0.01
    two_corners = torch.cat([torch.rand(1000, 2, generator=gen) * 0.1, 0.9 + torch.rand(1000, 2, generator=gen) * 0.1])
    assert linear.empty_fraction(two_corners, bins=20) > 0.9


# ----------------------------------------------------------------------------- PPCA
def test_ppca_closed_form_matches_full_gaussian_and_is_a_maximum():
    x = low_rank_data(n=300, d=20, noise=0.3)
    model = linear.ppca_closed_form(x, 3)
    cov = model.weight @ model.weight.T + model.sigma2 * torch.eye(20, dtype=torch.float64)
    full = torch.distributions.MultivariateNormal(model.mean, covariance_matrix=cov)
    exact = full.log_prob(x.double()).mean().item()
    assert model.log_likelihood(x) == pytest.approx(exact, abs=1e-8)
    # sigma^2 = mean of the discarded eigenvalues of S (1/N covariance)
    lam = torch.linalg.eigvalsh(torch.cov(x.double().T, correction=0)).flip(0)
    assert float(model.sigma2) == pytest.approx(float(lam[3:].mean()), rel=1e-8)
    # moments formula = pass over the data
    xc = x.double() - x.double().mean(0)
    assert model.log_likelihood_from_moments(x.double().mean(0), xc.T @ xc / len(x)) == pytest.approx(exact, abs=1e-8)
    # a maximum: perturbing sigma^2 or W lowers the likelihood
    for s2, w in ((model.sigma2 * 1.1, model.weight), (model.sigma2 * 0.9, model.weight),
                  (model.sigma2, model.weight * 1.05)):
        assert linear.PPCA(model.mean, w, s2).log_likelihood(x) < exact


def test_ppca_em_is_monotone_and_reaches_closed_form():
    x = low_rank_data(n=300, d=20, noise=0.3)
    closed = linear.ppca_closed_form(x, 3)
    em, trace = linear.ppca_em(x, 3, iterations=300)
    assert len(trace) == 301
    assert np.diff(trace).min() > -1e-9
    assert trace[-1] == pytest.approx(closed.log_likelihood(x), abs=1e-3)
    assert float(linear.principal_angles(em.weight, closed.weight).max()) < 1e-3


# ----------------------------------------------------------------------------- training and checkpoints
def test_one_trainer_step_lowers_loss():
    torch.manual_seed(0)
    model = ae.ConvAutoencoder(ae.ConvAEConfig(latent=4, channels=4))
    x = torch.rand(16, 1, 28, 28)
    before = ae.reconstruction_loss(model, x)["loss"].item()
    Trainer(model, ae.reconstruction_loss, lr=1e-2, progress=False, verbose=False).fit([x], epochs=1)
    assert ae.reconstruction_loss(model, x)["loss"].item() < before


def test_save_load_round_trip(tmp_path):
    config = ae.ConvAEConfig(latent=4, channels=4)
    model = ae.ConvAutoencoder(config)
    checkpoint.save_checkpoint(tmp_path / "ae", model, finished_record(config))
    other = ae.ConvAutoencoder(config)
    checkpoint.load_checkpoint(tmp_path / "ae", other, expect_hash=checkpoint.config_hash(config))
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(other(x), model(x))
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load_checkpoint(tmp_path / "ae", ae.ConvAutoencoder(ae.ConvAEConfig(latent=8, channels=4)))


def test_shipped_models_are_registered_and_small():
    for name, run in runs.autoencoders.SHIPPED.items():
        assert runs.get(name) is run and run.family == "autoencoder"
        params = sum(p.numel() for p in ae.ConvAutoencoder(run.model).parameters())
        assert params * 4 < 2_000_000


# ----------------------------------------------------------------------------- exercise checks
def test_check_principal_angles():
    checks.check_principal_angles(lambda a, b: linear.principal_angles(a, b))
    with pytest.raises(ExerciseError, match="None"):
        checks.check_principal_angles(lambda a, b: None)
    with pytest.raises(ExerciseError, match="increasing order"):
        checks.check_principal_angles(lambda a, b: linear.principal_angles(a, b).flip(0))
    with pytest.raises(ExerciseError, match="degrees"):
        checks.check_principal_angles(lambda a, b: linear.principal_angles(a, b).rad2deg())
    with pytest.raises(ExerciseError, match="factor"):
        checks.check_principal_angles(lambda a, b: 0.5 * linear.principal_angles(a, b))


def test_check_ppca_sigma2():
    checks.check_ppca_sigma2(lambda x, q: linear.ppca_closed_form(x, q).sigma2)

    def wrong_divisor(x, q):  # sum of discarded eigenvalues over D instead of D - q
        lam = torch.linalg.eigvalsh(torch.cov(x.T, correction=0))
        return lam[: x.shape[1] - q].sum() / x.shape[1]

    with pytest.raises(ExerciseError, match="divided by D instead of D - q"):
        checks.check_ppca_sigma2(wrong_divisor)
    with pytest.raises(ExerciseError, match="1/\\(N-1\\)"):
        checks.check_ppca_sigma2(lambda x, q: torch.linalg.eigvalsh(torch.cov(x.T)).flip(0)[q:].mean())
    with pytest.raises(ExerciseError, match="None"):
        checks.check_ppca_sigma2(lambda x, q: None)
