"""course_lib.vi.gaussian and course_lib.vi.cavi against exact answers (Part I, chapters 1 and 2)."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.exercises import cavi as cavi_checks
from course_lib.exercises import elbo as elbo_checks
from torch.distributions import Gamma, MultivariateNormal, Normal, kl_divergence

from course_lib.exercises import ExerciseError
from course_lib.vi import cavi, gaussian

f64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- Gaussian KL
def test_kl_normal_and_diag_match_torch():
    g = _gen()
    mu_q, mu_p = torch.randn(5, 3, generator=g, dtype=f64), torch.randn(5, 3, generator=g, dtype=f64)
    var_q, var_p = torch.rand(5, 3, generator=g, dtype=f64) + 0.1, torch.rand(5, 3, generator=g, dtype=f64) + 0.1
    expected = kl_divergence(Normal(mu_q, var_q.sqrt()), Normal(mu_p, var_p.sqrt()))
    torch.testing.assert_close(gaussian.kl_normal(mu_q, var_q, mu_p, var_p), expected)
    torch.testing.assert_close(gaussian.kl_diag_gaussian(mu_q, var_q, mu_p, var_p), expected.sum(-1))
    assert float(gaussian.kl_normal(mu_q, var_q, mu_q, var_q).abs().max()) < 1e-12


def test_kl_full_matches_torch_batched():
    g = _gen(1)
    a, b = torch.randn(4, 3, 3, generator=g, dtype=f64), torch.randn(4, 3, 3, generator=g, dtype=f64)
    cov_q, cov_p = a @ a.mT + 0.3 * torch.eye(3, dtype=f64), b @ b.mT + 0.3 * torch.eye(3, dtype=f64)
    mu_q, mu_p = torch.randn(4, 3, generator=g, dtype=f64), torch.randn(4, 3, generator=g, dtype=f64)
    expected = kl_divergence(MultivariateNormal(mu_q, cov_q), MultivariateNormal(mu_p, cov_p))
    ours = gaussian.kl_full_gaussian(mu_q, cov_q, mu_p, cov_p)
    assert ours.shape == (4,)
    torch.testing.assert_close(ours, expected)
    # a diagonal covariance reduces to the diagonal helper
    var = torch.rand(3, generator=g, dtype=f64) + 0.5
    torch.testing.assert_close(gaussian.kl_full_gaussian(mu_q[0], torch.diag(var), mu_p[0], torch.eye(3, dtype=f64)),
                               gaussian.kl_diag_gaussian(mu_q[0], var, mu_p[0], torch.ones(3, dtype=f64)))


# ----------------------------------------------------------------------------- conjugate Gaussian
MODEL = gaussian.ConjugateGaussian(prior_mean=0.3, prior_var=2.0, noise_var=0.5)
X = 1.0 + 0.7 * torch.randn(8, generator=_gen(2), dtype=f64)


def test_log_evidence_is_bayes_rule_at_any_z():
    post = MODEL.posterior(X)
    for z in (-1.0, 0.2, 3.0):
        z = torch.tensor(z, dtype=f64)
        by_bayes = (Normal(z, MODEL.noise_var ** 0.5).log_prob(X).sum()
                    + Normal(MODEL.prior_mean, MODEL.prior_var ** 0.5).log_prob(z) - post.log_prob(z))
        torch.testing.assert_close(MODEL.log_evidence(X), by_bayes)


def test_elbo_plus_kl_is_log_evidence_on_a_grid():
    post = MODEL.posterior(X)
    m = torch.linspace(-2, 3, 21, dtype=f64).unsqueeze(1)
    v = torch.logspace(-3, 1, 17, dtype=f64)
    elbo = MODEL.elbo(X, m, v)
    kl = gaussian.kl_normal(m, v, post.mean, post.variance)
    assert elbo.shape == (21, 17)
    assert float((elbo + kl - MODEL.log_evidence(X)).abs().max()) < 1e-9
    assert bool((elbo <= MODEL.log_evidence(X) + 1e-12).all())
    tight = MODEL.elbo(X, post.mean, post.variance)
    torch.testing.assert_close(tight, MODEL.log_evidence(X))


def test_elbo_matches_monte_carlo():
    m, v = torch.tensor(0.8, dtype=f64), torch.tensor(0.3, dtype=f64)
    z = Normal(m, v.sqrt()).sample((200_000,))
    log_joint = Normal(z.unsqueeze(1), MODEL.noise_var ** 0.5).log_prob(X).sum(1) + \
        Normal(MODEL.prior_mean, MODEL.prior_var ** 0.5).log_prob(z)
    terms = log_joint - Normal(m, v.sqrt()).log_prob(z)
    assert abs(float(terms.mean() - MODEL.elbo(X, m, v))) < 4 * float(terms.std()) / math.sqrt(len(z))


def test_check_conjugate_elbo_accepts_and_diagnoses():
    def right(x, m, v, s2):
        return gaussian.ConjugateGaussian(noise_var=s2).elbo(x, m, v)

    elbo_checks.check_conjugate_elbo(right)
    no_const = lambda x, m, v, s2: right(x, m, v, s2) + 0.5 * len(x) * math.log(2 * math.pi)  # noqa: E731
    with pytest.raises(ExerciseError, match=r"1/2 log\(2 pi\) \(k = 6\)"):
        elbo_checks.check_conjugate_elbo(no_const)
    with pytest.raises(ExerciseError, match="sign"):
        elbo_checks.check_conjugate_elbo(lambda x, m, v, s2: -right(x, m, v, s2))
    with pytest.raises(ExerciseError, match="shape"):
        elbo_checks.check_conjugate_elbo(lambda x, m, v, s2: right(x, m, v, s2).sum())
    with pytest.raises(ExerciseError, match="None"):
        elbo_checks.check_conjugate_elbo(lambda x, m, v, s2: None)


# ----------------------------------------------------------------------------- PPCA
def test_ppca_e_step_makes_elbo_tight_and_em_climbs():
    g = _gen(4)
    W_true = torch.randn(6, 2, generator=g, dtype=f64)
    x = torch.randn(200, 2, generator=g, dtype=f64) @ W_true.T + 0.3 * torch.randn(200, 6, generator=g, dtype=f64)
    mu, W, s2 = x.mean(0), torch.randn(6, 2, generator=g, dtype=f64), 1.0
    previous = -math.inf
    for _ in range(10):
        means, cov = gaussian.ppca_posterior(x, W, mu, s2)
        log_px = gaussian.ppca_log_evidence(x, W, mu, s2)
        tight = gaussian.ppca_elbo(x, W, mu, s2, means, cov)
        torch.testing.assert_close(tight, log_px, rtol=1e-10, atol=1e-8)        # E-step: ELBO = log p(x)
        assert float(gaussian.ppca_elbo(x, W, mu, s2, means + 0.1, cov)) < float(log_px)  # any other q: below
        W, s2 = gaussian.ppca_m_step(x, mu, means, cov)
        assert float(gaussian.ppca_elbo(x, W, mu, s2, means, cov)) >= float(tight) - 1e-9  # M-step climbs
        assert float(log_px) >= previous - 1e-9
        previous = float(log_px)


# ----------------------------------------------------------------------------- Normal-Gamma
PRIOR = cavi.NormalGamma(mu=0.0, lam=1.0, a=2.0, b=1.0)
XN = 1.5 + 0.8 * torch.randn(12, generator=_gen(5), dtype=f64)


def test_normal_gamma_posterior_and_evidence_are_exact():
    post = cavi.normal_gamma_posterior(XN, PRIOR)
    mu, tau = torch.tensor(1.2, dtype=f64), torch.tensor(1.7, dtype=f64)
    log_lik = Normal(mu, tau ** -0.5).log_prob(XN).sum()
    log_prior = Normal(PRIOR.mu, (PRIOR.lam * tau) ** -0.5).log_prob(mu) + Gamma(torch.tensor(PRIOR.a, dtype=f64), torch.tensor(PRIOR.b, dtype=f64)).log_prob(tau)
    torch.testing.assert_close(PRIOR.log_pdf(mu, tau), log_prior)
    # Bayes' rule at any point: log p(x) = log p(x | mu, tau) + log p(mu, tau) - log p(mu, tau | x)
    by_bayes = float(log_lik + log_prior - post.log_pdf(mu, tau))
    assert abs(cavi.normal_gamma_log_evidence(XN, PRIOR) - by_bayes) < 1e-9


def test_normal_gamma_cavi_fixed_point_and_known_facts():
    q, elbos = cavi.cavi_normal_gamma(XN, PRIOR, iters=200)
    q_short, _ = cavi.cavi_normal_gamma(XN, PRIOR, iters=30)
    assert all(b >= a - 1e-10 * abs(a) for a, b in zip(elbos, elbos[1:]))             # monotone
    again = cavi.cavi_update_tau(XN, PRIOR, cavi.cavi_update_mu(XN, PRIOR, q))
    assert abs(again.b - q.b) < 1e-12 and abs(again.prec - q.prec) < 1e-10          # a fixed point
    assert abs(q_short.b - q.b) < 1e-9                                               # a short run agrees
    post = cavi.normal_gamma_posterior(XN, PRIOR)
    assert abs(q.m - post.mu) < 1e-12                                                # E_q[mu] is exact
    assert q.a == PRIOR.a + (len(XN) + 1) / 2
    assert 1 / q.prec < post.var_mu()                                                # mean field too narrow
    # known closed forms at the fixed point: b_mf = b_N / (1 - 1/(2 a_mf)), hence E_q[tau] = a_N / b_N
    # (the exact posterior mean of tau) and var_q(mu) / var_exact(mu) = (a_N - 1) / a_N
    assert abs(q.b - post.b / (1 - 1 / (2 * q.a))) < 1e-9
    assert abs(q.a / q.b - post.a / post.b) < 1e-10
    assert abs((1 / q.prec) / post.var_mu() - (post.a - 1) / post.a) < 1e-10


def test_normal_gamma_elbo_identity_and_monte_carlo():
    q, elbos = cavi.cavi_normal_gamma(XN, PRIOR, iters=50)
    post = cavi.normal_gamma_posterior(XN, PRIOR)
    gen_mu = Normal(q.m, q.prec ** -0.5).sample((100_000,)).double()
    gen_tau = Gamma(torch.tensor(q.a, dtype=f64), torch.tensor(q.b, dtype=f64)).sample((100_000,))
    log_q = q.log_pdf(gen_mu, gen_tau)
    log_joint = (Normal(gen_mu.unsqueeze(1), gen_tau.unsqueeze(1) ** -0.5).log_prob(XN).sum(1)
                 + PRIOR.log_pdf(gen_mu, gen_tau))
    terms = log_joint - log_q
    assert abs(float(terms.mean()) - elbos[-1]) < 4 * float(terms.std()) / math.sqrt(len(terms))
    kl_mc = log_q - post.log_pdf(gen_mu, gen_tau)
    kl_closed = cavi.normal_gamma_log_evidence(XN, PRIOR) - elbos[-1]                 # log p(x) - ELBO
    assert kl_closed > 0
    assert abs(float(kl_mc.mean()) - kl_closed) < 4 * float(kl_mc.std()) / math.sqrt(len(kl_mc)) + 1e-6


# ----------------------------------------------------------------------------- mixture
def test_mixture_cavi_monotone_fixed_point_and_shapes():
    x, c, means = cavi.sample_mixture(300, seed=1)
    assert x.shape == (300, 2) and c.shape == (300,) and means.shape == (5, 2)
    out = cavi.cavi_mixture(x, iters=300, seed=0)
    assert out["phi"].shape == (300, 5) and out["m"].shape == (5, 2) and out["s2"].shape == (5,)
    e = out["elbo"]
    assert all(b >= a - 1e-8 * abs(a) for a, b in zip(e, e[1:]))
    m2, s2 = cavi.cavi_update_means(x, out["phi"], 16.0)
    torch.testing.assert_close(m2, out["m"], rtol=0, atol=1e-8)                    # a fixed point
    short = cavi.cavi_mixture(x, iters=100, seed=0)
    assert abs(short["elbo"][-1] - e[-1]) < 1e-6 * abs(e[-1])


def test_mixture_updates_are_coordinate_maximisers():
    """Each update is the exact maximiser of the ELBO in its own block: the gradient vanishes there.

    Few points and a random (not converged) state, so s2_k is far from 0 and every term matters.
    """
    x, _, _ = cavi.sample_mixture(10, seed=3)
    gen = torch.Generator().manual_seed(0)
    phi = torch.softmax(torch.randn(10, 5, generator=gen, dtype=f64), -1)
    m0, s20 = torch.randn(5, 2, generator=gen, dtype=f64), torch.rand(5, generator=gen, dtype=f64) + 0.5

    m, s2 = cavi.cavi_update_means(x, phi, 16.0)                      # q(mu) given q(c)
    m, log_s2 = m.clone().requires_grad_(), s2.log().requires_grad_()
    grad_m, grad_s2 = torch.autograd.grad(cavi.mixture_elbo(x, phi, m, log_s2.exp(), 16.0), (m, log_s2))
    assert float(grad_m.abs().max()) < 1e-9 and float(grad_s2.abs().max()) < 1e-9

    new_phi = cavi.cavi_update_assignments(x, m0, s20)                # q(c) given q(mu)
    logits = new_phi.log().requires_grad_()
    (grad_logits,) = torch.autograd.grad(cavi.mixture_elbo(x, torch.softmax(logits, -1), m0, s20, 16.0), logits)
    assert float(grad_logits.abs().max()) < 1e-9
    best = float(cavi.mixture_elbo(x, new_phi, m0, s20, 16.0))
    for _ in range(5):                                                # and any other q(c) is worse
        other = torch.softmax(logits.detach() + 0.3 * torch.randn(10, 5, generator=gen, dtype=f64), -1)
        assert float(cavi.mixture_elbo(x, other, m0, s20, 16.0)) < best


def test_mixture_elbo_matches_monte_carlo():
    x, _, _ = cavi.sample_mixture(50, seed=2)
    out = cavi.cavi_mixture(x, iters=5, seed=1)
    phi, m, s2, prior_var = out["phi"], out["m"], out["s2"], 16.0
    s = 20_000
    mu = m + s2.sqrt().unsqueeze(1) * torch.randn(s, 5, 2, dtype=f64)                  # (S, K, D)
    c = torch.distributions.Categorical(probs=phi).sample((s,))                        # (S, N)
    log_p = (Normal(0.0, prior_var ** 0.5).log_prob(mu).sum((1, 2)) - 50 * math.log(5)
             + Normal(torch.gather(mu, 1, c.unsqueeze(-1).expand(s, 50, 2)), 1.0).log_prob(x).sum((1, 2)))
    log_q = (Normal(m, s2.sqrt().unsqueeze(1)).log_prob(mu).sum((1, 2))
             + torch.log(torch.gather(phi.expand(s, 50, 5), 2, c.unsqueeze(-1))).squeeze(-1).sum(1))
    terms = log_p - log_q
    closed = float(cavi.mixture_elbo(x, phi, m, s2, prior_var))
    assert abs(float(terms.mean()) - closed) < 4 * float(terms.std()) / math.sqrt(s)


def test_check_assignment_update_accepts_and_diagnoses():
    cavi_checks.check_assignment_update(cavi.cavi_update_assignments)
    with pytest.raises(ExerciseError, match="sum to 1"):
        cavi_checks.check_assignment_update(lambda x, m, s2: torch.exp(x @ m.T))
    with pytest.raises(ExerciseError, match="variance"):
        cavi_checks.check_assignment_update(lambda x, m, s2: cavi.cavi_update_assignments(x, m, 0 * s2))
    with pytest.raises(ExerciseError, match="shape"):
        cavi_checks.check_assignment_update(lambda x, m, s2: cavi.cavi_update_assignments(x, m, s2).T)
    with pytest.raises(ExerciseError, match="None"):
        cavi_checks.check_assignment_update(lambda x, m, s2: None)


def test_ppca_log_evidence_matches_torch_multivariate_normal():
    g = _gen(6)
    x, W, mu = (torch.randn(30, 7, generator=g, dtype=f64), torch.randn(7, 3, generator=g, dtype=f64),
                torch.randn(7, generator=g, dtype=f64))
    cov = W @ W.T + 0.4 * torch.eye(7, dtype=f64)
    expected = MultivariateNormal(mu, covariance_matrix=cov).log_prob(x).sum()
    torch.testing.assert_close(gaussian.ppca_log_evidence(x, W, mu, 0.4), expected)
