"""Exercise checks of the chapter "The course toolkit"."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..models.classifier import ClassifierConfig, MLPClassifier
from ..nets import MNIST_SHAPE
from .check import ExerciseError, check_close


def check_objective(objective) -> None:
    """``objective(model, (x, y))`` returns a dict with the mean cross-entropy ``loss`` and the ``error`` rate.

    Introduced in: The course toolkit.
    """
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, *MNIST_SHAPE, generator=gen)
    y = torch.randint(0, 10, (64,), generator=gen)
    model = MLPClassifier(ClassifierConfig(hidden=16))
    out = objective(model, (x, y))
    if not isinstance(out, dict):
        raise ExerciseError(f"the objective should return a dict, got {type(out).__name__}")
    missing = {"loss", "error"} - set(out)
    if missing:
        raise ExerciseError(f"the dict is missing the key(s) {sorted(missing)}")
    if not torch.is_tensor(out["loss"]) or not out["loss"].requires_grad:
        raise ExerciseError("loss must be a tensor that carries gradients: did you call .item() or .detach()?")
    logits = model(x)
    check_close(out["loss"], F.cross_entropy(logits, y), "loss (mean cross-entropy)")
    check_close(out["error"], (logits.argmax(-1) != y).float().mean(), "error (fraction of wrong predictions)")
