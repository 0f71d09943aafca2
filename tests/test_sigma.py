"""β versus σ: the Gaussian decoder's sigma modes, the beta = 2 sigma^2 equivalence, sigma*, and the FLD."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from course_lib import runs
from course_lib.checkpoint import read_record
from course_lib.fld import feature_stats, fld, frechet_distance
from course_lib.models.classifier import LeNet, LeNetConfig
from course_lib.models.vae import VAE, SigmaVAEConfig, VAEConfig, soft_clip_log_sigma
from course_lib.nets import MNIST_SHAPE, pixels
from course_lib.objectives_sigma import gaussian_elbo, optimal_log_sigma, sse_beta_loss
from course_lib.runs import sigma as sg

D = pixels(MNIST_SHAPE)


def _grads(model: torch.nn.Module, loss: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def _model(**kw) -> VAE:
    torch.manual_seed(0)
    return VAE(SigmaVAEConfig(latent=4, hidden=32, **kw))   # float32: likelihoods are computed in float32


# ----------------------------------------------------------------------------- beta = 2 sigma^2
@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0, 100.0])
def test_beta_is_two_sigma_squared_gradients_parallel(beta: float) -> None:
    x = torch.rand(6, *MNIST_SHAPE, dtype=torch.float32)
    sigma = math.sqrt(beta / 2)
    model = _model(sigma=sigma)
    torch.manual_seed(1)
    g_elbo = _grads(model, gaussian_elbo(model, x, beta=1.0)["loss"])        # N(x; mu, beta/2), KL weight 1
    torch.manual_seed(1)                                                    # the same eps
    g_sse = _grads(model, sse_beta_loss(model, x, beta=beta)["loss"])       # SSE + beta KL
    cosine = torch.nn.functional.cosine_similarity(g_elbo, g_sse, dim=0)
    assert cosine > 1 - 1e-6
    torch.testing.assert_close(g_sse, 2 * sigma ** 2 * g_elbo, rtol=1e-4, atol=1e-5 * float(g_sse.abs().max()))             # exactly 2 sigma^2 times the ELBO's
    torch.manual_seed(1)
    g_other = _grads(model, sse_beta_loss(model, x, beta=3 * beta)["loss"])  # a mismatched beta is not parallel
    assert (g_other - g_sse).norm() > 1e-3 * g_sse.norm()


def test_gaussian_elbo_matches_torch_distributions() -> None:
    x = torch.rand(5, *MNIST_SHAPE)
    model = _model(sigma=0.3)
    torch.manual_seed(2)
    out = gaussian_elbo(model, x, beta=2.0)
    torch.manual_seed(2)
    q = model.encode(x)
    z = q.rsample()
    distortion = -Normal(model.decode(z).mean, 0.3).log_prob(x).sum((-3, -2, -1)).mean()
    torch.testing.assert_close(out["distortion"], distortion)
    torch.testing.assert_close(out["loss"], out["distortion"] + 2.0 * out["rate"])
    # the negative ELBO is SSE / (2 sigma^2) + (D/2) log(2 pi sigma^2) + KL
    torch.testing.assert_close(out["distortion"], out["sse"] / (2 * 0.3 ** 2) + D / 2 * math.log(2 * math.pi * 0.09))


def test_mean_reduction_multiplies_beta_by_the_number_of_pixels() -> None:
    x = torch.rand(4, *MNIST_SHAPE)
    model = _model()
    torch.manual_seed(3)
    g_mean = _grads(model, sse_beta_loss(model, x, beta=1.0, reduction="mean")["loss"])   # MSE + KL
    torch.manual_seed(3)
    g_sum = _grads(model, sse_beta_loss(model, x, beta=float(D), reduction="sum")["loss"])  # SSE + D KL
    torch.testing.assert_close(g_sum, D * g_mean, rtol=1e-4, atol=1e-5 * float(g_sum.abs().max()))
    with pytest.raises(ValueError, match="reduction"):
        sse_beta_loss(model, x, reduction="avg")


# ----------------------------------------------------------------------------- sigma*
def test_closed_form_sigma_star_maximises_the_likelihood() -> None:
    g = torch.Generator().manual_seed(0)
    x, mean = torch.rand(8, *MNIST_SHAPE, generator=g), torch.rand(8, *MNIST_SHAPE, generator=g)
    log_s = optimal_log_sigma(x, mean)
    torch.testing.assert_close(log_s, 0.5 * ((x - mean) ** 2).mean().log())
    nll = lambda s: -Normal(mean, torch.as_tensor(s).exp()).log_prob(x).sum()   # noqa: E731
    for step in (-0.05, 0.05):
        assert nll(log_s) < nll(log_s + step)
    s = log_s.clone().requires_grad_(True)
    nll(s).backward()
    assert abs(float(s.grad)) < 1e-2                                            # a stationary point (out of ~6e3)


def test_learned_log_sigma_converges_to_log_root_mse() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, *MNIST_SHAPE, generator=g)
    mean = x + 0.1 * torch.randn(x.shape, generator=g)                          # a fixed decoder, MSE ~ 0.01
    raw = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([raw], lr=0.05)
    for _ in range(400):
        log_s = soft_clip_log_sigma(raw, -4.6)
        loss = -Normal(mean, log_s.exp()).log_prob(x).sum() / len(x)
        opt.zero_grad(), loss.backward(), opt.step()
    torch.testing.assert_close(soft_clip_log_sigma(raw, -4.6).detach(), optimal_log_sigma(x, mean), atol=1e-3, rtol=0)


def test_soft_clip_floors_log_sigma_smoothly() -> None:
    raw = torch.linspace(-30, 5, 200, requires_grad=True)
    out = soft_clip_log_sigma(raw, -4.6)
    assert (out >= -4.6).all() and (out[raw > -10] > -4.6).all() and torch.allclose(out[raw > 0], raw[raw > 0], atol=0.02)
    out.sum().backward()
    assert torch.isfinite(raw.grad).all() and (raw.grad > 0).all() and (raw.grad <= 1).all()


def test_sigma_modes_and_the_optimal_buffer() -> None:
    x = torch.rand(5, *MNIST_SHAPE)
    assert VAE(SigmaVAEConfig(sigma_mode="learned")).log_sigma_raw.shape == ()
    assert VAE(SigmaVAEConfig(sigma_mode="per_pixel")).log_sigma_raw.shape == MNIST_SHAPE
    model = VAE(SigmaVAEConfig(sigma_mode="optimal"))
    out = gaussian_elbo(model.train(), x)
    torch.testing.assert_close(model.log_sigma_opt, out["log_sigma"])             # written in training
    before = model.log_sigma_opt.clone()
    gaussian_elbo(model.eval(), x * 0.5)
    torch.testing.assert_close(model.log_sigma_opt, before)                     # not in evaluation
    assert "log_sigma_opt" not in dict(model.named_parameters())
    with pytest.raises(ValueError, match="sigma_mode"):
        SigmaVAEConfig(sigma_mode="learnt")
    with pytest.raises(ValueError, match="gaussian"):
        SigmaVAEConfig(likelihood="bernoulli", sigma_mode="learned")


# ----------------------------------------------------------------------------- FLD
def test_frechet_distance_known_answers() -> None:
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2; diagonal: the sum over coordinates
    d = frechet_distance(torch.tensor([1.0]), torch.tensor([[4.0]]), torch.tensor([3.0]), torch.tensor([[9.0]]))
    assert d == pytest.approx(4 + 1)
    c1, c2 = torch.diag(torch.tensor([1.0, 4.0])), torch.diag(torch.tensor([9.0, 1.0]))
    assert frechet_distance(torch.zeros(2), c1, torch.ones(2), c2) == pytest.approx(2 + (1 - 3) ** 2 + (2 - 1) ** 2)
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(torch.zeros(2), c1, torch.zeros(3), torch.eye(3))


def _lenet() -> LeNet:
    path = runs.checkpoint_dir() / "lenet_mnist.json"
    if path.is_file():
        return runs.trained("lenet_mnist", "cpu", allow_training=False)[0]
    torch.manual_seed(0)
    return LeNet(LeNetConfig()).eval()


def test_fld_is_zero_on_itself_and_grows_with_noise() -> None:
    from course_lib.data import load

    lenet = _lenet()
    x = load("mnist", "test", "cpu", 3000).x
    ref = feature_stats(x, lenet)
    assert ref[0].dtype == torch.float64 and ref[1].dtype == torch.float64
    assert abs(fld(x, ref, lenet)) < 1e-6
    g = torch.Generator().manual_seed(0)
    noisy = [fld((x + s * torch.randn(x.shape, generator=g)).clamp(0, 1), ref, lenet) for s in (0.05, 0.1, 0.2, 0.4)]
    assert all(a < b for a, b in zip(noisy, noisy[1:])) and noisy[0] > 0


def test_fld_agrees_with_torchmetrics_fid() -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):      # torchmetrics calls feature(imgs); ours is LeNet.features
        def __init__(self, net: LeNet) -> None:
            super().__init__()
            self.net, self.num_features = net, net.num_features

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net.features(x)

    lenet = _lenet()
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(600, *MNIST_SHAPE, generator=g), torch.rand(600, *MNIST_SHAPE, generator=g) ** 2
    fid = FrechetInceptionDistance(feature=Features(lenet), normalize=True)
    fid.update(a, real=True)
    fid.update(b, real=False)
    assert fld(b, a, lenet) == pytest.approx(float(fid.compute()), rel=1e-4, abs=1e-6)


def test_lenet_shapes_and_a_clear_error() -> None:
    net = LeNet()
    assert net(torch.rand(3, *MNIST_SHAPE)).shape == (3, 10) and net.features(torch.rand(3, *MNIST_SHAPE)).shape == (3, 84)
    assert 55_000 < sum(p.numel() for p in net.parameters()) < 65_000
    with pytest.raises(ValueError, match="reshape"):
        net.features(torch.rand(3, D))


# ----------------------------------------------------------------------------- runs
def test_sigma_runs_table_and_unchanged_vae_hashes() -> None:
    names = set(sg.SHIPPED)
    for tag in sg.DATASETS:
        for b in sg.BETAS:
            assert {f"sigma_{tag}_fixed_b{sg.beta_tag(b)}", f"sigma_{tag}_learned_b{sg.beta_tag(b)}"} <= names
    assert [n for n, r in sg.SHIPPED.items() if r.ship_weights] == ["lenet_mnist", "lenet_fashion"]
    assert len({r.hash() for r in sg.SHIPPED.values()}) == len(sg.SHIPPED)      # no two runs train the same thing
    assert sg.SHIPPED["sigma_mnist_s100"].model.sigma == pytest.approx(math.sqrt(100 / 2))
    assert sg.SHIPPED["sigma_mnist_fixed_b1"].model.sigma ** 2 == pytest.approx(0.5)
    # adding SigmaVAEConfig did not change VAEConfig, so the shipped VAEs keep their hashes
    assert "sigma_mode" not in VAEConfig.__dataclass_fields__
    for name in ("vae_gauss_s010", "vae_gauss_s071", "vae_gauss_meanmse", "vae_mlp32"):
        assert read_record(runs.checkpoint_dir() / name)["config_hash"] == runs.get(name).hash()


def test_sample_grid_round_trip() -> None:
    images = torch.rand(8, *MNIST_SHAPE)
    back = sg.read_png_grid(sg.png_grid(images))                            # (H, 8 W) uint8
    assert back.shape == (MNIST_SHAPE[1], 8 * MNIST_SHAPE[2])
    first = torch.from_numpy(back[:, : MNIST_SHAPE[2]].copy()).float() / 255
    assert (first - images[0, 0]).abs().max() <= 0.5 / 255 + 1e-6


# ----------------------------------------------------------------------------- exercise
def test_optimal_sigma_check_passes_the_answer_and_names_the_slips(capsys) -> None:
    from course_lib.exercises import ExerciseError
    from course_lib.exercises.sigma import check_optimal_sigma

    def right(x, mean):
        mse = (x - mean).square().mean()
        return mse.sqrt(), x[0].numel() / 2 * (1 + torch.log(2 * math.pi * mse))

    check_optimal_sigma(right)
    assert capsys.readouterr().out.count("Correct") == 2
    slips = {"variance": lambda x, m: (right(x, m)[0] ** 2, right(x, m)[1]),
             "per-PIXEL": lambda x, m: ((x - m).square().flatten(1).sum(1).mean().sqrt(), right(x, m)[1]),
             "2 pi": lambda x, m: (right(x, m)[0], right(x, m)[1] - x[0].numel() / 2 * math.log(2 * math.pi)),
             "you summed it": lambda x, m: (right(x, m)[0], right(x, m)[1] * len(x))}
    for hint, fn in slips.items():
        with pytest.raises(ExerciseError, match=hint):
            check_optimal_sigma(fn)
    with pytest.raises(ExerciseError, match="pair"):
        check_optimal_sigma(lambda x, m: None)
