"""A small MLP classifier: the toolkit tour's model (introduced in: The course toolkit).

It exists to show the machinery every later chapter uses (data on the device, the Trainer,
checkpoints, `fit_run`) on a model whose result is easy to judge: test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..nets import MNIST_SHAPE, mlp_classifier


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture of `MLPClassifier` (introduced in: The course toolkit)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE  # (C, H, W)
    hidden: int = 256                                # width of both hidden layers
    classes: int = 10


class MLPClassifier(nn.Module):
    """x (B, C, H, W) -> hidden -> hidden -> class logits (B, classes) (introduced in: The course toolkit)."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()) -> None:
        super().__init__()
        self.config = config
        self.net = mlp_classifier(config.image_shape, config.hidden, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean cross-entropy (``loss``) and accuracy of one labelled batch (introduced in: The course toolkit)."""
    x, y = batch
    logits = model(x)                                                   # (B, classes)
    return {"loss": F.cross_entropy(logits, y), "accuracy": (logits.argmax(-1) == y).float().mean()}


@dataclass(frozen=True)
class LeNetConfig:
    """Architecture of `LeNet`, LeNet-5 for 1-channel images (introduced in: β versus σ: the decoder variance)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE  # (C, H, W); H, W >= 12
    features: int = 84                               # width of the penultimate layer, the FLD features
    classes: int = 10


class LeNet(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLUs and max-pooling, about 62k parameters.

    Introduced in: β versus σ: the decoder variance. ``features(x)`` is the penultimate layer
    (B, 84), on which the Fréchet LeNet distance is computed; ``forward`` gives class logits.
    ``num_features`` lets torchmetrics' FID use it as a feature extractor.
    """

    def __init__(self, config: LeNetConfig = LeNetConfig()) -> None:
        super().__init__()
        self.config = c = config
        self.num_features = c.features
        h, w = ((s // 2 - 4) // 2 for s in c.image_shape[1:])       # 5x5 'same' conv, pool, 5x5 valid conv, pool
        self.body = nn.Sequential(
            nn.Conv2d(c.image_shape[0], 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),   # (B, 6, H/2, W/2)
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),              # (B, 16 h w)
            nn.Linear(16 * h * w, 120), nn.ReLU(), nn.Linear(120, c.features), nn.ReLU())  # (B, 84)
        self.head = nn.Linear(c.features, c.classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations (B, features) of images x (B, C, H, W) in [0, 1].

        Introduced in: β versus σ: the decoder variance.
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != tuple(self.config.image_shape):
            raise ValueError(f"LeNet expects images of shape (B, {', '.join(map(str, self.config.image_shape))}); "
                             f"got {tuple(x.shape)}: reshape flat vectors to images first")
        return self.body(x.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class ConvClassifierConfig:
    """Architecture of `ConvClassifier` (introduced in: Conditional VAEs)."""

    image_shape: tuple[int, int, int] = MNIST_SHAPE  # (C, H, W)
    channels: int = 8                                # first conv width (doubled in the second)
    classes: int = 10


class ConvClassifier(nn.Module):
    """A small judge of generated digits: two 5x5 conv + max-pool blocks and a linear layer.

    Introduced in: Conditional VAEs. x (B, C, H, W) -> class logits (B, classes).
    """

    def __init__(self, config: ConvClassifierConfig = ConvClassifierConfig()) -> None:
        super().__init__()
        self.config = c = config
        h, w = c.image_shape[1] // 4, c.image_shape[2] // 4                      # after two 2x2 pools
        self.net = nn.Sequential(nn.Conv2d(c.image_shape[0], c.channels, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(c.channels, 2 * c.channels, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(2 * c.channels * h * w, c.classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
