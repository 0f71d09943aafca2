"""Part IV: the VQ-VAE (quantiser, straight-through gradient, EMA codebook, k-means, restarts) and
the PixelCNN prior (causality of both stacks, the plain stack's blind spot, the parent-hash check)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from course_lib.checkpoint import CheckpointError
from course_lib.models.pixelcnn import GatedPixelCNN, PixelCNNConfig, causal_mask
from course_lib.models.vqvae import VQVAE, VQVAEConfig, VectorQuantizer, kmeans, nearest_code
from course_lib.objectives_discrete import codebook_usage, prior_nll, vq_loss

SMALL = VQVAEConfig(channels=8, codes=16, dim=4)


# ----------------------------------------------------------------------------- quantiser
def test_shapes_and_nearest_neighbour() -> None:
    torch.manual_seed(0)
    model = VQVAE(SMALL).eval()
    x = torch.rand(3, 1, 28, 28).round()
    z_e = model.encode(x)
    z_q, z_st, idx = model.quantize(z_e)
    assert z_e.shape == z_q.shape == (3, 4, 7, 7) and idx.shape == (3, 7, 7) and idx.dtype == torch.long
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    brute = torch.cdist(flat, model.quantizer.codebook).argmin(1)                  # reference distances
    assert torch.equal(idx.reshape(-1), brute)
    assert torch.allclose(z_q, model.quantizer.lookup(idx)) and torch.allclose(z_st, z_q, atol=1e-6)
    assert model.decode(z_q).log_prob(x).shape == (3,)
    assert model.decode_codes(idx).mean.shape == x.shape


def test_straight_through_gradient_is_the_identity_on_the_encoder_side() -> None:
    torch.manual_seed(0)
    model = VQVAE(SMALL).eval()
    z_e = torch.randn(2, 4, 7, 7, requires_grad=True)
    _, z_st, _ = model.quantize(z_e)
    upstream = torch.randn_like(z_st)
    (grad,) = torch.autograd.grad((z_st * upstream).sum(), z_e)
    assert torch.equal(grad, upstream)                                              # dL/dz_e = dL/dz_q exactly


def test_ema_update_matches_a_hand_computation() -> None:
    c = VQVAEConfig(codes=3, dim=2, kmeans_init=False, restart=False, decay=0.9, eps=0.5)   # a large eps: visible
    vq = VectorQuantizer(c)
    vq.codebook.data = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    vq.ema_sum.copy_(vq.codebook.data)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 1.0]])                          # codes 0, 0, 1
    vq.train()
    _, idx = vq(z.t().reshape(1, 2, 3, 1))                                         # (B, D, H, W) = (1, 2, 3, 1)
    assert idx.reshape(-1).tolist() == [0, 0, 1]
    count = 0.9 * torch.ones(3) + 0.1 * torch.tensor([2.0, 1.0, 0.0])               # N_k
    sums = 0.9 * torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]) + 0.1 * torch.tensor([[1.0, 1.0], [9.0, 1.0], [0.0, 0.0]])
    n = count.sum()
    smoothed = (count + 0.5) / (n + 3 * 0.5) * n                                  # Laplace: (N_k + eps) / (n + K eps) n
    assert torch.allclose(vq.ema_count, count) and torch.allclose(vq.ema_sum, sums)
    assert torch.allclose(vq.codebook, sums / smoothed[:, None])


def test_kmeans_finds_separated_clusters_and_initialises_the_codebook() -> None:
    torch.manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    z = torch.cat([c + 0.1 * torch.randn(200, 2) for c in centres])
    found = kmeans(z, 3, iters=20)
    assert torch.cdist(found, centres).min(0).values.max() < 0.1
    vq = VectorQuantizer(VQVAEConfig(codes=3, dim=2, restart=False)).train()
    assert not bool(vq.initialised)
    vq(z.t().reshape(1, 2, 600, 1))
    assert bool(vq.initialised) and torch.cdist(vq.codebook.detach(), centres).min(0).values.max() < 0.2


def test_restarts_revive_dead_codes() -> None:
    torch.manual_seed(0)
    c = VQVAEConfig(codes=8, dim=2, kmeans_init=False, restart=True, ema=True)
    vq = VectorQuantizer(c).train()
    vq.codebook.data[1:] += 100.0                                                   # codes 1..7 far away: dead
    vq.ema_sum.copy_(vq.codebook.data)
    z = torch.randn(1, 2, 16, 16)
    for _ in range(400):                                                            # counts decay below dead_below
        vq(z)
    _, idx = vq(z)
    assert torch.cdist(vq.codebook.detach(), z[0].reshape(2, -1).t()).min(1).values.max() < 1.0   # all on the data
    assert len(idx.unique()) >= 6
    off = VectorQuantizer(replace(c, restart=False)).train()
    off.codebook.data[1:] += 100.0
    off.ema_sum.copy_(off.codebook.data)
    for _ in range(400):
        _, idx = off(z)
    assert len(idx.unique()) == 1                                                   # without restarts: one code


def test_vq_loss_terms_and_gradient_codebook() -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28).round()
    plain = VQVAE(replace(SMALL, ema=False, kmeans_init=False, restart=False))
    out = vq_loss(plain, x, commitment=0.25)
    assert {"loss", "rate", "distortion", "commitment", "perplexity", "codes_used"} <= set(out)
    assert math.isclose(float(out["rate"]), 49 * math.log(16), rel_tol=1e-6)
    out["loss"].backward()
    assert plain.quantizer.codebook.grad is not None and plain.encoder[0].weight.grad is not None
    ema = VQVAE(SMALL)
    assert not ema.quantizer.codebook.requires_grad                               # EMA: no gradient codebook


def test_codebook_usage_by_hand() -> None:
    perplexity, used = codebook_usage(torch.tensor([0, 0, 1, 1]), 4)
    assert math.isclose(float(perplexity), 2.0, rel_tol=1e-6) and float(used) == 0.5


# ----------------------------------------------------------------------------- PixelCNN
def test_masks_a_and_b() -> None:
    assert causal_mask(3, "A").tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert causal_mask(3, "B").tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="mask_type"):
        causal_mask(3, "C")


def _gradients(model: GatedPixelCNN, i: int, j: int) -> torch.Tensor:
    """|d output(i, j) / d input| summed over channels, (h, w)."""
    x = torch.randn(1, model.config.channels, *model.config.grid, dtype=torch.double, requires_grad=True)
    out = model.forward_embedded(x, torch.tensor([3]))[0, :, i, j].sum()
    (g,) = torch.autograd.grad(out, x)
    return g.abs().sum(1)[0]


@pytest.mark.parametrize("gated", [True, False])
def test_pixelcnn_is_causal(gated: bool) -> None:
    torch.manual_seed(0)
    model = GatedPixelCNN(PixelCNNConfig(codes=8, channels=6, layers=4, classes=10, gated=gated)).double()
    for i in range(7):
        for j in range(7):
            g = _gradients(model, i, j).flatten()
            assert torch.all(g[i * 7 + j:] == 0), f"output ({i}, {j}) sees input at or after it"


def test_gated_stacks_see_the_whole_past_and_the_plain_stack_has_a_blind_spot() -> None:
    torch.manual_seed(0)
    layers = 6
    for gated in (True, False):
        model = GatedPixelCNN(PixelCNNConfig(codes=8, channels=6, layers=layers, classes=10, gated=gated)).double()
        g = _gradients(model, 6, 3)                                                 # the bottom row's centre
        # everything above within `layers` rows (all 7 columns lie within reach), and left in the row
        past = torch.zeros(7, 7, dtype=torch.bool)
        past[:6] = True
        past[6, :3] = True
        blind = past & (g == 0)
        if gated:
            assert not blind.any(), f"gated stack misses {blind.nonzero().tolist()}"
        else:
            assert blind.any(), "the plain masked stack should have a blind spot (above-right)"
            assert all(c > 3 for _, c in blind.nonzero().tolist())


def test_pixelcnn_shapes_nll_and_sampling() -> None:
    torch.manual_seed(0)
    model = GatedPixelCNN(PixelCNNConfig(codes=8, channels=6, layers=3))
    codes, y = torch.randint(0, 8, (5, 7, 7)), torch.randint(0, 10, (5,))
    assert model(codes, y).shape == (5, 8, 7, 7) and model.log_prob(codes, y).shape == (5,)
    out = prior_nll(model, codes, y)
    assert torch.allclose(out["loss"], -model.log_prob(codes, y).mean(), atol=1e-5)
    s = model.sample(4, torch.arange(4), generator=torch.Generator().manual_seed(0))
    assert s.shape == (4, 7, 7) and int(s.max()) < 8
    with pytest.raises(ValueError, match="class-conditional"):
        model(codes)
    with pytest.raises(ValueError, match="codes must be"):
        model(codes[:, :6], y)


# ----------------------------------------------------------------------------- parent hash
def test_loading_a_prior_over_a_changed_parent_is_a_clear_error(monkeypatch) -> None:
    from course_lib import runs
    from course_lib.runs import discrete

    parent = VQVAE(SMALL)
    monkeypatch.setattr(runs, "trained", lambda name, device=None, allow_training=True, directory=None: (parent, {}))
    train = discrete.PriorTrain(parent="vqvae_x", parent_sha256="0" * 64)
    with pytest.raises(CheckpointError, match="Retrain the prior"):
        discrete.load_parent(train, torch.device("cpu"))
    from course_lib._files import tensors_sha256
    shipped = replace(runs.get("pixelcnn_mnist").train, parent_sha256="0" * 64)  # the shipped prior's own name
    monkeypatch.setitem(runs.SHIPPED, "pixelcnn_mnist", replace(runs.get("pixelcnn_mnist"), train=shipped))
    with pytest.raises(CheckpointError, match="python -m course_lib.retrain pixelcnn_mnist`"):
        discrete.load_parent(shipped, torch.device("cpu"))
    good = replace(train, parent_sha256=tensors_sha256({k: v for k, v in parent.state_dict().items()}))
    assert discrete.load_parent(good, torch.device("cpu")) is parent
    run = discrete.prior_run(PixelCNNConfig(), "vqvae_mnist")
    assert run.config()["train"]["parent_sha256"] == discrete.parent_sha256("vqvae_mnist")  # in the hash


def test_code_swap_widget_changes_only_the_swapped_cell_region() -> None:
    pytest.importorskip("ipywidgets")
    from course_lib import widgets

    torch.manual_seed(0)
    model = VQVAE(SMALL).eval()
    grid = torch.randint(0, 16, (7, 7))
    ex = widgets.code_swap(model.decode_codes, grid, candidates=[0, 5])
    assert ex.n_frames == 7 * 7 * 3 and len(ex.images[0][1]) == ex.n_frames
    assert ex.images[0][1][0] == ex.images[0][1][3]                                 # "original" of two cells: same image
    assert html_ok(ex.static_html())
    ex.live()
    before = ex.image.value
    ex.controls["code"].value = (int(grid[0, 0]) + 1) % 16                           # swap cell (0, 0)
    assert ex.image.value != before
    with pytest.raises(ValueError, match="one \\(h, w\\) grid"):
        widgets.code_swap(model.decode_codes, grid[None], candidates=[1])


def html_ok(html: str) -> bool:
    return html.count('type="range"') == 3 and "new code" in html
