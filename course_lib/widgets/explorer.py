"""`LatentExplorer`: one explorer, two faces (static HTML for the web book, live ipywidgets).

Introduced in: The variational autoencoder.
"""

from __future__ import annotations

import html
import json
import math
import uuid
from typing import Callable

import numpy as np

from ..env import interactive
from .frames import _png_bytes

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

    def __init__(self, title: str, sliders: list, images: list, live_builder: Callable, zoom: int = 3,
                 grid: tuple | None = None, figures: list | None = None, *, px: int) -> None:
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


