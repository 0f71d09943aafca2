"""Latent explorers: traversal, interpolation and the 2-D manifold (introduced in: The variational autoencoder).

They depend only on ``decode`` (a callable z -> p(x|z), a torch distribution whose ``.mean``
is a batch of images in [0, 1]) and ``prior`` (a distribution over z of event shape (M,)),
so every model family of the course can use them. Each explorer has two faces:

* ``live()``: ipywidgets sliders that decode on every move (Jupyter, Colab, VS Code);
* ``static_html()``: pre-rendered frames as base64 PNGs, a plain ``<input type="range">`` and
  a few lines of inline JavaScript that swap the ``<img>`` sources. No kernel, no CDN, no
  external file: this is what the web book shows, and what ``_repr_html_`` returns.

``show()`` picks the live face when a person is watching a notebook, the static one otherwise.
"""

from __future__ import annotations

import io
import math
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.distributions import Distribution

from .discrete import code_swap, label_sliders
from .explorer import LatentExplorer, _live_box
from .frames import Decode, _device, as_code, _is_normal, _prior_moments, _r, _slerp, decode_images, png_uri, tile

# ----------------------------------------------------------------------------- the three explorers
def traversal(decode: Decode, prior: Distribution, z0: torch.Tensor | None = None,
              dims: Sequence[int] | str | None = None, span: float = 3.0, steps: int = 11, *,
              relative: bool = True, zoom: int = 3) -> LatentExplorer:
    """Vary one latent dimension at a time around ``z0`` (introduced in: The variational autoencoder).

    Dimension ``d`` runs over ``z0[d] + linspace(-span, span, steps) * sigma_d`` where sigma_d is
    the prior's standard deviation (``relative=False``: plain units, no sigma). ``z0`` defaults
    to the prior mean; ``dims`` to all dimensions (the first 8 when there are more), or
    ``"active"``: the 8 whose traversal changes the decoded image most. Static face: one
    slider moves every dimension's offset at once, one image per dimension, and below it one
    picture of the whole traversal: a row per dimension, a column per offset.
    """
    if not (math.isfinite(span) and span > 0 and int(steps) == steps >= 2):
        raise ValueError(f"traversal needs span > 0 and an integer steps >= 2, got span={span}, steps={steps}")
    device = _device(decode, prior)
    mean, std = _prior_moments(prior)
    m = mean.numel()
    z0 = mean.detach().float().cpu() if z0 is None else as_code(z0, "z0", m)
    scale = std.float().cpu() if relative else torch.ones(m)
    offsets = torch.linspace(-span, span, steps)            # (T,) in sigma units
    active = isinstance(dims, str)
    if active and dims != "active":
        raise ValueError(f"dims must be a list of ints, None or 'active', got {dims!r}")
    probe = list(range(m)) if dims is None or active else [int(d) for d in dims]
    if any(not 0 <= d < m for d in probe):
        raise ValueError(f"dims {probe} out of range for {m} latent dimensions")
    z = z0.repeat(len(probe), steps, 1)                     # (D, T, M)
    for i, d in enumerate(probe):
        z[i, :, d] = z0[d] + offsets * scale[d]
    imgs = decode_images(decode, z.reshape(-1, m).to(device))          # (D*T, H, W), one batch
    imgs = imgs.reshape(len(probe), steps, *imgs.shape[1:])             # (D, T, H, W)
    if active:                                              # most change across the traversal first
        keep = imgs.var(1).sum((-1, -2)).argsort(descending=True)[:8].sort().values.tolist()
    else:
        keep = list(range(len(probe))) if dims is not None else list(range(min(m, 8)))
    dims = [probe[i] for i in keep]
    imgs, z = imgs[keep], z[keep]
    unit = "σ" if relative else ""
    labels = [f"{_r(o, 1):+.1f}{unit}" for o in offsets.tolist()]
    images = [(f"z[{d}]", [png_uri(im) for im in imgs[i]],
               [f"z[{d}] = {_r(v):+.2f}" for v in z[i, :, d].tolist()]) for i, d in enumerate(dims)]

    def build(ex: LatentExplorer):
        import ipywidgets as W
        lo, hi = z0 - span * scale, z0 + span * scale
        sliders = {f"z[{d}]": W.FloatSlider(value=float(z0[d]), min=float(lo[d]), max=float(hi[d]),
                                            step=float(2 * span * scale[d] / 100), description=f"z[{d}]",
                                            continuous_update=True, readout_format=".2f") for d in dims}
        if len(dims) > 8:                                   # many: pick one dimension, one slider
            pick = W.Dropdown(options=[f"z[{d}]" for d in dims], description="dimension")
            shown = W.VBox([sliders[pick.value]])
            pick.observe(lambda c: setattr(shown, "children", [sliders[c["new"]]]), names="value")

        def render() -> np.ndarray:
            zz = z0.clone()
            for d in dims:
                zz[d] = sliders[f"z[{d}]"].value
            return decode_images(decode, zz[None].to(device))[0].numpy()
        box = _live_box(ex, sliders, render)
        if len(dims) > 8:
            box.children[1].children = (W.VBox([pick, shown]), *box.children[1].children[1:])
        return box

    what = "z0 ± span·σ (prior)" if relative else "z0 ± span"
    # the whole traversal as one picture: a row per dimension, a column per offset (no slider needed)
    table = png_uri(tile(imgs.reshape(-1, *imgs.shape[2:]), steps, pad=1))
    caption = (f"every traversal at once: rows {', '.join(f'z[{d}]' for d in dims)} (top to bottom), "
               f"columns offsets {labels[0]} … {labels[-1]} (left to right)")
    return LatentExplorer(f"Latent traversal, one dimension at a time ({what})",
                          [("offset from z0", labels)], images, build, zoom, px=imgs.shape[-1],
                          figures=[(caption, table, steps * (imgs.shape[-1] + 1) - 1)])


def interpolation(decode: Decode, z_start: torch.Tensor, z_end: torch.Tensor, steps: int = 16, *,
                  method: str = "linear", zoom: int = 3) -> LatentExplorer:
    """Decode the path from ``z_start`` to ``z_end`` (introduced in: The variational autoencoder).

    ``method="linear"``: z(t) = (1 - t) z_start + t z_end; ``"slerp"``: along the great circle,
    which keeps the norm typical of a high-dimensional Gaussian prior (White, 2016).
    """
    if method not in ("linear", "slerp"):
        raise ValueError(f"method must be 'linear' or 'slerp', got {method!r}")
    if not int(steps) == steps >= 2:
        raise ValueError(f"interpolation needs an integer steps >= 2, got {steps}")
    a, b = as_code(z_start, "z_start"), as_code(z_end, "z_end")
    if a.shape != b.shape:
        raise ValueError(f"z_start and z_end differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    device = _device(decode, None)
    if isinstance(z_start, torch.Tensor) and z_start.device.type != "cpu":
        device = z_start.device                                         # codes from encode(x) on the GPU

    def path(t: torch.Tensor, how: str) -> torch.Tensor:
        return _slerp(a, b, t) if how == "slerp" else a + t[:, None] * (b - a)

    t = torch.linspace(0, 1, steps)
    imgs = decode_images(decode, path(t, method).to(device))          # (T, H, W)
    frames = [png_uri(im) for im in imgs]
    strip = png_uri(tile(imgs, steps, pad=1))                           # the whole path, one PNG

    def build(ex: LatentExplorer):
        import ipywidgets as W
        controls = {"t": W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="t"),
                    "method": W.ToggleButtons(options=["linear", "slerp"], value=method, description="path")}

        def render() -> np.ndarray:
            tt = torch.tensor([controls["t"].value])
            return decode_images(decode, path(tt, controls["method"].value).to(device))[0].numpy()
        return _live_box(ex, controls, render)

    return LatentExplorer(f"Interpolation between two latent codes ({method})",
                          [("t", [f"{v:.2f}" for v in t.tolist()])], [("z(t)", frames, None)], build, zoom,
                          figures=[("the whole path, t = 0 (left) to 1 (right)", strip,
                                    steps * (imgs.shape[-1] + 1) - 1)], px=imgs.shape[-1])


def manifold(decode: Decode, prior: Distribution, grid: int = 15, span: float | None = None, *,
             dims: tuple[int, int] = (0, 1), z0: torch.Tensor | None = None, zoom: int = 4,
             q: float = 0.05) -> LatentExplorer:
    """Decode a grid over two latent axes (introduced in: The variational autoencoder).

    Standard normal (or any independent Gaussian) prior: the axes sit at the prior quantiles
    loc + scale * Phi^{-1}(p), p evenly spaced in [q, 1 - q], as in Kingma & Welling (2014).
    Another prior (a mixture, a VampPrior): an even box between the q and 1 - q quantiles of
    prior samples. ``span`` given: an even box [-span, span]. Latents beyond two dimensions
    are held at ``z0`` (default: the prior mean); ``dims`` picks the two that move.
    """
    device = _device(decode, prior)
    mean, std = _prior_moments(prior)
    m = mean.numel()
    if m < 2 or len(set(dims)) != 2 or not all(0 <= d < m for d in dims):
        raise ValueError(f"manifold needs two distinct latent dims in range; the prior has {m}, dims={dims}")
    z0 = mean.detach().float().cpu() if z0 is None else as_code(z0, "z0", m)
    p = torch.linspace(q, 1 - q, grid, dtype=torch.float64)
    if span is not None:
        axes = [torch.linspace(-span, span, grid)] * 2
        how = f"even box [-{span:g}, {span:g}]"
    elif _is_normal(prior):
        phi_inv = torch.distributions.Normal(0.0, 1.0).icdf(p).float()     # Phi^{-1}(p), (G,)
        axes = [mean[d].cpu() + std[d].cpu() * phi_inv for d in dims]
        how = f"prior quantiles {q:g} … {1 - q:g}"
    else:
        with torch.no_grad():
            s = prior.sample((4096,)).reshape(4096, -1).float().cpu()
        lo, hi = torch.quantile(s[:, list(dims)], torch.tensor([q, 1 - q]), dim=0)  # (2,) each
        axes = [torch.linspace(float(lo[i]), float(hi[i]), grid) for i in range(2)]
        how = f"box between the {q:g} and {1 - q:g} quantiles of prior samples"
    ax, ay = axes
    ix, iy = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    z = z0.repeat(grid * grid, 1)                            # (G*G, M); frame k = ix * G + iy
    z[:, dims[0]], z[:, dims[1]] = ax[ix.reshape(-1)], ay[iy.reshape(-1)]
    imgs = decode_images(decode, z.to(device))               # (G*G, H, W), one batch
    frames = [png_uri(im) for im in imgs]
    # the full grid as one picture: rows = z[dims[1]] with the highest on top, like a plot
    rows = imgs.reshape(grid, grid, *imgs.shape[1:]).transpose(0, 1).flip(0)   # (G_y, G_x, H, W)
    grid_img = tile(rows.reshape(-1, *imgs.shape[1:]), grid)
    cell = imgs.shape[-1]
    a, b = dims

    def build(ex: LatentExplorer):
        import ipywidgets as W
        controls = {f"z[{d}]": W.FloatSlider(value=float(axis[grid // 2]), min=float(axis[0]),
                                             max=float(axis[-1]), step=float((axis[-1] - axis[0]) / 100),
                                             description=f"z[{d}]", readout_format=".2f")
                    for d, axis in zip(dims, axes)}
        big = W.Image(format="png")

        def render() -> np.ndarray:
            zz = z0.clone()
            zz[a], zz[b] = controls[f"z[{a}]"].value, controls[f"z[{b}]"].value
            return decode_images(decode, zz[None].to(device))[0].numpy()

        def mark() -> None:                                  # red dot at the point on the grid picture
            rgb = np.repeat(np.round(grid_img * 255).astype(np.uint8)[..., None], 3, axis=2)
            fx = (controls[f"z[{a}]"].value - float(ax[0])) / max(float(ax[-1] - ax[0]), 1e-12)
            fy = (controls[f"z[{b}]"].value - float(ay[0])) / max(float(ay[-1] - ay[0]), 1e-12)
            x = int(round(np.interp(fx, [0, 1], [cell / 2, grid_img.shape[1] - cell / 2])))
            y = int(round(np.interp(fy, [0, 1], [grid_img.shape[0] - cell / 2, cell / 2])))
            rgb[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3] = (214, 39, 40)
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG")
            big.value = buf.getvalue()
        mark()
        return _live_box(ex, controls, render, extra=(big, mark))

    labels = [[f"z[{d}] = {_r(v):+.2f}" for v in axis.tolist()] for d, axis in zip(dims, axes)]
    ex = LatentExplorer(f"Decoded manifold over z[{a}], z[{b}] ({how})",
                        [(f"z[{a}] (across)", labels[0]), (f"z[{b}] (up)", labels[1])],
                        [("decoded point", frames, None)], build, zoom,
                        grid=(png_uri(grid_img), grid, cell), px=cell)
    return ex
