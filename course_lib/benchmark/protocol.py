"""The benchmark's protocol: what every model is measured with, and the per-image bounds.

Introduced in: Benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import env, runs
from ..dsprites import DSprites
from ..evaluation import eval_images, test_subset
from ..paired import per_image_bounds


@dataclass(frozen=True)
class Protocol:
    """What every model is measured with (introduced in: Benchmark)."""

    k: int = 1000                   # importance samples of every likelihood bound
    n: int = 1000                   # test images (10,000: the whole MNIST test set)
    samples: int = 10_000           # decoder means drawn from the prior for the FLD, against as many test images
    seed: int = 0                   # binarization, importance-sampling noise, prior samples
    batch: int = 100                # images per importance-sampling batch
    chunk: int = 250                # importance samples per forward pass
    speed_steps: int = 10           # timed training steps per model (after 2 untimed ones)


@dataclass(frozen=True)
class Entry:
    """How one shipped model is benchmarked (introduced in: Benchmark).

    ``kind``: ``latent`` (one importance-sampled bound on log p(x)), ``conditional`` (on
    log p(x|y)), ``vq`` (the VQ-VAE bound -log p(x|z_q) - log p(z_q) with the PixelCNN ``prior``),
    ``ae`` (reconstruction only). ``fld``: score samples with the FLD (the LeNet of the model's data set).
    """
    family: str
    kind: str = "latent"
    fld: bool = True
    prior: str = ""


BENCHMARKED: dict[str, Entry] = {
    "ae_mnist_z16": Entry("autoencoder", "ae", False),
    "vae_mlp2d": Entry("VAE, MLP, 2-d latent"),
    "vae_mlp2d_vamp": Entry("VAE, MLP, 2-d, VampPrior"),
    "vae_mlp32": Entry("VAE, MLP"),
    "vae_mlp32_warmup": Entry("VAE, MLP, KL warm-up"),
    "vae_mlp32_freebits": Entry("VAE, MLP, free bits"),
    "vae_mlp32_iwae5": Entry("IWAE, k = 5"),
    "vae_ar": Entry("VAE, autoregressive decoder", fld=False),   # 784 sequential passes per sample
    "vae_conv": Entry("VAE, convolutional"),
    "hvae_mnist": Entry("hierarchical VAE"),
    "cvae_mnist": Entry("CVAE", "conditional"),
    "vqvae_mnist": Entry("VQ-VAE + PixelCNN", "vq", prior="pixelcnn_mnist"),
    "vae_gauss_s010": Entry("VAE, Gaussian decoder, sigma 0.1"),
    "vae_gauss_s071": Entry("VAE, Gaussian decoder, sigma 0.71"),
    # not here: vae_cat, whose 256-level decoder costs ~50x a Bernoulli one per importance sample
    # (about a CPU hour at k = 1000 on 1,000 images); chapter 05c reports it.
    "cvae_fashion": Entry("CVAE", "conditional"),
    **{f"betavae_b{b}": Entry(f"beta-VAE, beta {b}", fld=False) for b in (1, 4, 16)},
    "tcvae_b6": Entry("beta-TC-VAE", fld=False),
    "factorvae_g35": Entry("FactorVAE", fld=False),
}


def test_data(name: str, n: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The protocol's n test images (and labels) of model ``name``'s data set (introduced in: Benchmark)."""

    train = runs.get(name).train
    if hasattr(train, "image_size"):                                       # dSprites: no test split; seeded images
        data = DSprites(train.image_size, device)
        return data.images(data.sample_index(n, torch.Generator().manual_seed(seed))), None
    split = test_subset(train.dataset, n, device, seed)
    return eval_images(split, seed), split.y



def cached_bounds(name: str, n: int, k: int, device: torch.device | str = "cpu", seed: int = 0) -> dict:
    """`per_image_bounds` of shipped model ``name`` on the protocol's first ``n`` test images, cached on disk.

    Introduced in: Benchmark. For long evaluations (k = 1000 on all 10,000 test images is an hour
    for a hierarchical VAE on a CPU): the per-image ``iwae`` and ``elbo`` tensors are kept in the
    cache folder under the weights' checksum, so an interrupted comparison redoes only what is missing.
    """
    model, record = runs.trained(name, device, allow_training=False)
    path = env.cache_dir() / "per_image" / f"{name}_{record['tensors_sha256'][:16]}_k{k}_n{n}_s{seed}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu")
    x, _ = test_data(name, n, torch.device(device), seed)
    bounds = {key: v.cpu() for key, v in per_image_bounds(model, x, k, seed=seed).items()}    # (n,) each
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(bounds, path)
    return bounds
