"""The VAE family: models.vae, distributions, objectives, evaluation, the exercise check."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from course_lib import ExerciseError, Trainer, load_checkpoint, runs, save_checkpoint
from course_lib.data import Split
from course_lib.distributions import PixelCategorical
from course_lib.evaluation import active_units, eval_images, nll_estimate
from course_lib.exercises.vae import check_gaussian_kl
from course_lib.models.ar_vae import ARVAE, ARVAEConfig
from course_lib.models.vae import VAE, VAEConfig
from course_lib.objectives import elbo, iwae_bound
from course_lib.objectives_more import free_bits_elbo
from helpers import finished_record

IMAGE_SHAPE = (1, 28, 28)
SMALL = dict(hidden=32, channels=4, components=5)
COMBOS = [(arch, lik, prior) for arch in ("mlp", "conv") for lik in ("bernoulli", "gaussian", "categorical")
          for prior in ("normal", "mog", "vamp")]


def images(n: int = 6, seed: int = 0, binary: bool = True) -> torch.Tensor:
    x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))
    return torch.bernoulli(x, generator=torch.Generator().manual_seed(seed + 1)) if binary else x


@pytest.mark.parametrize("arch,lik,prior", COMBOS)
def test_shapes_and_keys(arch: str, lik: str, prior: str) -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch=arch, likelihood=lik, prior=prior, latent=3, **SMALL))
    x = images(binary=lik == "bernoulli")
    q = model.encode(x)
    assert q.batch_shape == (6,) and q.event_shape == (3,)
    px = model.decode(q.rsample((4,)))                      # (k, B) batch of images
    assert px.batch_shape == (4, 6) and px.event_shape == IMAGE_SHAPE
    assert px.log_prob(x).shape == (4, 6)
    mean = px.mean.detach()
    assert mean.shape == (4, 6, 1, 28, 28) and 0 <= float(mean.min()) and float(mean.max()) <= 1
    p = model.prior()
    assert p.event_shape == (3,) and p.sample((5,)).shape == (5, 3) and p.log_prob(torch.zeros(2, 3)).shape == (2,)
    out = elbo(model, x)
    assert set(out) == {"loss", "rate", "distortion"} and all(v.dim() == 0 for v in out.values())
    assert torch.isfinite(out["loss"])
    iw = iwae_bound(model, x, 3)
    assert set(iw) == {"loss", "rate", "distortion", "bound"}



def test_closed_form_kl_matches_torch_and_monte_carlo() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=4, **SMALL))
    x = images(32)
    q, p = model.encode(x), model.prior()
    mu, var = q.mean, q.variance
    by_hand = 0.5 * (mu ** 2 + var - var.log() - 1).sum(-1)  # KL(N(mu, var) || N(0, I))
    torch.testing.assert_close(by_hand, kl_divergence(q, p), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(elbo(model, x)["rate"], by_hand.mean(), rtol=1e-5, atol=1e-5)
    z = q.sample((20_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(mc, by_hand, rtol=0.05, atol=0.05)


def test_likelihood_log_probs_are_per_image_sums() -> None:
    x = images(3, binary=False)
    g = VAE(VAEConfig(likelihood="gaussian", sigma=0.3, **SMALL))
    px = g.decode(torch.zeros(3, 2))
    expected = Normal(px.mean, 0.3).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(px.log_prob(x), expected)
    cat = PixelCategorical(torch.zeros(3, 256, 28, 28))             # uniform over 256 levels
    torch.testing.assert_close(cat.log_prob(x), torch.full((3,), -784 * math.log(256)))
    torch.testing.assert_close(cat.mean, torch.full((3, 1, 28, 28), 0.5))


def test_pixel_categorical_matches_torch_categorical() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 256, 28, 28, generator=gen)            # (k samples, B images, levels, H, W)
    x = torch.randint(0, 256, (3, 1, 28, 28), generator=gen) / 255.0  # grey levels, broadcast over k
    reference = torch.distributions.Categorical(logits=logits.movedim(2, -1))
    expected = reference.log_prob((x * 255).round().long().squeeze(1)).sum((-2, -1))  # (4, 3)
    cat = PixelCategorical(logits)
    torch.testing.assert_close(cat.log_prob(x), expected)
    grey = torch.arange(256.0) / 255
    torch.testing.assert_close(cat.mean.squeeze(2), (reference.probs * grey).sum(-1))
    assert cat.sample().shape == (4, 3, 1, 28, 28) and cat.sample().max() <= 1.0


def test_gradients_reach_the_encoder_through_z() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=3, **SMALL))
    x = images()
    distortion = elbo(model, x)["distortion"]                 # depends on the encoder only through z
    distortion.backward()
    grad = model.encoder[1].weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0
    model.zero_grad()
    with torch.no_grad():
        z = model.encode(x).sample()                           # no reparameterisation: no gradient path
    model.decode(z).log_prob(x).mean().backward()
    assert model.encoder[1].weight.grad is None


def test_iwae_bound_at_least_elbo_and_rises_with_k() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=2, **SMALL))
    x = images(16)
    with torch.no_grad():
        bounds = {k: torch.stack([iwae_bound(model, x, k)["bound"] for _ in range(20)]).mean() for k in (1, 5, 50)}
        elbo_value = -torch.stack([elbo(model, x)["loss"] for _ in range(20)]).mean()
    assert bounds[50] >= bounds[5] >= bounds[1] - 0.5
    assert bounds[50] >= elbo_value
    # k=1 is an unbiased estimate of the ELBO: 4000 single-sample bounds against the ELBO with a
    # closed-form KL and 4000 decoder samples, within 4 standard errors
    gen = torch.Generator().manual_seed(1)
    single = torch.stack([iwae_bound(model, x[i:i + 1], 1, gen)["bound"] for i in range(16) for _ in range(250)])
    reference = -elbo(model, x, n_samples=4000)["loss"]
    assert abs(float(single.mean() - reference)) < 4 * float(single.std()) / len(single) ** 0.5
    est = nll_estimate(model, x, k=60, batch=8, chunk=25)
    assert est["n"] == 16 and est["k"] == 60 and est["nll"] <= est["neg_elbo"]


def test_elbo_is_distortion_plus_beta_rate_at_the_same_draw() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=3, **SMALL))
    x = images(8)
    torch.manual_seed(5)
    out = elbo(model, x, beta=3.0)
    torch.manual_seed(5)
    q = model.encode(x)
    z = q.rsample((1,))
    distortion = -model.decode(z).log_prob(x).mean()                       # -E_q log p(x|z), one draw
    rate = (0.5 * (q.mean ** 2 + q.variance - q.variance.log() - 1)).sum(-1).mean()  # KL(q || N(0, I))
    torch.testing.assert_close(out["distortion"], distortion)
    torch.testing.assert_close(out["rate"], rate, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["loss"], distortion + 3.0 * rate, rtol=1e-5, atol=1e-6)


def test_iwae_bound_is_the_log_mean_of_the_weights() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=3, **SMALL))
    x = images(4)
    with torch.no_grad():
        q = model.encode(x)
        eps = torch.randn((7, 4, 3), generator=torch.Generator().manual_seed(2))
        z = q.mean + q.stddev * eps                                          # the draws iwae_bound makes
        log_w = model.decode(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)   # (7, 4)
        by_hand = (log_w.double().exp().mean(0).log()).mean()                # log (1/k) sum_i w_i, float64, no logsumexp
        got = iwae_bound(model, x, 7, torch.Generator().manual_seed(2))["bound"]
    torch.testing.assert_close(got, by_hand.to(got.dtype), rtol=1e-5, atol=1e-4)


def test_mc_rate_for_learnable_priors() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=2, prior="vamp", **SMALL))
    out = elbo(model, images())
    out["loss"].backward()
    assert model.pseudo.grad is not None and float(model.pseudo.grad.abs().sum()) > 0


def test_eval_images_binarize_dynamic_splits_once() -> None:
    grey = Split("dynamic_mnist", "test", images(8, binary=False), None, "dynamic")
    first, again = eval_images(grey), eval_images(grey)
    assert set(first.unique().tolist()) <= {0.0, 1.0} and torch.equal(first, again)  # binary, and the same each time
    assert not torch.equal(first, eval_images(grey, seed=1))
    static = Split("binarized_mnist", "test", images(8), None, None)
    assert eval_images(static) is static.x


def test_active_units_counts_varying_means() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=4, **SMALL))
    with torch.no_grad():
        model.encoder[-1].weight[1:4].zero_()               # mean of dims 1..3 constant
        model.encoder[-1].bias[1:4].zero_()
    n, var = active_units(model, images(64), threshold=1e-6)
    assert n == 1 and var.shape == (4,)


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    config = VAEConfig(latent=3, prior="mog", **SMALL)
    model = VAE(config)
    save_checkpoint(tmp_path / "m", model, finished_record(config))
    other = VAE(config)
    load_checkpoint(tmp_path / "m", other)
    x = images()
    torch.testing.assert_close(model.encode(x).mean, other.encode(x).mean)
    torch.testing.assert_close(model.prior().log_prob(torch.ones(3)), other.prior().log_prob(torch.ones(3)))


def test_one_trainer_step_updates_the_weights() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=2, **SMALL))
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, elbo, progress=False, verbose=False)
    terms = trainer.train_epoch([images(8)])
    assert {"loss", "rate", "distortion"} <= set(terms) and trainer.step == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_shipped_configs_are_small_and_named() -> None:
    for name, run in runs.vae.SHIPPED.items():
        assert name.startswith("vae_")
        n = sum(p.numel() for p in run.build(run.model).parameters())
        assert n * 4 < 5e6, f"{name} has {n} parameters: its checkpoint would exceed 5 MB"


def test_older_runs_keep_their_configs_when_the_training_config_grows() -> None:
    """`VAETrainMore` is a subclass: the runs trained with `VAETrain` hash exactly as before."""
    from course_lib.checkpoint import config_dict
    from course_lib.runs.vae import VAETrain, VAETrainMore

    assert "k" not in config_dict(VAETrain()) and "free_bits" not in config_dict(VAETrain())
    assert config_dict(VAETrainMore())["k"] == 1 and config_dict(VAETrainMore())["free_bits"] == 0.0
    assert type(runs.get("vae_mlp32").train) is VAETrain


# ----------------------------------------------------------------------------- autoregressive decoder
def test_made_decoder_is_causal_by_gradients() -> None:
    """d logit_j / d x_i is zero for every i >= j (tested with gradients, not by reading the masks)."""
    torch.manual_seed(0)
    model = ARVAE(ARVAEConfig(image_shape=(1, 4, 4), latent=3, hidden=8, ar_hidden=40))
    x = torch.bernoulli(torch.rand(1, 16)).requires_grad_(True)
    logits = model.decoder(x, torch.randn(1, 3))
    for j in range(16):
        (g,) = torch.autograd.grad(logits[0, j], x, retain_graph=True)
        assert float(g[0, j:].abs().max()) == 0.0, f"output {j} sees input >= {j}"
        if j > 0:
            assert float(g[0, :j].abs().sum()) > 0, f"output {j} sees none of its past"
    assert "decoder.inp.mask" not in model.state_dict(), "masks are rebuilt, never saved"


def test_ar_log_prob_is_a_normalised_distribution_over_tiny_images() -> None:
    """Summing p(x|z) over all 2^9 binary 3x3 images gives 1, and log_prob broadcasts over z samples."""
    torch.manual_seed(0)
    model = ARVAE(ARVAEConfig(image_shape=(1, 3, 3), latent=2, hidden=8, ar_hidden=16))
    grid = torch.tensor([[(i >> d) & 1 for d in range(9)] for i in range(512)], dtype=torch.float32).reshape(512, 1, 3, 3)
    z = torch.randn(2)
    with torch.no_grad():
        total = model.decode(z.expand(512, 2)).log_prob(grid).exp().sum()
        assert abs(float(total) - 1.0) < 1e-5
        px = model.decode(torch.randn(5, 4, 2))                     # (S, B) codes against B images
        assert px.log_prob(grid[:4]).shape == (5, 4)
        assert px.sample().shape == (5, 4, 1, 3, 3)
    out = elbo(model, grid[:6])
    assert set(out) == {"loss", "rate", "distortion"} and torch.isfinite(out["loss"])


# ----------------------------------------------------------------------------- free bits and the run objectives
def test_free_bits_floor_the_rate_per_dimension() -> None:
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=4, **SMALL))
    x = images(16)
    torch.manual_seed(1)
    out = free_bits_elbo(model, x, free_bits=10.0)               # every dimension below lambda: rate is free
    torch.manual_seed(1)
    plain = elbo(model, x)
    torch.testing.assert_close(out["distortion"], plain["distortion"])
    torch.testing.assert_close(out["rate"], plain["rate"])          # the reported rate is the true KL
    torch.testing.assert_close(out["loss"], out["distortion"] + 40.0)
    # lambda between the dimensions' batch-mean rates: those above keep their rate, those below pay lambda
    with torch.no_grad():
        per_dim = kl_divergence(model.encode(x).base_dist, Normal(0.0, 1.0)).mean(0)     # (M,)
        lam = float(per_dim.median())
        torch.manual_seed(1)
        mid = free_bits_elbo(model, x, free_bits=lam)
    torch.testing.assert_close(mid["loss"], mid["distortion"] + torch.where(per_dim > lam, per_dim, lam).sum())
    out["loss"].backward()
    encoder_grad_mu = model.encoder[-1].weight.grad[:4].clone()     # rows of mu: only the distortion pulls
    model.zero_grad()
    torch.manual_seed(1)
    free_bits_elbo(model, x, free_bits=0.0)["loss"].backward()      # lambda = 0: the plain ELBO
    torch.manual_seed(1)
    model2 = VAE(VAEConfig(latent=4, **SMALL))
    model2.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    elbo(model2, x)["loss"].backward()
    torch.testing.assert_close(model.encoder[-1].weight.grad, model2.encoder[-1].weight.grad, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(encoder_grad_mu, model2.encoder[-1].weight.grad[:4])


def test_run_objectives_train_on_their_bound_and_validate_on_the_elbo() -> None:
    from course_lib.runs.vae import VAETrainMore, vae_objective

    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=3, **SMALL))
    x = images(8)
    iwae_objective = vae_objective(VAETrainMore(k=5), lambda: 0.0)
    model.train()
    assert "bound" in iwae_objective(model, x)
    model.eval()
    assert "bound" not in iwae_objective(model, x)
    fb = vae_objective(VAETrainMore(free_bits=100.0), lambda: 0.0)
    model.train()
    out = fb(model, x)
    torch.testing.assert_close(out["loss"], out["distortion"] + 300.0)


def test_check_gaussian_kl() -> None:
    def right(mu, logvar):
        return 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(-1)

    check_gaussian_kl(right)
    with pytest.raises(ExerciseError, match="factor of 2"):
        check_gaussian_kl(lambda mu, logvar: 2 * right(mu, logvar))
    with pytest.raises(ExerciseError, match="wrong sign"):
        check_gaussian_kl(lambda mu, logvar: -right(mu, logvar))
    with pytest.raises(ExerciseError, match="one dimension too many"):
        check_gaussian_kl(lambda mu, logvar: 0.5 * (mu ** 2 + logvar.exp() - logvar - 1))
    with pytest.raises(ExerciseError, match="None"):
        check_gaussian_kl(lambda mu, logvar: None)
    with pytest.raises(ExerciseError, match="not right yet"):
        check_gaussian_kl(lambda mu, logvar: 0.5 * (mu ** 2 + logvar.exp() - 1).sum(-1))


def test_evaluation_never_touches_the_global_rng() -> None:
    """nll_estimate draws from a local generator: the same seed gives the same number, and the
    global RNG state (which training reads) is unchanged."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(latent=2, **SMALL))
    x = images(8)
    state = torch.get_rng_state()
    a = nll_estimate(model, x, k=20, batch=4, chunk=10, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert nll_estimate(model, x, k=20, batch=4, chunk=10, seed=3) == a
    assert nll_estimate(model, x, k=20, batch=4, chunk=10, seed=4)["nll"] != a["nll"]


@pytest.mark.parametrize("lik", ["bernoulli", "gaussian", "categorical"])
def test_log_probabilities_and_kl_stay_float32_under_bf16_autocast(lik: str) -> None:
    """The networks may run in bfloat16; log p(x|z), log q and the KL must not (a GPU habit tested on the CPU)."""
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="conv", latent=4, likelihood=lik, **SMALL))
    x = images(8, binary=lik == "bernoulli")
    torch.manual_seed(1)
    exact = elbo(model, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(1)
        low = elbo(model, x)
        assert model.encoder(x).dtype == torch.bfloat16            # the network did run in bf16
    assert all(v.dtype == torch.float32 for v in low.values())
    torch.testing.assert_close(low["loss"], exact["loss"], rtol=2e-2, atol=1.0)
