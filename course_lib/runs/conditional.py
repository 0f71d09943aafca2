"""The shipped models of Part IV's first chapter (Conditional VAEs): training and evaluation.

Introduced in: Conditional VAEs. ``cvae_mnist`` / ``cvae_fashion`` are label-conditional
VAEs; ``cvae_mnist_uncond`` is the same network without the label (a record only: the NLL
comparison); ``sop_baseline`` and ``sop_cvae`` complete MNIST digits from 1, 2 or 3 observed
quadrants (one network for all three: each training image gets a random count);
``mnist_classifier`` judges generated digits (``tour_classifier`` is a Fashion-MNIST model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import env
from ..evaluation import eval_images, test_subset
from ..models.classifier import ConvClassifier, ConvClassifierConfig, classification_loss
from ..models.cvae import CVAE, CVAEConfig, QuadrantConfig, QuadrantCVAE, quadrant_mask
from ..objectives_conditional import conditional_elbo, conditional_log_likelihood, quadrant_elbo, quadrant_nll
from ..paired import mean_se
from .base import Run, TrainConfig


@dataclass(frozen=True)
class CVAETrain(TrainConfig):
    """Training of a conditional model on labelled batches (introduced in: Conditional VAEs)."""

    dataset: str = "dynamic_mnist"
    epochs: int = 15
    labels: bool = True
    valid_n: int | None = 5000
    valid_batch: int = 500


@dataclass(frozen=True)
class CVAEEval:
    """What `evaluate_cvae` / `evaluate_quadrants` measure (not hashed) (introduced in: Conditional VAEs)."""

    k: int = 100                    # importance samples
    n: int = 1000                   # random test images
    samples: int = 10_000           # class-conditional samples judged by the classifier
    judge: str = ""                 # shipped classifier for the samples ("" : none)


def cvae_objective(train: CVAETrain, epochs_done):
    """`conditional_elbo` on (x, y) batches (introduced in: Conditional VAEs)."""
    return lambda model, batch: conditional_elbo(model, *batch)


def quadrant_objective(train: CVAETrain, epochs_done):
    """`quadrant_elbo` with 1, 2 or 3 observed quadrants drawn per image (introduced in: Conditional VAEs)."""

    def objective(model: QuadrantCVAE, batch) -> dict:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        observed = torch.randint(1, 4, (len(x),), device=x.device)                 # (B,) in 1..3
        return quadrant_elbo(model, x, quadrant_mask(model.config.image_shape, observed))

    return objective


def classifier_objective(train: TrainConfig, epochs_done):
    """Cross-entropy on (x, y) batches (introduced in: Conditional VAEs)."""
    return classification_loss


def _settings(run: Run) -> CVAEEval:
    return CVAEEval(k=10, n=200, samples=500, judge=run.eval.judge) if env.smoke() else run.eval


@torch.no_grad()
def sample_accuracy(model: CVAE, judge: torch.nn.Module, n: int, device: torch.device, seed: int = 0) -> float:
    """Fraction of n class-conditional samples (labels 0..9 in turn) that ``judge`` assigns to their label.

    Introduced in: Conditional VAEs. A sample is the decoder's mean image at z ~ N(0, I).
    """
    gen = torch.Generator(device).manual_seed(seed)
    y = torch.arange(n, device=device) % model.config.classes                         # (n,)
    z = torch.randn(n, model.config.latent, generator=gen, device=device)            # z ~ p(z)
    x = model.decode(z, y).mean                                                       # (n, C, H, W)
    return float((judge(x).argmax(-1) == y).float().mean())


@torch.no_grad()
def evaluate_cvae(model: CVAE, run: Run, device: torch.device) -> dict:
    """Test -log p(x|y) (importance sampled) with its s.e., and the judge's accuracy on samples.

    Introduced in: Conditional VAEs.
    """
    from . import trained

    s = _settings(run)
    data = test_subset(run.train.dataset, s.n, device)
    x, y = eval_images(data), data.y
    torch.manual_seed(0)
    nll, se = mean_se(-torch.cat([conditional_log_likelihood(model, xb, yb, s.k)
                                  for xb, yb in zip(x.split(100), y.split(100))]))
    metrics = {"test_nll": nll, "test_nll_stderr": se, "test_k": s.k, "test_n": s.n}
    if s.judge and model.config.classes:
        judge = trained(s.judge, device, allow_training=False)[0]
        metrics["sample_accuracy"] = sample_accuracy(model, judge, s.samples, device)
        metrics["samples_judged"] = s.samples
    return metrics


@torch.no_grad()
def evaluate_quadrants(model: QuadrantCVAE, run: Run, device: torch.device) -> dict:
    """-log p(x_h|x_o) on test images for 1, 2 and 3 observed quadrants (introduced in: Conditional VAEs)."""
    s = _settings(run)
    x = test_subset(run.train.dataset, s.n, device).x
    metrics: dict = {"test_k": s.k, "test_n": s.n}
    for q in (1, 2, 3):
        torch.manual_seed(q)
        mask = quadrant_mask(model.config.image_shape, q).to(device)
        nll, se = mean_se(torch.cat([quadrant_nll(model, xb, mask, s.k) for xb in x.split(100)]))
        metrics.update({f"nll_q{q}": nll, f"nll_q{q}_stderr": se})
    return metrics


def evaluate_classifier(model: ConvClassifier, run: Run, device: torch.device) -> dict:
    """Test accuracy (introduced in: Conditional VAEs)."""
    data = test_subset(run.train.dataset, 10_000, device)
    with torch.no_grad():
        return {"test_accuracy": float((model(data.x).argmax(-1) == data.y).float().mean())}


def cvae_run(model: CVAEConfig, train: CVAETrain, judge: str = "", ship_weights: bool = True) -> Run:
    """A label-conditional (or, with classes=0, unconditional) VAE run (introduced in: Conditional VAEs)."""
    return Run("cvae", model, train, build=CVAE, objective=cvae_objective, evaluate=evaluate_cvae,
               eval=CVAEEval(judge=judge), ship_weights=ship_weights)


def quadrant_run(model: QuadrantConfig, train: CVAETrain) -> Run:
    """A quadrant-completion run: CVAE with a prior network, or (latent=0) the baseline (introduced in: Conditional VAEs)."""
    return Run("quadrant_cvae", model, train, build=QuadrantCVAE, objective=quadrant_objective,
               evaluate=evaluate_quadrants, eval=CVAEEval())


CVAE_TRAIN = CVAETrain()
QUADRANT_TRAIN = CVAETrain(dataset="mnist", labels=False)
SHIPPED: dict[str, Run] = {
    "mnist_classifier": Run("classifier", ConvClassifierConfig(), TrainConfig(dataset="mnist", epochs=6, labels=True),
                            build=ConvClassifier, objective=classifier_objective, evaluate=evaluate_classifier),
    "cvae_mnist": cvae_run(CVAEConfig(), CVAE_TRAIN, judge="mnist_classifier"),
    "cvae_mnist_uncond": cvae_run(CVAEConfig(classes=0), CVAE_TRAIN, ship_weights=False),
    "cvae_fashion": cvae_run(CVAEConfig(), CVAETrain(dataset="fashion_mnist"), judge="tour_classifier"),
    "sop_baseline": quadrant_run(QuadrantConfig(latent=0), QUADRANT_TRAIN),
    "sop_cvae": quadrant_run(QuadrantConfig(), QUADRANT_TRAIN),
}
