"""Decoding latents to images and images to PNG data URIs, for the latent explorers.

Introduced in: The variational autoencoder.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid
from torch.distributions import Categorical, Distribution, Independent, Normal

Decode = Callable[[torch.Tensor], "Distribution | torch.Tensor"]
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


def as_code(z: object, name: str, dims: int | None = None) -> torch.Tensor:
    """A latent code given by a reader as a flat float32 CPU tensor, or a clear error.

    Introduced in: The variational autoencoder. Accepts tensors, arrays and lists of real
    numbers (any device); refuses complex, non-numeric, non-finite or wrongly sized input.
    """
    if isinstance(z, torch.Tensor) and (z.is_complex() or z.dtype == torch.bool):
        raise TypeError(f"{name} has dtype {z.dtype}; give real numbers, e.g. {name}.float() of a real code")
    try:
        t = torch.as_tensor(z if not isinstance(z, torch.Tensor) else z.detach().cpu(), dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor, array or list of numbers, got {type(z).__name__} ({err})") from None
    t = t.reshape(-1)
    if dims is not None and t.numel() != dims:
        raise ValueError(f"{name} has {t.numel()} entries but the prior has {dims} latent dimensions; "
                         f"pass one code of shape ({dims},), e.g. model.encode(x[:1]).mean[0]")
    if not torch.isfinite(t).all():
        bad = (~torch.isfinite(t)).nonzero().reshape(-1).tolist()
        raise ValueError(f"{name} has non-finite entries at {bad[:8]}; a NaN code usually comes from "
                         "a model whose training diverged: reload its checkpoint")
    return t


@torch.no_grad()
def decode_images(decode: Decode, z: torch.Tensor) -> torch.Tensor:
    """Mean images E[x|z] as a (B, H, W) float tensor on the CPU, clamped to [0, 1].

    Introduced in: The variational autoencoder.
    """
    out = decode(z)
    if not isinstance(out, torch.Tensor):
        base = out.base_dist if isinstance(out, Independent) else out
        if isinstance(base, Categorical):                   # 256-way per pixel: E[level] / (K - 1)
            probs = base.probs                              # (B, ..., K)
            levels = torch.arange(probs.shape[-1], device=probs.device, dtype=probs.dtype)
            out = (probs * levels).sum(-1) / (probs.shape[-1] - 1)
        else:
            out = out.mean                                  # Bernoulli: probs; Normal: loc
    if not out.dtype.is_floating_point:
        raise TypeError(f"decode(z) gave {out.dtype} images; return floats in [0, 1] "
                        "(e.g. divide 0-255 levels by 255) or a torch distribution")
    x = out.detach().float().cpu()
    if not torch.isfinite(x).all():             # clamp keeps NaN: refuse instead of drawing black pixels
        bad = int((~torch.isfinite(x.flatten(1))).any(1).sum())
        raise ValueError(f"decode(z) gave non-finite pixels in {bad} of {len(x)} images; check that the "
                         "codes are finite and the model's weights are not NaN (reload its checkpoint)")
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
    Introduced in: The variational autoencoder.
    """
    a = img.numpy() if isinstance(img, torch.Tensor) else img
    a = np.round(np.round(np.clip(a, 0, 1) * (levels - 1)) * (255 / (levels - 1))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def tile(images: torch.Tensor, nrow: int, pad: int = 0) -> np.ndarray:
    """(N, H, W) images -> one (rows*H, nrow*W) array, row-major, white padding between images.

    Introduced in: The variational autoencoder.
    """
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


