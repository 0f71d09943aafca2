"""Part III runs: the data hook of `Run`, dSprites batches, the capacity schedule, one short fit per objective."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from course_lib import runs
from course_lib.evaluation_disentangle import DisentangleEval, grid_index, kl_per_unit
from course_lib.dsprites import DSprites
from course_lib.runs import disentanglement as dis
from course_lib.runs.base import fit_run, trained

TINY_EVAL = DisentangleEval(n_points=500, grid_step=(2, 3, 20, 16, 16), grid_samples=200, fvae_train=40,
                            fvae_eval=20, n_images=200, decomposition_batch=100, decomposition_reference=300)


@pytest.fixture(autouse=True)
def _full_setting(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAE_COURSE_SMOKE", "0")
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VAE_COURSE_RETRAIN", raising=False)


def tiny(name: str) -> runs.Run:
    run = runs.get(name)
    return replace(run, train=replace(run.train, epochs=2, steps_per_epoch=3, valid_n=100, valid_batch=50),
                   eval=TINY_EVAL)


def test_a_run_supplies_its_own_data_through_the_hook(tmp_path: Path) -> None:
    seen = []

    def data(train, device, smoke):
        seen.append((train.steps_per_epoch, smoke))
        x = (torch.rand(8, 1, 32, 32) > 0.5).float()
        return [x, x], [x]

    run = replace(tiny("betavae_b4"), data=data, evaluate=None)
    _, record = fit_run("hook", run, "cpu", tmp_path, smoke=False, verbose=False)
    assert seen == [(3, False)] and record["step"] == 2 * 2
    assert replace(run, data=None).hash() == run.hash()                 # the data hook is not hashed


def test_dsprites_batches_come_from_the_global_rng_and_validation_is_fixed() -> None:
    train = replace(dis.BASE, steps_per_epoch=4, valid_n=100, valid_batch=50)
    torch.manual_seed(0)
    a, va = dis.dsprites_loaders(train, torch.device("cpu"), smoke=False)
    first = [x.clone() for x in a]
    torch.manual_seed(0)
    b, vb = dis.dsprites_loaders(train, torch.device("cpu"), smoke=False)
    assert len(a) == 4 and all(torch.equal(x, y) for x, y in zip(first, b))
    assert first[0].shape == (64, 1, 32, 32) and [v.shape[0] for v in va] == [50, 50]
    assert all(torch.equal(x, y) for x, y in zip(va, vb))
    smoke, _ = dis.dsprites_loaders(train, torch.device("cpu"), smoke=True)
    assert len(smoke) * 64 <= 2000


def test_capacity_rises_linearly_then_holds() -> None:
    train = replace(dis.BASE, objective="annealed", capacity=25.0, anneal_epochs=5.0, gamma=1000.0)
    assert [dis.capacity_at(train, e) for e in (0, 2.5, 5, 9)] == [0.0, 12.5, 25.0, 25.0]
    with pytest.raises(ValueError, match="objective"):
        replace(dis.BASE, objective="beta-vae")


@pytest.mark.parametrize("name", ["betavae_b4", "annealed_c25", "tcvae_b6", "factorvae_g35"])
def test_each_objective_trains_evaluates_and_reloads(name: str, tmp_path: Path) -> None:
    model, record = fit_run(name, tiny(name), "cpu", tmp_path, smoke=False, verbose=False)
    m = record["metrics"]
    assert record["images_seen"] == 2 * 3 * 64 and record["finished"]
    for key in ("mig", "mig_grid", "factorvae_score", "dci_disentanglement", "rate", "distortion", "mi", "tc",
                "dim_kl", "active_units"):
        assert key in m, key
    assert abs(sum(m["kl_per_unit"]) - m["rate"]) < 1e-3 and len(m["mig_per_factor"]) == 5
    if name == "factorvae_g35":
        assert "train_disc_loss" in m and model.discriminator is not None
    again, _ = trained(name, tiny(name), "cpu", tmp_path, allow_training=False)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_the_sweep_ships_weights_only_for_the_models_the_chapter_decodes() -> None:
    shipped = {n for n, r in dis.SHIPPED.items() if r.ship_weights}
    assert {f"betavae_b{b}" for b in dis.BETAS} | {"tcvae_b6", "annealed_c25", "factorvae_g35"} == shipped
    seeds = [n for n in dis.SHIPPED if n.split("_seed")[0] in ("betavae_b1", "tcvae_b6")]
    assert len(seeds) == 6                                              # 3 seeds each for the VAE and β-TCVAE
    assert all(r.train.image_size == 32 and r.model.image_shape == (1, 32, 32) for r in dis.SHIPPED.values())


def test_grid_index_and_kl_per_unit() -> None:
    data = DSprites(32)
    idx = grid_index(data, (1, 1, 4, 2, 2))
    assert len(idx) == 3 * 6 * 10 * 16 * 16 and len(idx.unique()) == len(idx)
    assert set(data.factors(idx)[:, 2].unique().tolist()) == set(range(0, 40, 4))
    mu, logvar = torch.randn(50, 3), torch.randn(50, 3)
    expect = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                               torch.distributions.Normal(0.0, 1.0)).mean(0)
    assert torch.allclose(kl_per_unit(mu, logvar), expect, atol=1e-5)


def test_reference_decomposition_is_exact_when_the_reference_is_every_other_image() -> None:
    """With one code at a time and all N - 1 other posteriors as the reference, the estimate of q(z) is the
    exact mixture (1/N) sum_n q(z|x_n): averaged over the codes it equals the exact decomposition."""
    from torch.distributions import Independent, Normal

    from course_lib.evaluation_disentangle import reference_decomposition
    from course_lib.objectives_disentangle import elbo_decomposition

    g = torch.Generator().manual_seed(0)
    n = 40
    mu = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([2.0, 1.0, 0.3], dtype=torch.float64)
    scale = 0.2 + 0.5 * torch.rand(n, 3, generator=g, dtype=torch.float64)
    prior = Independent(Normal(torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)), 1)
    z = mu + scale * torch.randn(n, 3, generator=g, dtype=torch.float64)
    exact = elbo_decomposition(Independent(Normal(mu, scale), 1), z, prior, n, "stratified")   # batch = data set
    ours = {"mi": 0.0, "tc": 0.0, "dim_kl": 0.0}
    for i in range(n):
        rest = torch.arange(n) != i
        one = reference_decomposition(Independent(Normal(mu[i:i + 1], scale[i:i + 1]), 1), z[i:i + 1], prior,
                                      mu[rest], scale[rest], n, chunk=7)
        for k in ours:
            ours[k] += one[k] / n
    for k in ours:
        assert abs(ours[k] - float(exact[k])) < 1e-9, (k, ours[k], float(exact[k]))
