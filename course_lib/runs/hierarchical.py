"""The shipped models of Part V (hierarchical VAEs): training and evaluation.

Introduced in: Hierarchical VAEs. Every run is an `HVAE` on dynamically binarized MNIST
trained on `hierarchical_elbo` with a KL warm-up, optional free bits per layer and update
skipping (``skip_grad``: the Trainer makes no update when the gradient norm exceeds it).
Only ``hvae_mnist`` ships weights (the chapter decodes from it); the others ship their
record: KL per layer over training (the history), active units per layer, and bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .. import env
from ..evaluation import eval_images, test_subset
from ..models.hvae import HVAE, HVAEConfig
from ..objectives_hierarchical import hierarchical_elbo, kl_per_layer, warmup_weight
from ..paired import mean_se, per_image_bounds
from .base import Run, TrainConfig


@dataclass(frozen=True)
class HierTrain(TrainConfig):
    """Training of a hierarchical VAE (introduced in: Hierarchical VAEs)."""

    dataset: str = "dynamic_mnist"
    epochs: int = 30
    warmup_epochs: float = 5.0        # beta rises linearly from 0 to 1 over this many epochs
    free_bits: float = 0.0            # nats per layer that cost nothing
    skip_grad: float | None = 4000.0  # no update when the gradient norm exceeds this (None: never skip)
    valid_n: int | None = 2000
    valid_batch: int = 500


@dataclass(frozen=True)
class HierEval:
    """What `evaluate_hvae` measures after training (introduced in: Hierarchical VAEs)."""

    k: int = 1000                     # importance samples of the test NLL (0: none)
    n: int = 2000                     # random test images (10000: all)
    threshold: float = 0.01           # active unit: Cov_x(E_q[z_u]) above this


def hier_objective(train: HierTrain, epochs_done):
    """`hierarchical_elbo` with the warm-up weight and free bits in training; the plain ELBO in evaluation.

    Introduced in: Hierarchical VAEs.
    """
    def objective(model: HVAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if not model.training:
            return hierarchical_elbo(model, x)
        beta = warmup_weight(epochs_done(), train.warmup_epochs)
        out = hierarchical_elbo(model, x, beta, train.free_bits)
        return {**out, "beta": torch.tensor(beta, device=x.device)}

    return objective


@torch.no_grad()
def layer_statistics(model: HVAE, x: torch.Tensor, threshold: float = 0.01) -> dict:
    """Per layer: mean KL (nats) and active units, Cov_x(E_q[z_u | x, z_>l]) > threshold (one draw of z_>l).

    Introduced in: Hierarchical VAEs. Lists ordered top layer first.
    """
    model.eval()
    kls, means = [], []
    for xb in x.split(500):
        _, levels = model.forward_levels(xb)
        kls.append(torch.stack([kl for kl in kl_per_layer(levels)]))       # (L+1, B)
        means.append([q.loc.flatten(1) for q, _, _ in levels])             # per layer (B, units)
    kl = torch.cat(kls, 1).mean(1)
    active = [int((torch.cat(m).var(0) > threshold).sum()) for m in zip(*means)]
    units = [m.shape[1] for m in means[0]]
    return {"layer_kl": [float(v) for v in kl], "layer_active": active, "layer_units": units}


@torch.no_grad()
def evaluate_hvae(model: HVAE, run: Run, device: torch.device) -> dict:
    """KL and active units per layer, and the k-sample test NLL and negative ELBO with standard errors.

    Introduced in: Hierarchical VAEs.
    """
    k, n = (20, 200) if env.smoke() else (run.eval.k, run.eval.n)
    x = eval_images(test_subset(run.train.dataset, n, device))       # binarized once, seed 0
    metrics: dict = layer_statistics(model, x, run.eval.threshold)
    if k:
        bounds = per_image_bounds(model, x, k, batch=20, chunk=100)
        (nll, nll_se), (nelbo, nelbo_se) = mean_se(-bounds["iwae"]), mean_se(-bounds["elbo"])
        metrics.update({"dynamic_nll": nll, "dynamic_nll_stderr": nll_se, "dynamic_neg_elbo": nelbo,
                        "dynamic_neg_elbo_stderr": nelbo_se, "dynamic_k": k, "dynamic_n": len(x)})
    return metrics


def hier_run(model: HVAEConfig, train: HierTrain, eval: HierEval = HierEval(), ship_weights: bool = False) -> Run:
    """A Part V run (introduced in: Hierarchical VAEs)."""
    return Run("hvae", model, train, build=HVAE, objective=hier_objective, evaluate=evaluate_hvae, eval=eval,
               ship_weights=ship_weights)


MAIN = HVAEConfig(channels=24)
TRAIN = HierTrain(epochs=45, free_bits=0.5)
SHORT = replace(TRAIN, epochs=6, warmup_epochs=1.0)       # the failure demo
SHORTER = replace(SHORT, epochs=4)                         # the comparisons: what one CPU hour leaves room for
SHIPPED: dict[str, Run] = {
    # the NVAE-style model the chapter decodes from: residual posterior, softplus sigmas, warm-up, free bits
    "hvae_mnist": hier_run(MAIN, TRAIN, HierEval(n=1000), ship_weights=True),
    # a two-layer model whose posteriors see only the bottom-up path, no warm-up nor free bits
    "hvae_bottomup2": hier_run(replace(MAIN, groups=((4, 4),), posterior="bottom_up"),
                               replace(SHORTER, warmup_epochs=0.0, free_bits=0.0), HierEval(k=100, n=500)),
    # the Ladder VAE: precision-weighted merge, same cells, warm-up
    "hvae_ladder": hier_run(replace(MAIN, posterior="ladder"), replace(SHORTER, free_bits=0.0), HierEval(k=100, n=500)),
    # the failure: the NVAE-style model without warm-up, free bits or skipping
    "hvae_mnist_plain": hier_run(MAIN, replace(SHORT, warmup_epochs=0.0, free_bits=0.0, skip_grad=None),
                                 HierEval(k=100, n=500)),
}
