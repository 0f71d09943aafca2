"""Reconstructions and samples of every benchmarked model, as images in [0, 1].

Introduced in: Benchmark.
"""

from __future__ import annotations

import torch
from torch import nn

from .protocol import BENCHMARKED


@torch.no_grad()
def reconstruct(name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """E[x | z] at z = the posterior mean (the code grid for a VQ-VAE), images in [0, 1] (introduced in: Benchmark)."""
    kind = BENCHMARKED[name].kind
    model.eval()
    if kind == "ae":
        return model(x)
    if kind == "vq":
        return model.decode_codes(model.codes(x)).mean
    if kind == "conditional":
        return model.decode(model.encode(x, y).mean, y).mean
    if hasattr(model, "generate"):                                         # hierarchical: z_l ~ q(z_l | x, z_>l)
        return model.forward_levels(x)[0].mean
    px = model.decode(model.encode(x).mean)
    return px.mean if _has_mean(px) else px.sample()                       # autoregressive: a binary sample


def _has_mean(dist) -> bool:
    try:
        dist.mean
    except NotImplementedError:
        return False
    return True


@torch.no_grad()
def generate(name: str, model: nn.Module, n: int, seed: int = 0, prior: nn.Module | None = None) -> torch.Tensor:
    """n samples from the model, decoder means in [0, 1]; class-balanced labels for conditional models.

    Introduced in: Benchmark. An autoregressive decoder has no tractable mean: its samples are binary.
    """
    kind = BENCHMARKED[name].kind
    model.eval()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    if kind == "vq":
        draw = torch.Generator(_device(prior)).manual_seed(seed)                # on the prior's device
        codes = torch.cat([prior.sample(len(b), b.to(_device(prior)), generator=draw) for b in y.split(1000)])
        return torch.cat([model.decode_codes(c).mean for c in codes.split(1000)])
    if hasattr(model, "generate"):
        return model.generate(n, generator=torch.Generator(_device(model)).manual_seed(seed))[0]
    if kind == "conditional":
        z = torch.randn(n, model.config.latent, generator=gen).to(_device(model))
        return torch.cat([model.decode(zb, yb.to(zb.device)).mean for zb, yb in zip(z.split(1000), y.split(1000))])
    z = model.prior().sample((n,))                                         # global RNG, seeded above
    dists = [model.decode(b) for b in z.split(1000)]
    return torch.cat([d.mean if _has_mean(d) else d.sample() for d in dists])


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
