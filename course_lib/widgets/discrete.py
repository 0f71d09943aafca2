"""Explorers of Part IV: a label selector with latent sliders (CVAE) and a code-cell swap (VQ-VAE).

Introduced in: Conditional VAEs. Same two faces as the other explorers (`LatentExplorer`):
live ipywidgets in Jupyter, pre-rendered frames behind plain range inputs in the web book.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .explorer import LatentExplorer, _live_box
from .frames import decode_images, png_uri


def label_sliders(decode: Callable[[torch.Tensor, torch.Tensor], torch.distributions.Distribution], latent: int,
                  labels: Sequence[str], dims: Sequence[int] = (0, 1), span: float = 2.5, steps: int = 7,
                  z0: torch.Tensor | None = None, zoom: int = 3, device: torch.device | str = "cpu") -> LatentExplorer:
    """Decode p(x|z, y) with a label selector and sliders on ``dims`` of z (the others at ``z0``, default 0).

    Introduced in: Conditional VAEs. ``decode(z, y)`` takes z (N, M) and labels y (N,). Static
    face: every label x every slider position, one frame each (len(labels) * steps**len(dims)).
    """
    if not dims or any(not 0 <= d < latent for d in dims):
        raise ValueError(f"dims {list(dims)} must be non-empty and within 0..{latent - 1}")
    z0 = torch.zeros(latent) if z0 is None else torch.as_tensor(z0, dtype=torch.float32).reshape(-1).cpu()
    offsets = torch.linspace(-span, span, steps)
    grids = torch.cartesian_prod(*[offsets] * len(dims)).reshape(-1, len(dims))    # (steps**d, d)
    z = z0.repeat(len(labels) * len(grids), 1)                                      # (L * G, M), row-major
    z[:, list(dims)] = grids.repeat(len(labels), 1)
    y = torch.arange(len(labels)).repeat_interleave(len(grids))                     # (L * G,)
    imgs = decode_images(lambda zz: decode(zz, y.to(device)), z.to(device))         # (L * G, H, W)
    sliders = [("label", list(labels))] + [(f"z[{d}]", [f"{o:+.1f}" for o in offsets.tolist()]) for d in dims]

    def build(ex: LatentExplorer):
        import ipywidgets as W
        controls = {"label": W.Dropdown(options=[(s, i) for i, s in enumerate(labels)], value=0,
                                        description="label")}
        controls.update({f"z[{d}]": W.FloatSlider(value=0.0, min=-span, max=span, step=span / 50,
                                                  description=f"z[{d}]") for d in range(latent)})

        def render() -> np.ndarray:
            zz = torch.tensor([[controls[f"z[{d}]"].value for d in range(latent)]], dtype=torch.float32)
            yy = torch.tensor([controls["label"].value], device=device)
            return decode_images(lambda v: decode(v, yy), zz.to(device))[0].numpy()
        return _live_box(ex, controls, render)

    images = [("p(x | z, y)", [png_uri(im) for im in imgs], None)]
    return LatentExplorer("Conditional decoder: pick a label, move z", sliders, images, build, zoom, px=imgs.shape[-1])


def code_swap(decode_codes: Callable[[torch.Tensor], torch.distributions.Distribution], codes: torch.Tensor,
              candidates: Sequence[int], zoom: int = 4, device: torch.device | str = "cpu") -> LatentExplorer:
    """Decode a code grid (h, w) with one cell swapped to another codebook entry.

    Introduced in: VQ-VAE and a learned prior. Live face: click a cell (a grid of buttons
    showing its code), pick the new code with a slider. Static face: sliders for the row, the
    column and one of ``candidates`` (the first slider position keeps the original code).
    """
    if codes.dim() != 2:
        raise ValueError(f"codes must be one (h, w) grid, got shape {tuple(codes.shape)}")
    codes = codes.detach().cpu()
    h, w = codes.shape
    options = [None, *[int(c) for c in candidates]]                                 # None: the original
    grids = codes.repeat(h * w * len(options), 1, 1).clone()                        # (h*w*O, h, w) row-major
    for i in range(h):
        for j in range(w):
            for o, c in enumerate(options):
                if c is not None:
                    grids[(i * w + j) * len(options) + o, i, j] = c
    imgs = decode_images(lambda g: decode_codes(g.long()), grids.to(device))                   # (N, H, W)
    sliders = [("row", [str(i) for i in range(h)]), ("column", [str(j) for j in range(w)]),
               ("new code", ["original"] + [str(c) for c in options[1:]])]

    def build(ex: LatentExplorer):
        import ipywidgets as W
        state = {"cell": (0, 0), "grid": codes.clone()}
        k = int(codes.max()) + 1 if not candidates else max(int(codes.max()), *options[1:]) + 1
        slider = W.IntSlider(value=int(codes[0, 0]), min=0, max=max(k, 2) - 1, description="code")
        buttons = [[W.Button(description=str(int(codes[i, j])), layout=W.Layout(width="42px")) for j in range(w)]
                   for i in range(h)]

        def pick(i: int, j: int) -> None:
            state["cell"] = (i, j)
            slider.value = int(state["grid"][i, j])
        for i in range(h):
            for j in range(w):
                buttons[i][j].on_click(lambda _b, i=i, j=j: pick(i, j))

        def render() -> np.ndarray:
            i, j = state["cell"]
            state["grid"][i, j] = slider.value
            buttons[i][j].description = str(slider.value)
            return decode_images(lambda g: decode_codes(g.long()), state["grid"][None].to(device))[0].numpy()
        box = _live_box(ex, {"code": slider}, render)
        box.children = (*box.children, W.VBox([W.HBox(row) for row in buttons]))
        return box

    images = [("decoded", [png_uri(im) for im in imgs], None)]
    return LatentExplorer("VQ-VAE: swap the code of one cell", sliders, images, build, zoom, px=imgs.shape[-1])
