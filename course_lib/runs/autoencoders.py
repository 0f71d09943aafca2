"""The shipped autoencoders of the chapter "Autoencoders", and the linear autoencoder's fit.

Introduced in: Autoencoders.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from .. import env
from ..data import DeviceLoader, Split
from ..models.autoencoder import ConvAEConfig, ConvAutoencoder, denoising_loss, reconstruction_loss
from ..models.linear import LinearAutoencoder, principal_angles
from ..trainer import Trainer
from .base import Run, TrainConfig


@dataclass(frozen=True)
class AETrain(TrainConfig):
    """Training of a (denoising) autoencoder (introduced in: Autoencoders)."""

    noise: float = 0.0      # std of the Gaussian corruption during training (0: plain autoencoder)
    lr: float = 2e-3


def ae_objective(train: AETrain, epochs_done) -> callable:
    """Squared error of reconstructing clean x from x + noise (introduced in: Autoencoders)."""
    return partial(denoising_loss, noise=train.noise)


def ae_run(latent: int, **train) -> Run:
    """A shipped conv autoencoder with bottleneck ``latent`` on MNIST (unless ``dataset=``).

    Introduced in: Autoencoders.
    """
    return Run("autoencoder", ConvAEConfig(latent=latent), AETrain(epochs=6, **train),
               build=ConvAutoencoder, objective=ae_objective)


SHIPPED: dict[str, Run] = {
    **{f"ae_mnist_z{m}": ae_run(m) for m in (2, 16, 32)},
    # at lr 2e-3 these two got stuck at the mean image (sigmoid saturated); a smaller step trains
    **{f"ae_mnist_z{m}": ae_run(m, lr=1e-3) for m in (4, 8)},
    "ae_fashion_z16": ae_run(16, dataset="fashion_mnist"),
    "ae_mnist_z16_denoise": ae_run(16, noise=0.5),
}


@dataclass(frozen=True)
class LinearAETrain(TrainConfig):
    """The linear autoencoder of the PCA section (trained on the spot, not shipped) (introduced in: Autoencoders)."""

    latent: int = 9          # M: 9 because MNIST's 9th and 10th eigenvalues are well apart
    epochs: int = 40
    batch_size: int = 500
    lr: float = 3e-3


def fit_linear_ae(data: Split, config: LinearAETrain, reference: torch.Tensor) -> tuple[LinearAutoencoder, list[float]]:
    """Train a linear AE with the Trainer; return it and the largest principal angle (degrees)
    between its decoder's span and ``reference`` (D, M) after every epoch (epoch 0 = init).

    Introduced in: Autoencoders.
    """
    env.seed_everything(config.seed)
    x = data.x
    model = LinearAutoencoder(x.flatten(1).mean(0), config.latent, tuple(x.shape[1:])).to(x.device)
    trainer = Trainer(model, reconstruction_loss, config=config, lr=config.lr, progress=False, verbose=False)
    loader = DeviceLoader(data, config.batch_size)
    largest = lambda: float(principal_angles(model.decoder.weight, reference).max().rad2deg())
    angles = [largest()]
    for epoch in range(1, config.epochs + 1):
        trainer.fit(loader, epoch)  # trains up to `epoch` epochs in total: one more
        angles.append(largest())
    model.history = trainer.history
    return model, angles
