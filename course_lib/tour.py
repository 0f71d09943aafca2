"""The toolkit tour's model: a small MLP classifier of Fashion-MNIST.

Introduced in: The course toolkit. It exists to show the machinery every later chapter
uses (data on the device, the Trainer, `train_or_load`, checkpoints) on a model whose
result is easy to judge: test accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from . import env
from .checkpoint import train_or_load
from .data import DeviceLoader, load
from .trainer import Trainer


@dataclass
class ClassifierConfig:
    dataset: str = "fashion_mnist"
    hidden: int = 256
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0


class MLPClassifier(nn.Module):
    """784 -> hidden -> hidden -> 10 logits."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, config.hidden), nn.ReLU(),
                                 nn.Linear(config.hidden, config.hidden), nn.ReLU(),
                                 nn.Linear(config.hidden, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 1, 28, 28) -> (B, 10)


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Cross-entropy and accuracy of one labelled batch (an objective for `Trainer`)."""
    x, y = batch
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y),
            "accuracy": (logits.argmax(-1) == y).float().mean()}


def train_classifier(model: nn.Module, config: ClassifierConfig, path: Path) -> Trainer:
    """Train with the course Trainer, checkpointing to ``path`` every epoch."""
    device = next(model.parameters()).device
    limit = 2000 if env.smoke() else None
    epochs = 1 if env.smoke() else config.epochs
    env.seed_everything(config.seed)
    train = DeviceLoader(load(config.dataset, "train", device, limit), config.batch_size, labels=True)
    valid = DeviceLoader(load(config.dataset, "valid", device, limit), 1000, shuffle=False, labels=True)
    trainer = Trainer(model, classification_loss, config=config, lr=config.lr, checkpoint=path)
    trainer.fit(train, epochs, valid)
    return trainer


def trained_classifier(device: torch.device | str | None = None) -> tuple[MLPClassifier, dict]:
    """The shipped classifier (or a fresh one, trained, if the checkpoint is missing or stale)."""
    config = ClassifierConfig()
    return train_or_load("tour_classifier", config, MLPClassifier, train_classifier, device=device)


def check_objective(objective) -> None:
    """Exercise check (The course toolkit): an objective returning mean cross-entropy and error rate."""
    from .exercises import ExerciseError, check_close

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (64,), generator=gen)
    model = MLPClassifier(ClassifierConfig(hidden=16))
    out = objective(model, (x, y))
    if not isinstance(out, dict):
        raise ExerciseError(f"the objective should return a dict, got {type(out).__name__}")
    missing = {"loss", "error"} - set(out)
    if missing:
        raise ExerciseError(f"the dict is missing the key(s) {sorted(missing)}")
    logits = model(x)
    check_close(out["loss"], F.cross_entropy(logits, y), "loss (mean cross-entropy)")
    if not out["loss"].requires_grad:
        raise ExerciseError("loss does not carry gradients: did you call .item() or .detach()?")
    check_close(out["error"], (logits.argmax(-1) != y).float().mean(), "error (fraction of wrong predictions)")
