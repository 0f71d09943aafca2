"""Tests for course_lib.vi.estimators and course_lib.vi.logistic (chapter: Black-box VI)."""

import math

import pytest
import torch

from course_lib.exercises import bbvi as bbvi_checks
from torch.distributions import MultivariateNormal, kl_divergence

from course_lib.exercises import ExerciseError
from course_lib.vi import estimators as est
from course_lib.vi import kl_full_gaussian
from course_lib.vi import logistic

DT = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and much faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_regression(n: int = 30, seed: int = 0) -> est.LinearRegression:
    gen = torch.Generator().manual_seed(seed)
    x = 3 * torch.rand(n, generator=gen, dtype=DT) - 1
    X = torch.stack([torch.ones(n, dtype=DT), x], 1)
    y = X @ torch.tensor([0.5, -1.0], dtype=DT) + 0.5 * torch.randn(n, generator=gen, dtype=DT)
    return est.LinearRegression(X, y, noise_std=0.5, prior_std=1.0)


MODEL = small_regression()
MU = torch.tensor([0.2, -0.3], dtype=DT)
LOG_SIGMA = torch.tensor([-1.0, -1.5], dtype=DT)
ESTIMATORS = {
    "score": (est.score_function_grad, MODEL.log_joint),
    "score_rb": (est.score_function_grad_rb, MODEL.log_joint_terms),
    "score_baseline": (est.score_function_grad_baseline, MODEL.log_joint),
    "reparam": (est.reparam_grad, MODEL.log_joint),
}


def draws(repeats: int, samples: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(repeats, samples, 2, generator=torch.Generator().manual_seed(seed), dtype=DT)


def test_closed_form_elbo_matches_monte_carlo():
    z = MU + LOG_SIGMA.exp() * draws(1, 200_000)[0]
    mc = MODEL.log_joint(z) - est.diag_gaussian(MU, LOG_SIGMA).log_prob(z)
    assert abs(float(mc.mean() - MODEL.elbo(MU, LOG_SIGMA))) < 4 * float(mc.std()) / math.sqrt(len(mc))


def test_exact_posterior_is_the_elbo_maximiser_among_diagonal_gaussians():
    mean, cov = MODEL.posterior()
    # against the textbook formula, computed another way (scipy-free): solve the normal equations
    precision = MODEL.X.T @ MODEL.X / 0.25 + torch.eye(2, dtype=DT)
    assert torch.allclose(mean, torch.linalg.solve(precision, MODEL.X.T @ MODEL.y / 0.25))
    mu, ls = MODEL.mean_field_optimum()
    assert torch.allclose(MODEL.elbo_grad(mu, ls), torch.zeros(2, 2, dtype=DT), atol=1e-9)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_is_unbiased(name):
    fn, log_joint = ESTIMATORS[name]
    grads = fn(log_joint, MU, LOG_SIGMA, draws(4000, 8))          # (R, 2, D)
    assert grads.shape == (4000, 2, 2)
    exact = MODEL.elbo_grad(MU, LOG_SIGMA)
    stderr = grads.std(0) / math.sqrt(grads.shape[0])
    z_scores = (grads.mean(0) - exact) / stderr
    assert z_scores.abs().max() < 4.5, f"{name}: mean off by {z_scores} standard errors"


def test_a_biased_estimator_would_fail_the_unbiasedness_check():
    # a classic slip: the score of log sigma written eps^2 instead of eps^2 - 1
    eps = draws(4000, 8)
    z = MU + LOG_SIGMA.exp() * eps
    f = MODEL.log_joint(z) - est.diag_gaussian(MU, LOG_SIGMA).log_prob(z)
    grads = (f[..., None] * eps**2).mean(-2)                      # (R, D), d/dlog_sigma only
    exact = MODEL.elbo_grad(MU, LOG_SIGMA)[1]
    z_scores = (grads.mean(0) - exact) / (grads.std(0) / math.sqrt(4000))
    assert z_scores.abs().max() > 4.5


def test_variance_ordering():
    eps = draws(2000, 8, seed=1)
    var = {name: fn(lj, MU, LOG_SIGMA, eps).var(0) for name, (fn, lj) in ESTIMATORS.items()}
    assert (var["reparam"] < var["score"]).all()
    assert (var["score_baseline"] < var["score"]).all()
    assert (var["score_rb"] < var["score"]).all()
    assert (var["reparam"] < var["score_baseline"]).all()


def test_estimators_accept_a_single_batch_of_draws():
    eps = draws(1, 16)[0]                                           # (S, D), no repeat dimension
    for fn, lj in ESTIMATORS.values():
        assert fn(lj, MU, LOG_SIGMA, eps).shape == (2, 2)
    with pytest.raises(ValueError):
        est.score_function_grad_baseline(MODEL.log_joint, MU, LOG_SIGMA, eps[:1])


def test_minibatch_log_likelihood_is_unbiased():
    w = torch.tensor([0.3, -0.8], dtype=DT)
    n = MODEL.X.shape[0]
    subsets = [torch.arange(i, i + 5) for i in range(0, n, 5)]        # a partition into 6 batches
    mean_of_batches = torch.stack([MODEL.log_likelihood(w, idx) for idx in subsets]).mean()
    assert torch.allclose(mean_of_batches, MODEL.log_likelihood(w))


def test_full_gaussian_kl_matches_torch():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 3, generator=gen, dtype=DT), torch.randn(3, 3, generator=gen, dtype=DT)
    cov_q, cov_p = a @ a.T + 0.5 * torch.eye(3, dtype=DT), b @ b.T + 0.5 * torch.eye(3, dtype=DT)
    m_q, m_p = torch.randn(3, generator=gen, dtype=DT), torch.randn(3, generator=gen, dtype=DT)
    ours = kl_full_gaussian(m_q, cov_q, m_p, cov_p)
    ref = kl_divergence(MultivariateNormal(m_q, cov_q), MultivariateNormal(m_p, cov_p))
    assert torch.allclose(ours, ref)
    assert float(kl_full_gaussian(m_q, cov_q, m_q, cov_q)) == pytest.approx(0.0, abs=1e-12)


def test_fisher_is_the_hessian_of_the_kl():
    mu, ls = torch.tensor([0.3, -1.0], dtype=DT), torch.tensor([-0.7, 0.4], dtype=DT)

    def kl(theta):
        return kl_divergence(est.diag_gaussian(mu, ls), est.diag_gaussian(theta[0], theta[1]))

    hess = torch.autograd.functional.hessian(kl, torch.stack([mu, ls]))     # (2, D, 2, D)
    fisher = est.gaussian_fisher_diag(ls)
    for i in range(2):
        for j in range(2):
            assert torch.allclose(hess[i, j, i, j], fisher[i, j])
    assert torch.allclose(hess[0, :, 1, :], torch.zeros(2, 2, dtype=DT), atol=1e-12)


def test_natural_gradient_step_small_lr_is_fisher_preconditioned():
    grad = MODEL.elbo_grad(MU, LOG_SIGMA)
    lr = 1e-6
    mu1, ls1 = est.natural_gradient_step(MU, LOG_SIGMA, grad, lr)
    direction = torch.stack([mu1 - MU, ls1 - LOG_SIGMA]) / lr
    assert torch.allclose(direction, est.natural_gradient(grad, LOG_SIGMA), rtol=1e-4)


def test_natural_gradient_step_lands_in_one_step_on_a_diagonal_gaussian_target():
    b, lam = torch.tensor([1.0, -2.0, 0.5], dtype=DT), torch.tensor([4.0, 0.5, 10.0], dtype=DT)

    def elbo(mu, ls):                      # E_q[log N(z | b, 1/lam)] + H[q], up to a constant
        return (-0.5 * lam * ((mu - b) ** 2 + torch.exp(2 * ls))).sum() + ls.sum()

    mu = torch.zeros(3, dtype=DT, requires_grad=True)
    ls = torch.zeros(3, dtype=DT, requires_grad=True)
    grad = torch.stack(torch.autograd.grad(elbo(mu, ls), (mu, ls)))
    new_mu, new_ls = est.natural_gradient_step(mu.detach(), ls.detach(), grad, lr=1.0)
    assert torch.allclose(new_mu, b)
    assert torch.allclose(torch.exp(-2 * new_ls), lam)
    # a plain gradient step of size 1 does not land there
    assert not torch.allclose(mu.detach() + grad[0], b)


def test_natural_gradient_step_gets_the_mean_field_variances_in_one_step():
    mu, ls = torch.zeros(2, dtype=DT), torch.zeros(2, dtype=DT)
    _, new_ls = est.natural_gradient_step(mu, ls, MODEL.elbo_grad(mu, ls), lr=1.0)
    assert torch.allclose(new_ls, MODEL.mean_field_optimum()[1])
    tiny = torch.full((2,), -5.0, dtype=DT)                       # sigma << posterior sd: g_log_sigma ~ 1
    with pytest.raises(ValueError, match="left the Gaussian family"):
        est.natural_gradient_step(mu, tiny, MODEL.elbo_grad(mu, tiny), lr=2.0)


def test_check_function_accepts_the_answer_and_diagnoses_slips():
    bbvi_checks.check_score_function_grad(est.score_function_grad)

    def missing_log_q(log_joint, mu, log_sigma, eps):
        z = mu + log_sigma.exp() * eps
        h = torch.stack([eps / log_sigma.exp(), eps**2 - 1], -2)
        return (log_joint(z)[:, None, None] * h).mean(0)

    def wrt_sigma(log_joint, mu, log_sigma, eps):
        g = est.score_function_grad(log_joint, mu, log_sigma, eps)
        return torch.stack([g[0], g[1] / log_sigma.exp()])

    slips = {
        "term missing": missing_log_q,
        "with respect to log sigma": wrt_sigma,
        "wrong sign": lambda *a: -est.score_function_grad(*a),
        "off by a factor": lambda *a: 64 * est.score_function_grad(*a),
        "shape": lambda *a: est.score_function_grad(*a).T,
        "None": lambda *a: None,
    }
    for message, fn in slips.items():
        with pytest.raises(ExerciseError, match=message):
            bbvi_checks.check_score_function_grad(fn)
    with pytest.raises(ExerciseError, match="not right yet"):
        bbvi_checks.check_score_function_grad(est.reparam_grad)


def test_logistic_laplace_and_grid():
    X, y = logistic.synthetic_data(12, seed=0)
    model = logistic.LogisticRegression(X, y, prior_std=3.0)
    mode, cov = logistic.laplace(model)
    w = mode.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.log_joint(w), w)
    assert grad.abs().max() < 1e-8                                     # the mode
    hess = torch.autograd.functional.hessian(model.log_joint, mode)
    assert torch.allclose(torch.linalg.inv(-hess), cov)
    _, _, points, log_density, area = logistic.grid_posterior(model, lim=8.0, n=121)
    assert float(log_density.exp().sum() * area) == pytest.approx(1.0)
    assert logistic.kl_q_to_grid(mode, cov, points, log_density, area) > 0
    assert logistic.kl_grid_to_q(mode, cov, points, log_density, area) > 0


def test_logistic_bbvi_beats_laplace_on_its_own_objective():
    X, y = logistic.synthetic_data(12, seed=0)
    model = logistic.LogisticRegression(X, y, prior_std=3.0)
    mean, cov, trace = logistic.fit_gaussian_bbvi(model, steps=400, n_samples=8, lr=0.05)
    assert sum(trace[-50:]) / 50 > sum(trace[:50]) / 50
    _, _, points, log_density, area = logistic.grid_posterior(model, lim=8.0, n=121)
    mode, lap_cov = logistic.laplace(model)
    assert (logistic.kl_q_to_grid(mean, cov, points, log_density, area)
            < logistic.kl_q_to_grid(mode, lap_cov, points, log_density, area))
