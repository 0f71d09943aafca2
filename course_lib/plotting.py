"""Display helpers every chapter uses: image grids, training curves, `glue` (introduced in: The course toolkit)."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch
from torchvision.utils import make_grid



def show_images(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None,
                scale: float = 0.9):
    """Show a batch of (N, C, H, W) images in [0, 1] as one grid; returns the axes.

    Introduced in: The course toolkit.
    """
    if images.dim() == 3:  # (N, H, W) -> (N, 1, H, W)
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise ValueError(f"show_images wants (N, C, H, W) or (N, H, W), got shape {tuple(images.shape)}")
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    if ax is None:
        rows = -(-images.shape[0] // nrow)
        _, ax = plt.subplots(figsize=(scale * min(nrow, images.shape[0]), scale * rows))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_history(history: dict, terms: Sequence[str] | None = None, window: int = 50, axes=None):
    """Training curves from `Trainer.history`: per-step loss (smoothed) and per-epoch terms.

    Introduced in: The course toolkit.
    """
    train, valid = history.get("train", {}), history.get("valid", {})
    terms = list(terms or train.keys())
    if axes is None:
        _, axes = plt.subplots(1, 1 + len(terms), figsize=(3.6 * (1 + len(terms)), 3))
    steps = history.get("step_loss", [])
    stride = history.get("step_loss_stride", 1)              # shipped records keep block means of `stride` steps
    x = [stride * (i + 0.5) for i in range(len(steps))]
    smooth = max(1, window // stride)
    axes[0].plot(x, steps, alpha=0.3, lw=0.8, label="per step" if stride == 1 else f"mean of {stride} steps")
    axes[0].plot(x, moving_average(steps, smooth), lw=1.5, label=f"mean of {smooth * stride}")
    if len(steps) > 20:  # the first steps' loss is far above the rest: zoom on the curve after them
        tail = sorted(steps[len(steps) // 50:])
        low, high = tail[0], tail[int(0.98 * (len(tail) - 1))]
        axes[0].set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
    axes[0].set(xlabel="step", ylabel="loss", title="training loss")
    axes[0].legend(frameon=False)
    for ax, term in zip(axes[1:], terms):
        epochs = range(1, len(train.get(term, [])) + 1)
        ax.plot(epochs, train.get(term, []), "o-", ms=3, label="train")
        if term in valid:
            ax.plot(range(1, len(valid[term]) + 1), valid[term], "s--", ms=3, label="valid")
        ax.set(xlabel="epoch", title=term)
        ax.legend(frameon=False)
    plt.tight_layout()
    return axes


def moving_average(values: list[float], window: int = 50) -> list[float]:
    """Trailing mean, for plotting noisy per-step losses (introduced in: How to use this book)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def glue(name: str, value, display: bool = False):
    """Record ``value`` for the text (``{glue:text}`name:.2f```) with myst-nb; returns ``value``.

    Introduced in: The course toolkit. Outside a book build (Colab, plain Jupyter) myst-nb
    may be missing; then this only returns the value, so the notebook still runs.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:
        return value
    _glue(name, value, display=display)
    return value
