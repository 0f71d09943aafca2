"""Part V: the hierarchical VAE, its objectives, update skipping and its runs."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch.distributions import Normal

from course_lib import nets
from course_lib.checkpoint import load_checkpoint
from course_lib.models.hvae import POSTERIORS, HVAE, HVAEConfig, precision_weighted_merge
from course_lib.objectives_hierarchical import hierarchical_elbo, hierarchical_iwae, kl_per_layer, warmup_weight
from course_lib.runs.base import fit_run
from course_lib.runs.hierarchical import SHIPPED, HierEval, HierTrain, hier_run
from course_lib.trainer import Trainer

SMALL = HVAEConfig(channels=8, top=4, groups=((4, 2), (2, 1)))


def binary_images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *nets.MNIST_SHAPE, generator=g).round()


def test_precision_weighted_merge_is_the_product_of_the_two_gaussians() -> None:
    g = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.randn(5, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    s1, s2 = (0.2 + torch.rand(5, generator=g, dtype=torch.float64) for _ in range(2))
    mu, sigma = precision_weighted_merge(mu1, s1, mu2, s2)
    z = torch.linspace(-3, 3, 13, dtype=torch.float64)[:, None]                  # (13, 1) against (5,)
    product = Normal(mu1, s1).log_prob(z) + Normal(mu2, s2).log_prob(z)        # log N1 + log N2, (13, 5)
    difference = product - Normal(mu, sigma).log_prob(z)                       # constant in z iff proportional
    assert torch.allclose(difference, difference[:1].expand_as(difference), atol=1e-10)


@pytest.mark.parametrize("posterior", POSTERIORS)
def test_every_level_has_its_shape_and_the_decoder_the_image_shape(posterior: str) -> None:
    model = HVAE(HVAEConfig(posterior=posterior))
    x = binary_images(3)
    px, levels = model.forward_levels(x)
    assert px.mean.shape == (3, *nets.MNIST_SHAPE) and px.log_prob(x).shape == (3,)
    h, w = nets.MNIST_SHAPE[1:]
    expected = [(3, 16), (3, 4, h // 4, w // 4), (3, 4, h // 4, w // 4), (3, 2, h // 2, w // 2)]
    assert [tuple(z.shape) for _, _, z in levels] == expected
    assert all(q.loc.shape == p.loc.shape == z.shape for q, p, z in levels)
    assert model.encode(x).event_shape == model.prior().event_shape == (16,)
    images, zs = model.generate(2)
    assert images.shape == (2, *nets.MNIST_SHAPE) and [tuple(z.shape[1:]) for z in zs] == [e[1:] for e in expected]


def test_generate_keeps_the_latents_it_is_given() -> None:
    model = HVAE(SMALL).eval()
    _, zs = model.generate(3, generator=torch.Generator().manual_seed(0))
    _, again = model.generate(3, keep=[zs[0], None, None], generator=torch.Generator().manual_seed(1))
    assert torch.equal(again[0], zs[0]) and not torch.equal(again[2], zs[2])


def test_bad_configs_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="choose from"):
        HVAEConfig(posterior="upside_down")
    with pytest.raises(ValueError, match="coarse to fine"):
        HVAEConfig(groups=((2, 2), (4, 4)))
    with pytest.raises(ValueError, match=">= 0"):
        hierarchical_elbo(HVAE(SMALL), binary_images(2), free_bits=-1.0)


def far_from_the_prior(model: HVAE) -> HVAE:
    """Shift q(z_top|x) three units off the prior, so the top layer's KL is large (about 18 nats)."""
    with torch.no_grad():
        model.enc_top[-1].bias[:SMALL.top] += 3.0
    return model.eval()


def test_kl_per_layer_sums_to_the_rate_and_matches_the_sampled_log_ratio() -> None:
    torch.manual_seed(0)
    model = far_from_the_prior(HVAE(SMALL))
    x = binary_images(2)
    out = hierarchical_elbo(model, x)
    layers = [out[f"kl_{i}"] for i in range(len(SMALL.groups) + 1)]
    assert torch.allclose(sum(layers), out["rate"]) and torch.allclose(out["loss"], out["distortion"] + out["rate"])
    # E_q[log q - log p] over every layer (Monte Carlo) = E over z_>l of the closed-form KL per layer
    with torch.no_grad():
        xs = x.repeat(4000, 1, 1, 1)
        _, levels = model.forward_levels(xs)
        closed = sum(kl_per_layer(levels)).mean()
        _, _, log_ratio = model.log_weights(x, 4000, torch.Generator().manual_seed(1))
    assert abs(float(closed) - float(log_ratio.mean())) < 0.02 * float(closed)


def test_iwae_with_one_sample_is_the_elbo_in_expectation_and_more_samples_bound_it_above() -> None:
    torch.manual_seed(0)
    model = far_from_the_prior(HVAE(SMALL))
    x = binary_images(2)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        one = torch.stack([hierarchical_iwae(model, x, 1, g)["bound"] for _ in range(300)]).mean()
        elbo = -torch.stack([hierarchical_elbo(model, x)["loss"] for _ in range(300)]).mean()
        many = torch.stack([hierarchical_iwae(model, x, 50, g)["bound"] for _ in range(20)]).mean()
    assert abs(float(one - elbo)) < 0.01 * abs(float(elbo))
    assert float(many) > float(one)


def test_free_bits_floor_each_layer_and_the_warmup_weight() -> None:
    torch.manual_seed(0)
    model = HVAE(SMALL)
    x = binary_images(4)
    torch.manual_seed(1)
    plain = hierarchical_elbo(model, x, beta=0.5)
    torch.manual_seed(1)
    floored = hierarchical_elbo(model, x, beta=0.5, free_bits=1e4)               # above every layer's KL
    assert torch.allclose(plain["loss"], plain["distortion"] + 0.5 * plain["rate"])
    layers = len(SMALL.groups) + 1
    assert torch.allclose(floored["loss"], floored["distortion"] + 0.5 * layers * 1e4)
    assert torch.allclose(floored["rate"], plain["rate"])                         # rate stays the true KL
    params = list(model.parameters())                                           # no KL gradient below the floor
    g_loss = torch.autograd.grad(floored["loss"], params, retain_graph=True)
    g_distortion = torch.autograd.grad(floored["distortion"], params)
    assert all(torch.allclose(a, b) for a, b in zip(g_loss, g_distortion))
    assert [warmup_weight(e, 4.0) for e in (0.0, 2.0, 4.0, 9.0)] == [0.0, 0.5, 1.0, 1.0]
    assert warmup_weight(0.0, 0.0) == 1.0


def test_update_skipping_skips_exactly_the_exploding_steps() -> None:
    scales = [1.0, 1e6, 2.0, 3.0, 5e5, 4.0]                                     # steps 1 and 4 explode
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(model.weight)

    def objective(m: torch.nn.Module, s: torch.Tensor) -> dict:
        return {"loss": m.weight.sum() * s[0]}                                  # gradient = s

    trainer = Trainer(model, objective, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                      skip_grad=100.0, progress=False, verbose=False)
    trainer.fit([torch.tensor([s]) for s in scales], 1)
    applied = [s for s in scales if s < 100.0]                                  # w = -lr * sum of applied gradients
    assert torch.allclose(model.weight, torch.tensor([[-0.1 * sum(applied)]]))
    assert trainer.history["train"]["skipped"] == [pytest.approx(2 / len(scales))]
    plain = Trainer(torch.nn.Linear(1, 1, bias=False), objective, progress=False, verbose=False)
    plain.fit([torch.tensor([1.0])], 1)
    assert "skipped" not in plain.history["train"]                              # off by default


def test_a_run_trains_saves_and_loads_back_identically(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VAE_COURSE_SMOKE", "1")
    run = hier_run(SMALL, HierTrain(epochs=1, warmup_epochs=1.0, free_bits=0.1), HierEval(k=5, n=20),
                   ship_weights=True)
    model, record = fit_run("hvae_tiny", run, "cpu", directory=tmp_path, verbose=False)
    assert len(record["metrics"]["layer_kl"]) == len(SMALL.groups) + 1
    assert record["metrics"]["train_skipped"] == 0.0 and "train_kl_2" in record["metrics"]
    fresh = HVAE(SMALL)
    load_checkpoint(tmp_path / "hvae_tiny", fresh, expect_hash=run.hash())
    x = binary_images(3)
    a = model.log_weights(x, 4, torch.Generator().manual_seed(0))[0]
    b = fresh.eval().log_weights(x, 4, torch.Generator().manual_seed(0))[0]
    assert torch.equal(a, b)


def test_only_the_decoded_model_ships_weights() -> None:
    hier = {name: run for name, run in SHIPPED.items() if run.family == "hvae"}
    assert [name for name, run in hier.items() if run.ship_weights] == ["hvae_mnist"]
    assert sum(p.numel() for p in HVAE(hier["hvae_mnist"].model).parameters()) <= 80_000
    assert replace(hier["hvae_mnist"].train).skip_grad is not None
