"""Exercise checks of the chapter "VQ-VAE and a learned prior"."""

from __future__ import annotations

from typing import Callable

import torch

from ..models.pixelcnn import causal_mask
from ..models.vqvae import nearest_code
from .check import ExerciseError, check_close


def check_quantise(your_quantise: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]) -> None:
    """Check ``your_quantise(z_e, codebook)`` -> (z_st, idx): nearest codes and a straight-through output.

    Introduced in: VQ-VAE and a learned prior. z_e (N, D), codebook (K, D); z_st must equal the
    chosen codebook rows and pass the gradient to z_e unchanged.
    """
    g = torch.Generator().manual_seed(5)
    z_e = torch.randn(12, 3, generator=g, dtype=torch.float64).requires_grad_()
    codebook = torch.randn(6, 3, generator=g, dtype=torch.float64) * 1.5
    codebook[0] *= 4                                                              # a long vector: dot != distance
    out = your_quantise(z_e, codebook.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise ExerciseError("your_quantise should return two things: (z_st, idx)")
    z_st, idx = out
    right = nearest_code(z_e.detach(), codebook)
    dot = (z_e.detach() @ codebook.t()).argmax(1)
    if torch.equal(torch.as_tensor(idx), dot) and not torch.equal(dot, right):
        raise ExerciseError("your indices maximise the dot product z.e_k; the nearest code minimises the "
                            "distance ||z - e_k||^2 = ||z||^2 - 2 z.e_k + ||e_k||^2 (the norms of e_k matter)")
    check_close(torch.as_tensor(idx).double(), right.double(), "your code indices")
    check_close(z_st.detach(), codebook[right], "your z_st (forward value)")
    if not z_st.requires_grad:
        raise ExerciseError("z_st carries no gradient to z_e: the straight-through output is "
                            "z_e + (z_q - z_e).detach(), whose value is z_q and whose gradient is the identity")
    upstream = torch.randn(z_st.shape, generator=g, dtype=torch.float64)
    (grad,) = torch.autograd.grad((z_st * upstream).sum(), z_e, allow_unused=True)
    if grad is None:
        raise ExerciseError("no gradient reaches z_e; use z_e + (z_q - z_e).detach()")
    check_close(grad, upstream, "the gradient of z_st with respect to z_e", mistakes={
        "the gradient is zero: you detached z_e as well (z_e.detach() + ...)": torch.zeros_like(upstream)})


def check_mask(your_mask: Callable[[int, str], torch.Tensor]) -> None:
    """Check ``your_mask(k, mask_type)`` -> the k x k PixelCNN mask ('A' excludes the centre, 'B' keeps it).

    Introduced in: VQ-VAE and a learned prior.
    """
    for k in (3, 5, 7):
        for t in ("A", "B"):
            answer = your_mask(k, t)
            if answer is None:
                raise ExerciseError("your_mask returned None: did you forget to `return` it?")
            answer = torch.as_tensor(answer, dtype=torch.float64)
            right = causal_mask(k, t).double()
            other = causal_mask(k, "B" if t == "A" else "A").double()
            full_row = right.clone()
            full_row[k // 2] = 1
            check_close(answer, right, f"your {k}x{k} mask {t}", mistakes={
                "A and B are swapped: mask A (first layer) hides the centre pixel, B keeps it": other,
                "the centre row: only pixels left of the centre (and, for B, the centre) are visible": full_row,
                "the rows above are visible, those below are not (you flipped the mask)": right.flip(0),
            })
