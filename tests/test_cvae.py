"""Part IV: the label-conditional CVAE, quadrant masks, the structured-output CVAE and its
importance-sampled conditional NLL (against brute force on a tiny model)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal

from course_lib.models.cvae import CVAE, CVAEConfig, QuadrantConfig, QuadrantCVAE, quadrant_mask
from course_lib.objectives_conditional import (conditional_elbo, conditional_log_likelihood, quadrant_elbo,
                                               quadrant_nll)


def test_cvae_shapes_and_label_dependence() -> None:
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(latent=4))
    x, y = torch.rand(3, 1, 28, 28).round(), torch.tensor([0, 5, 9])
    q = model.encode(x, y)
    assert q.mean.shape == (3, 4) and q.event_shape == (4,)
    p = model.decode(q.rsample((2,)), y)                                           # (S, B, M) -> (S, B, C, H, W)
    assert p.mean.shape == (2, 3, 1, 28, 28) and p.log_prob(x).shape == (2, 3)
    z = torch.zeros(1, 4)
    assert not torch.allclose(model.decode(z, torch.tensor([1])).mean, model.decode(z, torch.tensor([7])).mean)
    out = conditional_elbo(model, x, y)
    assert {"loss", "rate", "distortion"} <= set(out) and torch.isclose(out["loss"], out["rate"] + out["distortion"])
    with pytest.raises(ValueError, match="pass the labels"):
        model.encode(x)
    free = CVAE(CVAEConfig(classes=0, latent=4))                                   # the unconditional variant
    assert free.encode(x, None).mean.shape == (3, 4) and free.decode(z).mean.shape == (1, 1, 28, 28)


def test_quadrant_masks() -> None:
    m1, m2, m3 = (quadrant_mask((1, 28, 28), k) for k in (1, 2, 3))
    assert m1.shape == (1, 28, 28) and [int(m.sum()) for m in (m1, m2, m3)] == [196, 392, 588]
    assert m1[0, 14:, :14].all() and m1.sum() == m1[0, 14:, :14].sum()             # 1: bottom-left
    assert m2[0, :, :14].all() and not m2[0, :, 14:].any()                          # 2: the left half
    assert not m3[0, :14, 14:].any() and m3.sum() == 588                            # 3: all but top-right
    assert (m1 <= m2).all() and (m2 <= m3).all()                                   # nested
    batch = quadrant_mask((1, 28, 28), torch.tensor([3, 1]))
    assert batch.shape == (2, 1, 28, 28) and torch.equal(batch[0], m3) and torch.equal(batch[1], m1)
    with pytest.raises(ValueError, match="1..3"):
        quadrant_mask((1, 28, 28), 4)


def test_quadrant_model_scores_only_hidden_pixels() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28).round()
    mask = quadrant_mask((1, 28, 28), 2).expand(2, 1, 28, 28)
    for latent in (0, 3):
        model = QuadrantCVAE(QuadrantConfig(latent=latent))
        out = quadrant_elbo(model, x, mask)
        assert {"loss", "rate", "distortion"} <= set(out)
        x2 = x.clone()
        x2[..., :, :14] = 1 - x2[..., :, :14]                                       # change observed pixels only
        logits = model.decode_logits(None if latent == 0 else torch.zeros(2, latent), x, mask)
        assert torch.equal(model.hidden_log_prob(logits, x, mask), model.hidden_log_prob(logits, x2, mask))
        # the observed pixels reach the prediction only through x * mask
        xh = x.clone()
        xh[..., :, 14:] = 0.5
        a = model.decode_logits(None if latent == 0 else torch.zeros(2, latent), x, mask)
        b = model.decode_logits(None if latent == 0 else torch.zeros(2, latent), xh, mask)
        assert torch.allclose(a, b)


def _brute_force_log_px(model: CVAE, x: torch.Tensor, y: torch.Tensor, grid: int = 4001) -> torch.Tensor:
    """log p(x|y) = log int p(x|z,y) N(z; 0, 1) dz on a dense grid (one-dimensional z)."""
    z = torch.linspace(-8, 8, grid)[:, None]                                     # (G, 1)
    log_joint = model.decode(z[:, None, :].expand(grid, len(x), 1), y).log_prob(x) + Normal(0.0, 1.0).log_prob(z)
    return torch.logsumexp(log_joint, 0) + math.log(16 / (grid - 1))             # (B,) Riemann sum


def test_importance_sampled_nll_matches_brute_force_on_a_tiny_model() -> None:
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(image_shape=(1, 4, 4), latent=1, channels=2))
    x, y = torch.rand(3, 1, 4, 4).round(), torch.tensor([1, 2, 3])
    exact = _brute_force_log_px(model, x, y)
    estimate = conditional_log_likelihood(model, x, y, k=20_000, chunk=5000)
    assert torch.allclose(estimate, exact, atol=0.05), (estimate, exact)
    elbo_like = -conditional_elbo(model, x, y)["loss"]
    assert elbo_like < exact.mean() + 0.5                                           # the ELBO bounds it from below


def test_quadrant_nll_matches_brute_force_and_the_baseline_is_its_cross_entropy() -> None:
    torch.manual_seed(0)
    model = QuadrantCVAE(QuadrantConfig(image_shape=(1, 4, 4), latent=1, context=3, channels=2))
    x = torch.rand(2, 1, 4, 4).round()
    mask = quadrant_mask((1, 4, 4), 1).expand(2, 1, 4, 4)
    grid = 4001
    z = torch.linspace(-10, 10, grid)[:, None, None].expand(grid, 2, 1)   # (G, B, 1)
    log_joint = model.hidden_log_prob(model.decode_logits(z, x, mask), x, mask) + model.prior(x, mask).log_prob(z)
    exact = -(torch.logsumexp(log_joint, 0) + math.log(20 / (grid - 1)))
    estimate = quadrant_nll(model, x, mask, k=20_000, chunk=5000)
    assert torch.allclose(estimate, exact, atol=0.05), (estimate, exact)
    base = QuadrantCVAE(QuadrantConfig(image_shape=(1, 4, 4), latent=0, context=3, channels=2))
    logits = base.decode_logits(None, x, mask)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    assert torch.allclose(quadrant_nll(base, x, mask, k=100), (bce * (1 - mask)).sum((1, 2, 3)))


def test_label_sliders_widget_has_a_frame_per_label_and_position() -> None:
    pytest.importorskip("ipywidgets")
    from course_lib import widgets

    torch.manual_seed(0)
    model = CVAE(CVAEConfig(latent=3)).eval()
    ex = widgets.label_sliders(model.decode, 3, [str(c) for c in range(10)], dims=(0, 2), steps=3)
    assert ex.n_frames == 10 * 3 * 3 and len(ex.images[0][1]) == ex.n_frames
    assert ex.images[0][1][0] != ex.images[0][1][9]                                 # label 0 vs label 1, same z
    html = ex.static_html()
    assert html.count('type="range"') == 3 and "label" in html
    ex.live()
    before = ex.image.value
    ex.controls["label"].value = 7                                                  # the live face re-decodes
    assert ex.image.value != before
    with pytest.raises(ValueError, match="dims"):
        widgets.label_sliders(model.decode, 3, ["a"], dims=(5,))
