"""The shipped runs of "β versus σ": two LeNets for the FLD and the β x σ sweep on MNIST and Fashion-MNIST.

Introduced in: β versus σ: the decoder variance. Every VAE is the same small MLP (`SigmaVAEConfig`:
one hidden layer of 256 units, a 16-dimensional code; ten epochs take about half a minute on one
CPU core, so the 34 runs of the sweep fit in well under an hour of one core). Only the two LeNets
ship weights: the chapter decodes from no VAE. Each VAE record instead carries what the chapter
shows of it: test negative ELBO, rate, distortion, squared error, sigma, the FLD of 10,000 prior
samples against the 10,000 test images, and ``samples_png``, a PNG (base64) of 8 decoder means
at z ~ N(0, I): about 4 KB, where the weights would be 1.7 MB (`benchmarks/sigma_sweep.py` also
thins the per-step loss curve of these records, which ship by the dozen).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import env
from ..data import IMAGE_SHAPE, load
from ..fld import feature_stats, fld
from ..models.classifier import LeNet, LeNetConfig, classification_loss
from ..models.vae import VAE, SigmaVAEConfig
from ..nets import pixels
from ..objectives_sigma import gaussian_elbo, optimal_log_sigma
from ..widgets.frames import png_uri, tile
from .base import Run, TrainConfig

BETAS = (100.0, 10.0, 1.0, 0.1, 0.01, 0.001)         # the slides' table
DATASETS = {"mnist": "mnist", "fashion": "fashion_mnist"}
SIGMA_SSE = math.sqrt(0.5)                            # sigma^2 = 1/2: the negative ELBO is SSE + KL + const
# sigma* of sigma_mnist_learned_b1 (its record's test sigma, rounded): the fixed-sigma model trained at
# beta = 2 sigma*^2 (`sigma_mnist_matched`); the chapter checks this constant against the record
SIGMA_STAR_MNIST = 0.104


@dataclass(frozen=True)
class SigmaTrain(TrainConfig):
    """Training of a Gaussian-decoder VAE on the beta-weighted negative ELBO (introduced in: β versus σ: the decoder variance)."""

    dataset: str = "mnist"
    epochs: int = 10
    beta: float = 1.0               # KL weight
    valid_n: int | None = 5000
    valid_batch: int = 500


@dataclass(frozen=True)
class SigmaEval:
    """What `evaluate_sigma` measures (introduced in: β versus σ: the decoder variance)."""

    n: int = 10_000                 # test images, and prior samples for the FLD
    grid: int = 8                   # decoder means stored as a PNG in the record
    seed: int = 0                   # of the prior samples


def sigma_objective(train: SigmaTrain, epochs_done):
    """`gaussian_elbo` with KL weight ``train.beta`` (introduced in: β versus σ: the decoder variance)."""
    def objective(model: VAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return gaussian_elbo(model, x, beta=train.beta)

    return objective


def lenet_name(dataset: str) -> str:
    """The shipped LeNet of ``dataset`` (a `course_lib.data` name) (introduced in: β versus σ: the decoder variance)."""
    for tag, name in DATASETS.items():
        if name == dataset:
            return f"lenet_{tag}"
    raise ValueError(f"no LeNet for {dataset!r}; choose one of {', '.join(DATASETS.values())}")


def png_grid(images: torch.Tensor, nrow: int = 8) -> str:
    """Images (N, 1, H, W) in [0, 1] tiled nrow per row, as a base64 PNG (introduced in: β versus σ: the decoder variance)."""
    return png_uri(tile(images[:, 0].cpu(), nrow), levels=256).removeprefix("data:image/png;base64,")


def read_png_grid(text: str) -> np.ndarray:
    """The uint8 image of a `png_grid` string (introduced in: β versus σ: the decoder variance)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


_REFERENCE: dict = {}


def reference_stats(dataset: str, device: torch.device, n: int) -> tuple:
    """LeNet feature statistics of the first ``n`` test images (cached) and the LeNet itself.

    Introduced in: β versus σ: the decoder variance.
    """
    key = (dataset, str(device), n)
    if key not in _REFERENCE:
        from . import trained

        lenet = trained(lenet_name(dataset), device, allow_training=False)[0]
        _REFERENCE[key] = (lenet, feature_stats(load(dataset, "test", device, n).x, lenet))
    return _REFERENCE[key]


@torch.no_grad()
def evaluate_sigma(model: VAE, run: Run, device: torch.device) -> dict:
    """Test negative ELBO (beta = 1), rate, distortion, SSE, per-pixel MSE, sigma, FLD and a sample grid.

    Introduced in: β versus σ: the decoder variance. For ``sigma_mode="optimal"`` sigma* is first
    set in closed form from the validation images (not the test images it is scored on).
    """
    n = 1000 if env.smoke() else run.eval.n
    model.eval()
    test = load(run.train.dataset, "test", device, n).x
    if model.config.sigma_mode == "optimal":
        valid = load(run.train.dataset, "valid", device, n).x
        means = torch.cat([model.decode(model.encode(b).rsample()).mean for b in valid.split(1000)])
        model.log_sigma_opt.copy_(optimal_log_sigma(valid, means))
    parts = [gaussian_elbo(model, b, beta=1.0) for b in test.split(1000)]
    mean = {k: float(torch.stack([p[k] for p in parts]).mean()) for k in ("loss", "rate", "distortion", "sse",
                                                                          "log_sigma")}
    lenet, ref = reference_stats(run.train.dataset, device, n)
    z = torch.randn(n, model.config.latent, generator=torch.Generator().manual_seed(run.eval.seed)).to(device)
    samples = torch.cat([model.decode(b).mean for b in z.split(1000)])                  # decoder means (n, C, H, W)
    return {"test_neg_elbo": mean["loss"], "test_rate": mean["rate"], "test_distortion": mean["distortion"],
            "test_sse": mean["sse"], "test_mse": mean["sse"] / pixels(IMAGE_SHAPE),
            "sigma": math.exp(mean["log_sigma"]), "fld": fld(samples, ref, lenet), "fld_n": n,
            "samples_png": png_grid(samples[:run.eval.grid])}


@torch.no_grad()
def evaluate_lenet(model: LeNet, run: Run, device: torch.device) -> dict:
    """Test accuracy, and the FLD floor: 10,000 random training images against the 10,000 test images.

    Introduced in: β versus σ: the decoder variance.
    """
    n = 1000 if env.smoke() else 10_000
    model.eval()
    test = load(run.train.dataset, "test", device, n)
    accuracy = torch.cat([model(b).argmax(-1) for b in test.x.split(1000)]).eq(test.y).float().mean()
    train = load(run.train.dataset, "train", device).x
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:n].to(device)
    return {"test_accuracy": float(accuracy), "fld_train_test": fld(train[pick], test.x, model), "fld_n": n}


def lenet_run(dataset: str) -> Run:
    """A shipped LeNet for the FLD of ``dataset`` (introduced in: β versus σ: the decoder variance)."""
    return Run("lenet", LeNetConfig(), TrainConfig(dataset=dataset, epochs=4, labels=True), build=LeNet,
               objective=lambda train, epochs_done: classification_loss, evaluate=evaluate_lenet)


def sigma_run(dataset: str = "mnist", beta: float = 1.0, **model) -> Run:
    """A sweep member: `SigmaVAEConfig(**model)` trained at KL weight ``beta``, record only.

    Introduced in: β versus σ: the decoder variance.
    """
    config = SigmaVAEConfig(latent=16, hidden=256, **model)
    return Run("sigma_vae", config, SigmaTrain(dataset=dataset, beta=beta), build=VAE, objective=sigma_objective,
               evaluate=evaluate_sigma, eval=SigmaEval(), ship_weights=False)


def beta_tag(beta: float) -> str:
    """100.0 -> "100", 0.1 -> "0.1" (introduced in: β versus σ: the decoder variance)."""
    return f"{beta:g}"


SHIPPED: dict[str, Run] = {f"lenet_{tag}": lenet_run(name) for tag, name in DATASETS.items()}
for _tag, _name in DATASETS.items():   # the table: beta x {fixed sigma^2 = 1/2 (SSE + beta KL), learned log sigma}
    for _b in BETAS:
        SHIPPED[f"sigma_{_tag}_fixed_b{beta_tag(_b)}"] = sigma_run(_name, _b, sigma=SIGMA_SSE)
        SHIPPED[f"sigma_{_tag}_learned_b{beta_tag(_b)}"] = sigma_run(_name, _b, sigma_mode="learned")
for _b in BETAS:                       # the sigma sweep at beta = 1: sigma^2 = b / 2 (b = 1 is sigma_mnist_fixed_b1)
    if _b != 1.0:
        SHIPPED[f"sigma_mnist_s{beta_tag(_b)}"] = sigma_run("mnist", 1.0, sigma=math.sqrt(_b / 2))
SHIPPED.update({
    "sigma_mnist_perpixel": sigma_run("mnist", 1.0, sigma_mode="per_pixel"),
    "sigma_mnist_optimal": sigma_run("mnist", 1.0, sigma_mode="optimal"),
    "sigma_mnist_sigma1": sigma_run("mnist", 1.0, sigma=1.0),
    # a per-pixel mean MSE + KL: sigma^2 = D / 2 (chapter 05c's vae_gauss_meanmse, this architecture)
    "sigma_mnist_meanmse": sigma_run("mnist", 1.0, sigma=math.sqrt(pixels(IMAGE_SHAPE) / 2)),
    "sigma_mnist_matched": sigma_run("mnist", 1.0, sigma=SIGMA_STAR_MNIST),
})
