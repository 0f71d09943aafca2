"""The checks of Part II's labs and chapters: the right answer passes, each planted slip is named."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import ExerciseError, Trainer
from course_lib import amortisation as am
from course_lib.exercises import lab_amortisation, lab_vae
from course_lib.exercises.autoencoders import check_diagonal_gap
from course_lib.exercises.vae import check_free_bits
from course_lib.models.vae import VAE, VAEConfig
from course_lib.paired import mean_se, paired_difference, per_image_bounds


# ----------------------------------------------------------------------------- lab: build your own VAE
def reparameterise(mu, logvar, eps):
    return mu + torch.exp(0.5 * logvar) * eps


@pytest.mark.parametrize("bug,message", [
    (lambda mu, logvar, eps: mu + logvar.exp() * eps, "logvar treated as log sigma"),
    (lambda mu, logvar, eps: mu + logvar * eps, "multiplies the noise directly"),
    (lambda mu, logvar, eps: torch.exp(0.5 * logvar) * eps, "mu was left out"),
    (lambda mu, logvar, eps: mu + torch.exp(-0.5 * logvar) * eps, "sign inside the exponential"),
    (lambda mu, logvar, eps: None, "None"),
])
def test_reparameterise_check(bug, message) -> None:
    lab_vae.check_reparameterise(reparameterise)
    with pytest.raises(ExerciseError, match=message):
        lab_vae.check_reparameterise(bug)


def my_elbo(model, x, eps, *, kl="right", recon="sum", at_mean=False, loss_sign=1, sigmoid_twice=False):
    mu, logvar = model.encoder(x).chunk(2, dim=-1)
    z = mu if at_mean else reparameterise(mu, logvar, eps)
    logits = model.decoder(z)
    if sigmoid_twice:
        logits = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1)
    distortion = bce.sum(1).mean() if recon == "sum" else bce.mean()
    var = logvar.exp()
    per_dim = {"right": 0.5 * (mu ** 2 + var - logvar - 1),
               "log_sigma": 0.5 * (mu ** 2 + torch.exp(2 * logvar) - 2 * logvar - 1),
               "reverse": 0.5 * ((1 + mu ** 2) / var - 1 + logvar),
               "minus": -0.5 * (mu ** 2 + var - logvar - 1)}[kl]
    rate = per_dim.sum(-1).mean() if kl != "mean_dims" else per_dim.mean()
    return {"loss": distortion + loss_sign * rate, "rate": rate, "distortion": distortion}


@pytest.mark.parametrize("kwargs,message", [
    (dict(kl="log_sigma"), "logvar treated as log sigma"),
    (dict(kl="reverse"), "wrong direction"),
    (dict(kl="minus"), "sign"),
    (dict(recon="mean"), "averaged over the pixels"),
    (dict(at_mean=True), "posterior mean mu instead of the sample"),
    (dict(sigmoid_twice=True), "sigmoid applied twice"),
    (dict(loss_sign=-1), "distortion - rate"),
])
def test_elbo_check(kwargs, message) -> None:
    lab_vae.check_elbo(my_elbo)
    with pytest.raises(ExerciseError, match=message):
        lab_vae.check_elbo(lambda model, x, eps: my_elbo(model, x, eps, **kwargs))


def test_elbo_check_names_reductions_and_the_return_type() -> None:
    def mean_over_dims(model, x, eps):
        out = my_elbo(model, x, eps)
        mu, logvar = model.encoder(x).chunk(2, dim=-1)
        rate = (0.5 * (mu ** 2 + logvar.exp() - logvar - 1)).mean()
        return {**out, "rate": rate}

    with pytest.raises(ExerciseError, match="mean over the latent dims|latent dims"):
        lab_vae.check_elbo(mean_over_dims)
    with pytest.raises(ExerciseError, match="dict"):
        lab_vae.check_elbo(lambda model, x, eps: my_elbo(model, x, eps)["loss"])


def train_one_epoch(model, batches, objective):
    return Trainer(model, objective, lr=1e-3, progress=False, verbose=False).train_epoch(batches)


@pytest.mark.parametrize("bug,message", [
    (lambda m, b, o: Trainer(m, o, progress=False, verbose=False).evaluate(b), "evaluated"),
    (lambda m, b, o: Trainer(m, o, progress=False, verbose=False).fit(b, 2), "two epochs"),
    (lambda m, b, o: Trainer(m, o, lr=1e-2, progress=False, verbose=False).train_epoch(b), "learning rate"),
    (lambda m, b, o: train_one_epoch(copy.deepcopy(m), b, o), "not trained .its weights did not change"),
    (lambda m, b, o: 3.0, "dict"),
])
def test_train_epoch_check(bug, message) -> None:
    lab_vae.check_train_epoch(train_one_epoch)
    lab_vae.check_train_epoch(lambda m, b, o: Trainer(m, o, progress=False, verbose=False).fit(b, 1))
    with pytest.raises(ExerciseError, match=message):
        lab_vae.check_train_epoch(bug)


def my_iwae(model, x, eps, *, bug=None):
    mu, logvar = model.encoder(x).chunk(2, dim=-1)
    q = torch.distributions.Independent(torch.distributions.Normal(mu, torch.exp(0.5 * logvar)), 1)
    z = reparameterise(mu, logvar, eps)                                    # (K, B, M)
    log_px = model.decode(z).log_prob(x)
    log_w = log_px + model.prior().log_prob(z) - q.log_prob(z)
    if bug == "swap":
        log_w = log_px - model.prior().log_prob(z) + q.log_prob(z)
    if bug == "elbo":
        return log_w.mean()
    if bug == "no_log_k":
        return torch.logsumexp(log_w, 0).mean()
    if bug == "dim":
        return (torch.logsumexp(log_w, 1) - math.log(eps.shape[0])).mean()
    if bug == "sum":
        return (torch.logsumexp(log_w, 0) - math.log(eps.shape[0])).sum()
    return (torch.logsumexp(log_w, 0) - math.log(eps.shape[0])).mean()


@pytest.mark.parametrize("bug,message", [
    ("elbo", "that is the ELBO"), ("no_log_k", "log K was not subtracted"), ("dim", "over the images"),
    ("swap", "swapped"), ("sum", "sum over the batch"),
])
def test_iwae_check(bug, message) -> None:
    lab_vae.check_iwae(my_iwae)
    with pytest.raises(ExerciseError, match=message):
        lab_vae.check_iwae(lambda model, x, eps: my_iwae(model, x, eps, bug=bug))


# ----------------------------------------------------------------------------- lab: the amortisation gap
def test_local_elbo_matches_the_vae_elbo_at_the_encoders_answer() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=3, hidden=16))
    x = torch.bernoulli(torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    mu, log_sigma = am.encoder_gaussians(model, x)
    eps = torch.randn(4000, 5, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        local = am.local_elbo(model, x, mu, log_sigma, eps)
        q = model.encode(x)
        z = q.mean + q.stddev * eps
        by_hand = model.decode(z).log_prob(x).mean(0) - torch.distributions.kl_divergence(q, model.prior())
    torch.testing.assert_close(local, by_hand)


def test_fitting_raises_every_images_elbo_and_leaves_the_model_alone() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=3, hidden=16))
    x = torch.bernoulli(torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mu0, ls0 = am.encoder_gaussians(model, x)
    mu, ls, trace = am.fit_local_gaussians(model, x, mu0, ls0, steps=150, draws=8)
    eps = torch.randn(2000, 6, 3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        gain = am.local_elbo(model, x, mu, ls, eps) - am.local_elbo(model, x, mu0, ls0, eps)
    assert float(gain.min()) > 0 and trace[-1] > trace[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())
    # a proposal that is closer to the posterior gives a tighter K-sample bound on average
    with torch.no_grad():
        tight = am.iwae_with_proposal(model, x, mu, ls, 200)
        loose = am.iwae_with_proposal(model, x, mu + 1.0, ls, 200)
    assert float(tight.mean()) > float(loose.mean())
    split = am.gap_split(tight, tight - 1.0, tight - 3.0)
    torch.testing.assert_close(split["approximation"], torch.ones(6))
    torch.testing.assert_close(split["amortisation"], torch.full((6,), 2.0))


def test_per_image_bounds_and_paired_standard_errors() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=2, hidden=16))
    x = torch.bernoulli(torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(1)))
    b = per_image_bounds(model, x, k=30, batch=5, chunk=7)
    assert b["iwae"].shape == (12,) and bool((b["iwae"] >= b["elbo"] - 1e-4).all())
    from course_lib.evaluation import nll_estimate
    est = nll_estimate(model, x, k=30, batch=5, chunk=7)                    # the same draws, the same numbers
    assert mean_se(-b["iwae"])[0] == pytest.approx(est["nll"], rel=1e-6)
    assert mean_se(-b["iwae"])[1] == pytest.approx(est["nll_stderr"], rel=1e-4)
    a, c = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0.5, 1.5, 2.5, 3.0])
    diff, se = paired_difference(a, c)
    assert diff == pytest.approx(0.625) and se == pytest.approx(float((a - c).std() / 2))
    with pytest.raises(ValueError, match="same images"):
        paired_difference(a, c[:3])


@pytest.mark.parametrize("bug,message", [
    ("log_var", r"log_sigma treated as log sigma\^2"), ("sum_batch", "one ELBO per image"),
    ("no_rate", "rate"), ("mean_z", "posterior mean"),
])
def test_local_elbo_check(bug, message) -> None:
    def right(model, x, mu, log_sigma, eps):
        z = mu + log_sigma.exp() * eps
        q = torch.distributions.Independent(torch.distributions.Normal(mu, log_sigma.exp()), 1)
        return model.decode(z).log_prob(x).mean(0) - torch.distributions.kl_divergence(q, model.prior())

    def buggy(model, x, mu, log_sigma, eps):
        if bug == "log_var":
            return right(model, x, mu, 0.5 * log_sigma, eps)
        if bug == "sum_batch":
            return right(model, x, mu, log_sigma, eps).mean()
        if bug == "no_rate":
            return model.decode(mu + log_sigma.exp() * eps).log_prob(x).mean(0)
        return right(model, x, mu, log_sigma, torch.zeros_like(eps))

    lab_amortisation.check_local_elbo(right)
    with pytest.raises(ExerciseError, match=message):
        lab_amortisation.check_local_elbo(buggy)


@pytest.mark.parametrize("bug,message", [
    (lambda lp, es, ea: (es - ea, lp - es), "swapped"),
    (lambda lp, es, ea: (lp - es, ea - es), "sign"),
    (lambda lp, es, ea: (lp - ea, es - ea), "whole gap"),
])
def test_gap_split_check(bug, message) -> None:
    lab_amortisation.check_gap_split(lambda lp, es, ea: (lp - es, es - ea))
    with pytest.raises(ExerciseError, match=message):
        lab_amortisation.check_gap_split(bug)


# ----------------------------------------------------------------------------- chapter checks
def test_check_diagonal_gap() -> None:
    def right(W, s2):
        A = W.T @ W + s2 * torch.eye(W.shape[1], dtype=W.dtype)
        return 0.5 * (A.diagonal().log().sum() - torch.logdet(A))

    check_diagonal_gap(right)
    for bug, message in ((lambda W, s2: 2 * right(W, s2), "factor of 2"),
                         (lambda W, s2: -right(W, s2), "sign is flipped"),
                         (lambda W, s2: right(W, 0.0), "sigma\\^2 I was left out"),
                         (lambda W, s2: right(W.T, s2), "D x D matrix")):
        with pytest.raises(ExerciseError, match=message):
            check_diagonal_gap(bug)


def test_check_free_bits() -> None:
    def right(kl, lam):
        return kl.mean(0).clamp(min=lam).sum()

    check_free_bits(right)
    for bug, message in ((lambda kl, lam: kl.clamp(min=lam).sum(-1).mean(), "per image"),
                         (lambda kl, lam: kl.mean(0).clamp(max=lam).sum(), "min"),
                         (lambda kl, lam: (kl.mean(0) - lam).clamp(min=0).sum(), "shifted"),
                         (lambda kl, lam: kl.mean(0).sum(), "lambda was never used"),
                         (lambda kl, lam: kl.mean(0).clamp(min=lam).mean(), "mean over the latent dims|latent dims")):
        with pytest.raises(ExerciseError, match=message):
            check_free_bits(bug)
