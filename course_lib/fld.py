"""The Fréchet LeNet distance (FLD): FID's formula on the features of a small classifier of the data set.

Introduced in: β versus σ: the decoder variance. FID compares Gaussians fitted to Inception-v3
features of real and generated images; Inception was trained on 299 x 299 colour photographs,
and a 28 x 28 grey digit upsampled to that size is far outside what it has seen. The FLD uses
the penultimate layer of a LeNet trained on the same data set (`course_lib.models.classifier.LeNet`,
shipped as ``lenet_mnist`` and ``lenet_fashion``). Means and covariances are accumulated in
float64: a covariance of 84 features from float32 sums loses digits that the matrix square root
then amplifies. The formula is that of torchmetrics' FID (a test checks the two agree).
"""

from __future__ import annotations

import torch
from torch import nn

Stats = tuple[torch.Tensor, torch.Tensor]   # (mean (F,), covariance (F, F)), float64


@torch.no_grad()
def feature_stats(images: torch.Tensor, classifier: nn.Module, batch_size: int = 1000) -> Stats:
    """Mean and covariance, in float64, of ``classifier.features`` over ``images`` (N, C, H, W) in [0, 1].

    Introduced in: β versus σ: the decoder variance.
    """
    if images.dim() != 4 or len(images) < 2:
        raise ValueError(f"feature_stats needs a batch of at least 2 images (N, C, H, W); got {tuple(images.shape)}")
    was_training = classifier.training
    classifier.eval()
    feats = torch.cat([classifier.features(b).double() for b in images.split(batch_size)])   # (N, F) float64
    classifier.train(was_training)
    mu = feats.mean(0)                                                  # (F,)
    centred = feats - mu
    return mu, centred.T @ centred / (len(feats) - 1)                  # unbiased covariance (F, F)


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """d^2 = |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}) between two Gaussians, in float64.

    Introduced in: β versus σ: the decoder variance. tr (S1 S2)^{1/2} is the sum of the square
    roots of the eigenvalues of S1 S2 (real and >= 0 for covariances; round-off clipped).
    """
    mu1, cov1, mu2, cov2 = (t.double() for t in (mu1, cov1, mu2, cov2))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: means {tuple(mu1.shape)}, {tuple(mu2.shape)}; covariances "
                         f"{tuple(cov1.shape)}, {tuple(cov2.shape)}")
    eig = torch.linalg.eigvals(cov1 @ cov2).real.clamp(min=0)          # eigenvalues of S1 S2
    trace_sqrt = eig.sqrt().sum()                                       # tr (S1 S2)^{1/2}
    d2 = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * trace_sqrt
    return float(d2)


def fld(samples: torch.Tensor | Stats, reference: torch.Tensor | Stats, classifier: nn.Module) -> float:
    """The Fréchet LeNet distance between two sets of images (or their precomputed `feature_stats`).

    Introduced in: β versus σ: the decoder variance. Use >= 10,000 images per set: the estimate is
    biased upwards for small sets (the covariance of 84 features needs many samples).
    """
    a = samples if isinstance(samples, tuple) else feature_stats(samples, classifier)
    b = reference if isinstance(reference, tuple) else feature_stats(reference, classifier)
    return frechet_distance(*a, *b)
