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

import base64
import html
import io
import json
import math
import uuid
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid
from torch.distributions import Categorical, Distribution, Independent, Normal

from .env import interactive

Decode = Callable[[torch.Tensor], "Distribution | torch.Tensor"]
PX = 28      # the course's images are 28 x 28; other square sizes work too
LEVELS = 64  # grey levels in the static PNG frames


# ----------------------------------------------------------------------------- helpers
def _device(decode: Decode, prior: Distribution | None) -> torch.device:
    """Where to decode: the decoder's parameters if it is a module's method, else the prior's samples."""
    owner = getattr(decode, "__self__", decode)
    if isinstance(owner, torch.nn.Module):
        for p in owner.parameters():
            return p.device
    if prior is not None:
        return prior.sample().device
    return torch.device("cpu")


@torch.no_grad()
def decode_images(decode: Decode, z: torch.Tensor) -> torch.Tensor:
    """Mean images E[x|z] as a (B, H, W) float tensor on the CPU, clamped to [0, 1]."""
    out = decode(z)
    if not isinstance(out, torch.Tensor):
        base = out.base_dist if isinstance(out, Independent) else out
        if isinstance(base, Categorical):                   # 256-way per pixel: E[level] / (K - 1)
            probs = base.probs                              # (B, ..., K)
            levels = torch.arange(probs.shape[-1], device=probs.device, dtype=probs.dtype)
            out = (probs * levels).sum(-1) / (probs.shape[-1] - 1)
        else:
            out = out.mean                                  # Bernoulli: probs; Normal: loc
    x = out.detach().float().cpu()
    if x.dim() == 4:                                        # (B, C, H, W): first channel
        x = x[:, 0]
    elif x.dim() == 2:                                      # (B, H*W) -> (B, H, W)
        side = math.isqrt(x.shape[1])
        if side * side != x.shape[1]:
            raise ValueError(f"decode gave flat images of {x.shape[1]} pixels, not a square")
        x = x.reshape(-1, side, side)
    if x.dim() != 3:
        raise ValueError(f"decode(z).mean should be (B, 1, H, W) or (B, H*W), got {tuple(out.shape)}")
    return x.clamp(0, 1)


def _prior_moments(prior: Distribution, n: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation per latent dimension, (M,) each; sampled if not closed-form."""
    try:
        mean, std = prior.mean, prior.stddev                # Independent(Normal), MixtureSameFamily
        if torch.isfinite(mean).all() and torch.isfinite(std).all():
            return mean.detach().reshape(-1), std.detach().reshape(-1)
    except NotImplementedError:
        pass
    with torch.no_grad():
        s = prior.sample((n,)).reshape(n, -1)               # (n, M)
    return s.mean(0), s.std(0)


def _is_normal(prior: Distribution) -> bool:
    """Independent Gaussian coordinates, so per-axis quantiles are loc + scale * Phi^{-1}(q)."""
    base = prior.base_dist if isinstance(prior, Independent) else prior
    return isinstance(base, Normal)


def png_uri(img: np.ndarray | torch.Tensor, levels: int = LEVELS) -> str:
    """A small grayscale PNG as a data URI; ``img`` is (H, W) in [0, 1].

    Grey values are rounded to ``levels`` steps (64: invisible at this size, and the PNGs
    deflate about a third smaller than with 256).
    """
    a = img.numpy() if isinstance(img, torch.Tensor) else img
    a = np.round(np.round(np.clip(a, 0, 1) * (levels - 1)) * (255 / (levels - 1))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def tile(images: torch.Tensor, nrow: int, pad: int = 0) -> np.ndarray:
    """(N, H, W) images -> one (rows*H, nrow*W) array, row-major, white padding between images."""
    grid = make_grid(images.unsqueeze(1).float(), nrow=nrow, padding=pad, pad_value=1.0)[0]  # torchvision pads the border too
    return grid[pad:grid.shape[0] - pad, pad:grid.shape[1] - pad].numpy()


def _png_bytes(img: np.ndarray, zoom: int) -> bytes:
    """PNG bytes for an ipywidgets.Image, upscaled (nearest) so the notebook shows crisp pixels."""
    a = Image.fromarray(np.round(np.clip(img, 0, 1) * 255).astype(np.uint8))
    buf = io.BytesIO()
    a.resize((a.width * zoom, a.height * zoom), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def _r(v: float, digits: int = 2) -> float:
    """Round for a label, without a "-0.00"."""
    return round(v, digits) + 0.0


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake; White 2016 for latent spaces); t is (T,), a and b (M,)."""
    cos = (a @ b / (a.norm() * b.norm()).clamp_min(1e-12)).clamp(-1, 1)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-6:                                  # parallel: fall back to linear
        return a + t[:, None] * (b - a)
    return (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / torch.sin(omega)


# ----------------------------------------------------------------------------- the explorer
_CSS = ("#{u} {{font-family: sans-serif; font-size: 13px; margin: 0.5em 0}}"
        " #{u} img {{image-rendering: pixelated; image-rendering: crisp-edges; background: #fff}}"
        " #{u} figure {{display: inline-block; vertical-align: top; margin: 0 6px 4px 0; text-align: center}}"
        " #{u} figcaption {{font-size: 11px; color: #444}}"
        " #{u} label {{display: block; margin: 2px 0}} #{u} input[type=range] {{width: 16em; vertical-align: middle}}")

_JS = """(function () {
  var u = "__UID__", d = JSON.parse(document.getElementById(u + "-data").textContent);
  var s = d.sliders.map(function (_, i) { return document.getElementById(u + "-s" + i); });
  function show() {
    var k = 0;
    s.forEach(function (e, i) {
      k = k * d.sliders[i].labels.length + Number(e.value);
      document.getElementById(u + "-v" + i).textContent = d.sliders[i].labels[Number(e.value)];
    });
    d.images.forEach(function (im, j) {
      document.getElementById(u + "-i" + j).src = im.frames[k];
      if (im.captions) document.getElementById(u + "-c" + j).textContent = im.captions[k];
    });
    var box = document.getElementById(u + "-box");
    if (box) { var g = d.grid, c = Math.floor(k / g.n), r = g.n - 1 - k % g.n;
      box.style.left = (100 * c / g.n) + "%"; box.style.top = (100 * r / g.n) + "%"; }
  }
  s.forEach(function (e) { e.addEventListener("input", show); });
  show();
})();"""


class LatentExplorer:
    """Frames of decoded latents and the sliders that index them; see ``traversal``,
    ``interpolation`` and ``manifold`` (introduced in: The variational autoencoder).

    Static frames: ``sliders`` is a list of ``(name, value labels)``; the frame index is the
    row-major index over the slider positions; ``images`` is a list of ``(caption, frames,
    captions per frame or None)`` with one data URI per frame index; ``grid`` is ``(data URI,
    cells per side, cell pixels)`` of a picture on which a box follows a 2-slider index;
    ``figures`` are fixed ``(caption, data URI, width)`` pictures. ``live_builder`` returns an
    ipywidgets box; it is called by ``live()``.
    """

    def __init__(self, title: str, sliders: list, images: list, live_builder: Callable,
                 zoom: int = 3, grid: tuple | None = None, figures: list | None = None,
                 px: int = PX) -> None:
        self.px, self.title, self.sliders, self.images, self.zoom = px, title, sliders, images, zoom
        self.grid, self.figures, self._live_builder = grid, figures or [], live_builder
        self.controls: dict = {}          # filled by live(): name -> ipywidgets control
        self.image = None                 # filled by live(): the ipywidgets.Image that changes

    @property
    def n_frames(self) -> int:
        return math.prod(len(labels) for _, labels in self.sliders)

    # -- static face
    def static_html(self) -> str:
        """Self-contained HTML: data-URI PNG frames, range inputs and inline vanilla JS."""
        u = "lx" + uuid.uuid4().hex[:10]                    # unique per call: many explorers per page
        start = [len(labels) // 2 for _, labels in self.sliders]
        k0 = 0
        for (_, labels), i in zip(self.sliders, start):
            k0 = k0 * len(labels) + i
        parts = [f'<div id="{u}" class="latent-explorer"><style>{_CSS.format(u=u)}</style>',
                 f"<strong>{html.escape(self.title)}</strong>"]
        for i, (name, labels) in enumerate(self.sliders):
            parts.append(f'<label>{html.escape(name)} <input type="range" id="{u}-s{i}" min="0" '
                         f'max="{len(labels) - 1}" step="1" value="{start[i]}"> '
                         f'<span id="{u}-v{i}">{html.escape(labels[start[i]])}</span></label>')
        parts.append("<div>")
        for j, (caption, frames, captions) in enumerate(self.images):
            px = self.px * self.zoom
            cap = captions[k0] if captions else caption
            parts.append(f'<figure><img id="{u}-i{j}" src="{frames[k0]}" width="{px}" height="{px}" '
                         f'alt="{html.escape(caption)}"><figcaption id="{u}-c{j}">{html.escape(cap)}'
                         f"</figcaption></figure>")
        if self.grid is not None:                           # the full decoded grid, current cell boxed
            uri, n, cell = self.grid
            parts.append(f'<figure><div style="position: relative; display: inline-block; line-height: 0">'
                         f'<img src="{uri}" width="{n * cell}" height="{n * cell}" alt="decoded grid">'
                         f'<div id="{u}-box" style="position: absolute; width: {100 / n:.4f}%; height: '
                         f'{100 / n:.4f}%; box-sizing: border-box; border: 1px solid #d62728; left: 0; top: 0">'
                         f"</div></div>"
                         f"<figcaption>the whole grid (box: the current point)</figcaption></figure>")
        parts.append("</div>")
        for caption, uri, width in self.figures:            # static pictures (e.g. the whole path)
            parts.append(f'<figure><img src="{uri}" width="{width * self.zoom // 2}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        data = {"sliders": [{"name": n, "labels": lab} for n, lab in self.sliders],
                "images": [{"frames": f, "captions": c} for _, f, c in self.images],
                "grid": {"n": self.grid[1], "cell": self.grid[2]} if self.grid else None}
        # "</" cannot occur in base64 or our labels, but escape it anyway to keep the script tag whole
        payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
        parts.append(f'<script type="application/json" id="{u}-data">{payload}</script>')
        parts.append(f"<script>{_JS.replace('__UID__', u)}</script></div>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.static_html()

    # -- live face
    def live(self):
        """The ipywidgets version (decodes on every slider move); also sets ``controls`` and ``image``."""
        return self._live_builder(self)

    def show(self, live: bool | None = None) -> None:
        """Display live widgets when a person watches a notebook (or ``live=True``), else static HTML."""
        from IPython.display import HTML, display
        if live is None:
            live = interactive()
        if live:
            try:
                display(self.live())
                return
            except ImportError:                             # no ipywidgets: the static face still works
                pass
        display(HTML(self.static_html()))


def _live_box(ex: LatentExplorer, controls: dict, render: Callable[[], np.ndarray], extra=None):
    """Wire sliders to one ipywidgets.Image: every change re-decodes and re-encodes the PNG."""
    import ipywidgets as W
    image = W.Image(value=_png_bytes(render(), ex.zoom + 2), format="png")

    def update(_change=None) -> None:
        image.value = _png_bytes(render(), ex.zoom + 2)
        if extra is not None:
            extra[1]()

    for c in controls.values():
        c.observe(update, names="value")
    ex.controls, ex.image = controls, image
    right = [image] if extra is None else [image, extra[0]]
    return W.VBox([W.HTML(f"<b>{html.escape(ex.title)}</b>"), W.HBox([W.VBox(list(controls.values())),
                                                                       *right])])


# ----------------------------------------------------------------------------- the three explorers
def traversal(decode: Decode, prior: Distribution, z0: torch.Tensor | None = None,
              dims: Sequence[int] | str | None = None, span: float = 3.0, steps: int = 11, *,
              relative: bool = True, zoom: int = 3) -> LatentExplorer:
    """Vary one latent dimension at a time around ``z0`` (introduced in: The variational autoencoder).

    Dimension ``d`` runs over ``z0[d] + linspace(-span, span, steps) * sigma_d`` where sigma_d is
    the prior's standard deviation (``relative=False``: plain units, no sigma). ``z0`` defaults
    to the prior mean; ``dims`` to all dimensions (the first 8 when there are more), or
    ``"active"``: the 8 whose traversal changes the decoded image most. Static face: one
    slider moves every dimension's offset at once, one image per dimension.
    """
    device = _device(decode, prior)
    mean, std = _prior_moments(prior)
    m = mean.numel()
    z0 = (mean if z0 is None else torch.as_tensor(z0, dtype=torch.float32).reshape(-1)).detach().float().cpu()
    if z0.numel() != m:
        raise ValueError(f"z0 has {z0.numel()} entries but the prior has {m} latent dimensions")
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
    return LatentExplorer(f"Latent traversal, one dimension at a time ({what})",
                          [("offset from z0", labels)], images, build, zoom, px=imgs.shape[-1])


def interpolation(decode: Decode, z_start: torch.Tensor, z_end: torch.Tensor, steps: int = 16, *,
                  method: str = "linear", zoom: int = 3) -> LatentExplorer:
    """Decode the path from ``z_start`` to ``z_end`` (introduced in: The variational autoencoder).

    ``method="linear"``: z(t) = (1 - t) z_start + t z_end; ``"slerp"``: along the great circle,
    which keeps the norm typical of a high-dimensional Gaussian prior (White, 2016).
    """
    if method not in ("linear", "slerp"):
        raise ValueError(f"method must be 'linear' or 'slerp', got {method!r}")
    a = torch.as_tensor(z_start, dtype=torch.float32).detach().reshape(-1).cpu()
    b = torch.as_tensor(z_end, dtype=torch.float32).detach().reshape(-1).cpu()
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
    z0 = (mean if z0 is None else torch.as_tensor(z0, dtype=torch.float32).reshape(-1)).detach().float().cpu()
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
