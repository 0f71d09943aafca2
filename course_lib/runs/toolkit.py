"""The toolkit tour's shipped classifier (introduced in: The course toolkit)."""

from __future__ import annotations

from ..models.classifier import ClassifierConfig, MLPClassifier, classification_loss
from .base import Run, TrainConfig


def classifier_objective(train: TrainConfig, epochs_done) -> callable:
    """Cross-entropy on (x, y) batches; ``epochs_done`` is unused (no schedule).

    Introduced in: The course toolkit.
    """
    return classification_loss


SHIPPED: dict[str, Run] = {
    "tour_classifier": Run("classifier", ClassifierConfig(), TrainConfig(dataset="fashion_mnist", epochs=10,
                                                                          labels=True),
                           build=MLPClassifier, objective=classifier_objective),
}
