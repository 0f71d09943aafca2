"""The shipped models of Part IV's second chapter (VQ-VAE and a learned prior).

Introduced in: VQ-VAE and a learned prior. ``vqvae_mnist`` learns its codebook by EMA with
k-means initialisation and dead-code restarts; ``vqvae_mnist_plain`` (a record only) learns it
by gradient without either, the ablation. ``pixelcnn_mnist`` is a class-conditional Gated
PixelCNN trained on the 7 x 7 code grids of ``vqvae_mnist``: its data hook encodes the
training set with the parent, and its config holds the parent's weight hash, so a retrained
parent makes the prior stale (its checkpoint hash changes) and `load_prior` refuses a
mismatched parent with a clear error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .. import env
from .._files import tensors_sha256
from ..batches import DeviceLoader, Split
from ..checkpoint import CheckpointError, read_record
from ..evaluation import eval_images, test_subset
from ..data import load
from ..models.pixelcnn import GatedPixelCNN, PixelCNNConfig
from ..models.vqvae import VQVAE, VQVAEConfig
from ..objectives_discrete import codebook_usage, prior_nll, vq_loss
from ..paired import mean_se
from .base import SMOKE_LIMIT, Run, TrainConfig, checkpoint_dir


@dataclass(frozen=True)
class VQTrain(TrainConfig):
    """Training of a VQ-VAE (introduced in: VQ-VAE and a learned prior)."""

    dataset: str = "dynamic_mnist"
    epochs: int = 10
    commitment: float = 0.25        # beta of the commitment loss
    valid_n: int | None = 5000
    valid_batch: int = 500


@dataclass(frozen=True)
class PriorTrain(TrainConfig):
    """Training of a PixelCNN prior on a parent VQ-VAE's code grids (introduced in: VQ-VAE and a learned prior)."""

    dataset: str = "dynamic_mnist"
    epochs: int = 15
    labels: bool = True
    parent: str = "vqvae_mnist"     # the shipped VQ-VAE whose codes this prior models
    parent_sha256: str = ""         # its weights' sha256 (hashed: a new parent makes this run stale)
    valid_n: int | None = 5000


@dataclass(frozen=True)
class DiscreteEval:
    """Evaluation settings, not hashed (introduced in: VQ-VAE and a learned prior)."""

    n: int = 10_000                 # test images


def vq_objective(train: VQTrain, epochs_done):
    """`vq_loss` with the run's commitment weight (introduced in: VQ-VAE and a learned prior)."""
    return lambda model, x: vq_loss(model, x, train.commitment)


def prior_objective(train: PriorTrain, epochs_done):
    """`prior_nll` on (codes, y) batches (introduced in: VQ-VAE and a learned prior)."""
    return lambda prior, batch: prior_nll(prior, *batch)


def parent_sha256(name: str) -> str:
    """The sha256 of shipped checkpoint ``name``'s weights ("" when it is not there) (introduced in: VQ-VAE and a learned prior)."""
    try:
        return read_record(checkpoint_dir() / name)["tensors_sha256"] or ""
    except (CheckpointError, KeyError):
        return ""


def load_parent(train: PriorTrain, device: torch.device) -> VQVAE:
    """The parent VQ-VAE, refusing one whose weights are not those the prior was trained on.

    Introduced in: VQ-VAE and a learned prior.
    """
    from . import SHIPPED, trained

    parent = trained(train.parent, device, allow_training=False)[0]
    prior = next((n for n, r in SHIPPED.items() if r.train == train), "NAME")   # the prior's own run name
    found = tensors_sha256({k: v.detach().cpu() for k, v in parent.state_dict().items()})
    if train.parent_sha256 and found != train.parent_sha256:
        raise CheckpointError(f"this PixelCNN prior was trained on the codes of {train.parent} with weights "
                              f"{train.parent_sha256[:12]}..., but {train.parent} now has weights {found[:12]}...: "
                              f"its codes mean something else. Retrain the prior with "
                              f"`python -m course_lib.retrain {prior}`.")
    return parent


@torch.no_grad()
def code_split(parent: VQVAE, name: str, split: str, device: torch.device, limit: int | None) -> Split:
    """A split of images replaced by the parent's code grids (one fixed binarisation, seed 0), with labels.

    Introduced in: VQ-VAE and a learned prior.
    """
    data = load(name, split, device, limit)
    x = eval_images(data)                                                          # binarised once, seed 0
    codes = torch.cat([parent.eval().codes(xb) for xb in x.split(1000)])          # (N, h, w) long
    return Split(name, split, codes, data.y)


def code_loaders(train: PriorTrain, device: torch.device, smoke: bool) -> tuple[DeviceLoader, DeviceLoader]:
    """`Run.data` hook: batches of (codes, labels) of the parent's training and validation grids.

    Introduced in: VQ-VAE and a learned prior.
    """
    parent = load_parent(train, device)
    limit = SMOKE_LIMIT if smoke else None
    valid_n = min(train.valid_n or SMOKE_LIMIT, SMOKE_LIMIT) if smoke else train.valid_n
    return (DeviceLoader(code_split(parent, train.dataset, "train", device, limit), train.batch_size, labels=True),
            DeviceLoader(code_split(parent, train.dataset, "valid", device, valid_n), train.valid_batch,
                         shuffle=False, labels=True))


def _n(run: Run) -> int:
    return 500 if env.smoke() else run.eval.n


@torch.no_grad()
def evaluate_vq(model: VQVAE, run: Run, device: torch.device) -> dict:
    """Test -log p(x|z_q), codebook perplexity and usage, and the bound with the uniform prior.

    Introduced in: VQ-VAE and a learned prior.
    """
    x = eval_images(test_subset(run.train.dataset, _n(run), device))
    model.eval()
    codes = torch.cat([model.codes(xb) for xb in x.split(500)])                     # (N, h, w)
    nll_x = torch.cat([-model.decode_codes(c).log_prob(xb) for c, xb in zip(codes.split(500), x.split(500))])
    perplexity, used = codebook_usage(codes, model.config.codes)
    uniform = codes[0].numel() * math.log(model.config.codes)                      # 49 ln K
    d, d_se = mean_se(nll_x)
    return {"test_distortion": d, "test_distortion_stderr": d_se, "test_perplexity": float(perplexity),
            "test_codes_used": float(used), "uniform_code_nll": uniform, "test_bound_uniform": d + uniform}


@torch.no_grad()
def evaluate_prior(prior: GatedPixelCNN, run: Run, device: torch.device) -> dict:
    """Test code NLL under the prior, and the bound -log p(x|z_q) - log p(z_q) with it.

    Introduced in: VQ-VAE and a learned prior.
    """
    parent = load_parent(run.train, device)
    data = test_subset(run.train.dataset, _n(run), device)
    codes, code_nll, nll_x = vq_bound_terms(parent, prior, eval_images(data), data.y)
    (c, c_se), (b, b_se) = mean_se(code_nll), mean_se(nll_x + code_nll)
    return {"test_code_nll": c, "test_code_nll_stderr": c_se, "test_bound_prior": b, "test_bound_prior_stderr": b_se,
            "uniform_code_nll": codes[0].numel() * math.log(parent.config.codes)}


@torch.no_grad()
def vq_bound_terms(parent: VQVAE, prior: GatedPixelCNN, x: torch.Tensor, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: the code grid z_q(x) (N, h, w), -log p(z_q) under the prior and -log p(x|z_q), (N,) each.

    Introduced in: VQ-VAE and a learned prior. Their sum bounds -log p(x): q(z|x) is one code grid,
    so KL(q || p) = -log p(z_q).
    """
    codes = torch.cat([parent.codes(xb) for xb in x.split(500)])
    code_nll = torch.cat([-prior.log_prob(c, yb) for c, yb in zip(codes.split(500), y.split(500))])
    nll_x = torch.cat([-parent.decode_codes(c).log_prob(xb) for c, xb in zip(codes.split(500), x.split(500))])
    return codes, code_nll, nll_x


def vq_run(model: VQVAEConfig, train: VQTrain = VQTrain(), ship_weights: bool = True) -> Run:
    """A VQ-VAE run (introduced in: VQ-VAE and a learned prior)."""
    return Run("vqvae", model, train, build=VQVAE, objective=vq_objective, evaluate=evaluate_vq,
               eval=DiscreteEval(), ship_weights=ship_weights)


def prior_run(model: PixelCNNConfig, parent: str) -> Run:
    """A PixelCNN prior over the code grids of the shipped VQ-VAE ``parent`` (introduced in: VQ-VAE and a learned prior)."""
    train = PriorTrain(parent=parent, parent_sha256=parent_sha256(parent))
    return Run("pixelcnn", model, train, build=GatedPixelCNN, objective=prior_objective, evaluate=evaluate_prior,
               eval=DiscreteEval(), data=code_loaders)


VQ = VQVAEConfig()
SHIPPED: dict[str, Run] = {
    "vqvae_mnist": vq_run(VQ),
    "vqvae_mnist_plain": vq_run(VQVAEConfig(ema=False, kmeans_init=False, restart=False), ship_weights=False),
    "pixelcnn_mnist": prior_run(PixelCNNConfig(codes=VQ.codes), "vqvae_mnist"),
}
