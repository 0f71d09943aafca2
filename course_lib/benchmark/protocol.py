"""The benchmark's protocol: what every model is measured with, and the per-image bounds.

Introduced in: Benchmark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .. import env, runs
from ..dsprites import DSprites
from ..evaluation import eval_images, test_subset
from ..objectives import log_weights
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
    ``ae`` (reconstruction only). ``fld_with``: the LeNet whose features score samples ("": none).
    """
    family: str
    kind: str = "latent"
    fld_with: str = "lenet_mnist"
    prior: str = ""


BENCHMARKED: dict[str, Entry] = {
    "ae_mnist_z16": Entry("autoencoder", "ae", ""),
    "vae_mlp2d": Entry("VAE, MLP, 2-d latent"),
    "vae_mlp2d_vamp": Entry("VAE, MLP, 2-d, VampPrior"),
    "vae_mlp32": Entry("VAE, MLP"),
    "vae_mlp32_warmup": Entry("VAE, MLP, KL warm-up"),
    "vae_mlp32_freebits": Entry("VAE, MLP, free bits"),
    "vae_mlp32_iwae5": Entry("IWAE, k = 5"),
    "vae_ar": Entry("VAE, autoregressive decoder", fld_with=""),   # 784 sequential passes per sample
    "vae_conv": Entry("VAE, convolutional"),
    "hvae_mnist": Entry("hierarchical VAE"),
    "cvae_mnist": Entry("CVAE", "conditional"),
    "vqvae_mnist": Entry("VQ-VAE + PixelCNN", "vq", prior="pixelcnn_mnist"),
    "vae_gauss_s010": Entry("VAE, Gaussian decoder, sigma 0.1"),
    "vae_gauss_s071": Entry("VAE, Gaussian decoder, sigma 0.71"),
    # not here: vae_cat, whose 256-level decoder costs ~50x a Bernoulli one per importance sample
    # (about a CPU hour at k = 1000 on 1,000 images); chapter 05c reports it.
    "cvae_fashion": Entry("CVAE", "conditional", "lenet_fashion"),
    **{f"betavae_b{b}": Entry(f"beta-VAE, beta {b}", fld_with="") for b in (1, 4, 16)},
    "tcvae_b6": Entry("beta-TC-VAE", fld_with=""),
    "factorvae_g35": Entry("FactorVAE", fld_with=""),
}


def test_data(name: str, n: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The protocol's n test images (and labels) of model ``name``'s data set (introduced in: Benchmark)."""

    train = runs.get(name).train
    if hasattr(train, "image_size"):                                       # dSprites: no test split; seeded images
        data = DSprites(train.image_size, device)
        return data.images(data.sample_index(n, torch.Generator().manual_seed(seed))), None
    split = test_subset(train.dataset, n, device, seed)
    return eval_images(split, seed), split.y



class _Given(nn.Module):
    """A conditional model with its labels bound, so that `log_weights` sees encode(x), decode(z), prior()."""

    def __init__(self, model: nn.Module, y: torch.Tensor) -> None:
        super().__init__()
        self.model, self.y = model, y

    def encode(self, x):
        return self.model.encode(x, self.y)

    def decode(self, z):                                                   # z (k, B, M): the labels repeat over k
        return self.model.decode(z, self.y.expand(*z.shape[:-1]))

    def prior(self):
        return self.model.prior()


@torch.no_grad()
def per_image_terms(model: nn.Module, x: torch.Tensor, k: int, y: torch.Tensor | None = None, batch: int = 100,
                    chunk: int = 250, seed: int = 0) -> dict[str, torch.Tensor]:
    """Per image (N,): ``iwae`` = L_k, ``elbo``, ``rate`` = E_q[log q - log p] and ``distortion`` = -E_q[log p(x|z)].

    Introduced in: Benchmark. The k draws of each image give all four: rate and distortion are
    averaged over k posterior samples, not one. Noise as in `course_lib.paired.per_image_bounds`
    (the same images, k and seed give the same L_k).
    """
    model.eval()
    gen = torch.Generator(x.device).manual_seed(seed)
    out: dict[str, list] = {"iwae": [], "elbo": [], "rate": [], "distortion": []}
    for start in range(0, len(x), batch):
        xb = x[start:start + batch]
        m = model if y is None else _Given(model, y[start:start + batch])
        parts = [log_weights(m, xb, min(chunk, k - s), gen) for s in range(0, k, chunk)]
        log_w, log_px, log_ratio = (torch.cat(t) for t in zip(*parts))    # (k, B) each
        out["iwae"].append(torch.logsumexp(log_w, 0) - math.log(k))        # log (1/k) sum_i w_i
        out["elbo"].append(log_w.mean(0))                                  # (1/k) sum_i log w_i
        out["rate"].append(log_ratio.mean(0))                              # MC estimate of KL(q || p)
        out["distortion"].append(-log_px.mean(0))
    return {key: torch.cat(v) for key, v in out.items()}


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
