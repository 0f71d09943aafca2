"""Part III: the BetaVAE architecture, the disentangling objectives and their estimators."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch.distributions import Independent, MixtureSameFamily, Categorical, Normal, kl_divergence

from course_lib import nets
from course_lib.models.betavae import BetaVAE, BetaVAEConfig
from course_lib.objectives import elbo
from course_lib import objectives_disentangle as od


# ----------------------------------------------------------------------------- architecture
@pytest.mark.parametrize("size", [32, 64])
def test_betavae_shapes_and_disentanglement_lib_layers(size: int) -> None:
    model = BetaVAE(BetaVAEConfig(image_shape=(1, size, size)))
    x = torch.rand(3, 1, size, size).round()
    q = model.encode(x)
    assert q.mean.shape == (3, 10) and q.event_shape == (10,)
    p = model.decode(q.rsample((2,)))                                  # (S, B, M) -> images (S, B, 1, H, W)
    assert p.mean.shape == (2, 3, 1, size, size) and p.log_prob(x).shape == (2, 3)
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in convs)
    linears = [m for m in model.encoder if isinstance(m, torch.nn.Linear)]
    assert [l.out_features for l in linears] == [256, 20]
    deconvs = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [d.out_channels for d in deconvs] == [64, 32, 32, 1]        # the mirror image
    assert model.discriminator is None and model.prior().event_shape == (10,)


def test_image_size_must_survive_four_halvings() -> None:
    with pytest.raises(ValueError, match="divisible by 16"):
        nets.deep_conv_encoder((1, 40, 40), (32, 32, 64, 64), 256, 20)


def test_elbo_trains_the_betavae_with_beta_as_a_parameter() -> None:
    torch.manual_seed(0)
    model = BetaVAE(BetaVAEConfig(image_shape=(1, 32, 32)))
    x = torch.rand(4, 1, 32, 32).round()
    torch.manual_seed(1)
    one = elbo(model, x, beta=1.0)
    torch.manual_seed(1)
    four = elbo(model, x, beta=4.0)
    assert torch.allclose(four["loss"], one["distortion"] + 4 * one["rate"])


# ----------------------------------------------------------------------------- estimators
def brute_force_aggregate(z, mu, scale, n, own_weight, other_weight):
    """Loops over samples i, posteriors k and dimensions j with torch.distributions, float64."""
    b, m = z.shape
    log_qz, log_prod = torch.zeros(b, dtype=torch.float64), torch.zeros(b, dtype=torch.float64)
    for i in range(b):
        joint = sum((own_weight if k == i else other_weight) *
                    math.exp(float(Independent(Normal(mu[k], scale[k]), 1).log_prob(z[i]))) for k in range(b))
        log_qz[i] = math.log(joint)
        for j in range(m):
            marg = sum((own_weight if k == i else other_weight) *
                       math.exp(float(Normal(mu[k, j], scale[k, j]).log_prob(z[i, j]))) for k in range(b))
            log_prod[i] += math.log(marg)
    return log_qz, log_prod


@pytest.mark.parametrize("sampling", ["mws", "stratified"])
def test_aggregate_estimators_match_a_brute_force_loop(sampling: str) -> None:
    g = torch.Generator().manual_seed(0)
    b, m, n = 5, 3, 737_280
    mu, scale = torch.randn(b, m, generator=g, dtype=torch.float64), 0.3 + torch.rand(b, m, generator=g, dtype=torch.float64)
    z = mu + scale * torch.randn(b, m, generator=g, dtype=torch.float64)
    own, other = (1 / (n * b), 1 / (n * b)) if sampling == "mws" else (1 / n, (n - 1) / (n * (b - 1)))
    expect = brute_force_aggregate(z, mu, scale, n, own, other)
    got = od.aggregate_log_density(z, mu, scale, n, sampling)
    for e, g_ in zip(expect, got):
        assert torch.allclose(g_, e, atol=1e-9)


def test_the_dataset_size_shifts_the_mws_total_correlation() -> None:
    """log q(z) carries -log(NB) once, log prod_j q(z_j) M times: a wrong N moves TC by (M - 1) log(N'/N)."""
    g = torch.Generator().manual_seed(1)
    mu, scale = torch.randn(8, 4, generator=g), torch.rand(8, 4, generator=g) + 0.2
    z = mu + scale * torch.randn(8, 4, generator=g)
    tc = {n: (lambda a: (a[0] - a[1]).mean())(od.aggregate_log_density(z, mu, scale, n)) for n in (1000, 737_280)}
    assert math.isclose(float(tc[737_280] - tc[1000]), 3 * math.log(737.28), rel_tol=1e-4)


def tiny_data():
    """Three Gaussian posteriors q(z|x_n) in 2-D: the whole data set (N = 3)."""
    mu = torch.tensor([[-1.0, 0.5], [0.8, 0.9], [0.2, -1.2]], dtype=torch.float64)
    scale = torch.tensor([[0.5, 0.7], [0.4, 0.3], [0.9, 0.5]], dtype=torch.float64)
    return Independent(Normal(mu, scale), 1)


def test_stratified_sampling_is_exact_when_the_batch_is_the_data_set() -> None:
    q = tiny_data()
    z = q.sample(torch.Size([7])).view(-1, 2)[:3]                        # any 3 points
    mix = MixtureSameFamily(Categorical(logits=torch.zeros(3, dtype=torch.float64)), q)
    log_qz, log_prod = od.aggregate_log_density(z, q.base_dist.loc, q.base_dist.scale, 3, "stratified")
    assert torch.allclose(log_qz, mix.log_prob(z))
    marg = [MixtureSameFamily(Categorical(logits=torch.zeros(3, dtype=torch.float64)),
                              Normal(q.base_dist.loc[:, j], q.base_dist.scale[:, j])) for j in range(2)]
    assert torch.allclose(log_prod, marg[0].log_prob(z[:, 0]) + marg[1].log_prob(z[:, 1]))


def test_decomposition_sums_to_the_rate_and_matches_a_quadrature_of_the_aggregate_posterior() -> None:
    """MI + TC + dim-KL = mean(log q(z|x) - log p(z)) at every draw; averaged over draws each term
    matches its integral over a 2-D grid (brute force), and their sum matches the closed-form KL."""
    q = tiny_data()
    prior = Independent(Normal(torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)), 1)
    torch.manual_seed(0)
    sums = {"mi": 0.0, "tc": 0.0, "dim_kl": 0.0}
    draws = 4000
    for _ in range(draws):
        z = q.sample()                                                 # one draw per data point: (3, 2)
        terms = od.elbo_decomposition(q, z, prior, 3, "stratified")
        total = (q.log_prob(z) - prior.log_prob(z)).mean()
        assert torch.allclose(terms["mi"] + terms["tc"] + terms["dim_kl"], total)
        for k in sums:
            sums[k] += float(terms[k]) / draws
    # brute force: q(z) = (1/3) sum_n q(z|x_n) on a fine grid
    t = torch.linspace(-6, 6, 801, dtype=torch.float64)
    dz = float(t[1] - t[0])
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).view(-1, 2)          # (G, 2)
    dens = q.log_prob(grid[:, None]).exp()                                            # (G, 3): q(z|x_n)
    qz = dens.mean(1)
    q1 = (qz.view(801, 801).sum(1) * dz)[:, None].expand(801, 801).reshape(-1)         # q(z_1)
    q2 = (qz.view(801, 801).sum(0) * dz)[None, :].expand(801, 801).reshape(-1)         # q(z_2)
    cond_entropy = -float((dens * dens.clamp_min(1e-300).log()).sum(0).mean() * dz * dz)
    mi = -float((qz * qz.clamp_min(1e-300).log()).sum() * dz * dz) - cond_entropy
    tc = float((qz * (qz.clamp_min(1e-300).log() - q1.clamp_min(1e-300).log() - q2.clamp_min(1e-300).log())).sum() * dz * dz)
    kl = float(kl_divergence(q, prior).mean())
    assert abs(sums["mi"] - mi) < 0.03 and abs(sums["tc"] - tc) < 0.03, (sums, mi, tc)
    assert abs(sum(sums.values()) - kl) < 0.05 and abs(sums["dim_kl"] - (kl - mi - tc)) < 0.05


# ----------------------------------------------------------------------------- objectives
def test_beta_tcvae_with_unit_weights_is_the_monte_carlo_elbo() -> None:
    torch.manual_seed(0)
    model = BetaVAE(BetaVAEConfig(image_shape=(1, 32, 32)))
    x = torch.rand(6, 1, 32, 32).round()
    torch.manual_seed(3)
    out = od.beta_tcvae(model, x, 737_280, alpha=1.0, beta=1.0, gamma=1.0)
    torch.manual_seed(3)
    q = model.encode(x)
    z = q.rsample()
    mc_rate = (q.log_prob(z) - model.prior().log_prob(z)).mean()
    assert torch.allclose(out["loss"], out["distortion"] + mc_rate, atol=1e-4)
    torch.manual_seed(3)
    six = od.beta_tcvae(model, x, 737_280, beta=6.0)
    assert torch.allclose(six["loss"] - out["loss"], 5 * out["tc"], atol=1e-3)


def test_annealed_elbo_pulls_the_rate_towards_the_capacity() -> None:
    torch.manual_seed(0)
    model = BetaVAE(BetaVAEConfig(image_shape=(1, 32, 32)))
    x = torch.rand(4, 1, 32, 32).round()
    torch.manual_seed(2)
    out = od.annealed_elbo(model, x, capacity=5.0, gamma=100.0)
    assert torch.allclose(out["loss"], out["distortion"] + 100 * (out["rate"] - 5).abs())
    assert float(out["capacity"]) == 5.0


def test_permute_dims_shuffles_each_column_independently() -> None:
    z = torch.arange(40.0).view(10, 4)
    p = od.permute_dims(z, torch.Generator().manual_seed(0))
    for j in range(4):
        assert sorted(p[:, j].tolist()) == z[:, j].tolist()
    assert not torch.equal(p, z)
    rows = {tuple(r) for r in z.tolist()}
    assert sum(tuple(r) in rows for r in p.tolist()) < 5                  # rows are broken up, not just reordered


def test_factor_vae_loss_never_trains_the_discriminator_and_the_discriminator_learns_tc() -> None:
    torch.manual_seed(0)
    model = BetaVAE(BetaVAEConfig(image_shape=(1, 32, 32), latent=4, discriminator=(64, 64)))
    out = od.factor_vae(model, torch.rand(8, 1, 32, 32).round(), gamma=10.0)
    out["loss"].backward()
    assert all(p.grad is None for p in model.discriminator.parameters())
    assert model.encoder[0].weight.grad is not None and out["codes"].requires_grad is False
    opt = torch.optim.Adam(model.discriminator.parameters(), 1e-3)
    for _ in range(300):                                               # strongly dependent codes: z_j = z_0
        codes = torch.randn(128, 1).expand(128, 4) + 0.1 * torch.randn(128, 4)
        d = od.discriminator_loss(model, codes)
        opt.zero_grad(), d["disc_loss"].backward(), opt.step()
    assert float(d["disc_accuracy"]) > 0.9
    logits = model.discriminator(torch.randn(128, 1).expand(128, 4) + 0.1 * torch.randn(128, 4))
    assert float((logits[:, 0] - logits[:, 1]).mean().detach()) > 1.0     # a large TC estimate


# ----------------------------------------------------------------------------- exercise check
def test_check_mws_tc_accepts_the_estimator_and_names_each_slip() -> None:
    from course_lib.exercises import ExerciseError
    from course_lib.exercises.disentanglement import check_mws_tc

    def answer(n_fix=None, var=False, over=1, first=False, sign=1):
        def tc(z, mu, logvar, n):
            n, b = n if n_fix is None else n_fix, len(z)
            lq = Normal(mu[None], (logvar.exp() if var else (0.5 * logvar).exp())[None]).log_prob(z[:, None])
            qz = torch.logsumexp(lq.sum(2), over) - math.log(n * b)
            qp = qz if first else (torch.logsumexp(lq, over) - math.log(n * b)).sum(1)
            return sign * (qz - qp).mean()
        return tc

    check_mws_tc(answer())
    for wrong, says in ((answer(n_fix=1), "left N out"), (answer(var=True), "exp(logvar / 2)"),
                        (answer(over=0), "second axis"), (answer(first=True), "per dimension"),
                        (answer(sign=-1), "sign"), (lambda *a: None, "None")):
        with pytest.raises(ExerciseError, match=re.escape(says)):
            check_mws_tc(wrong)
