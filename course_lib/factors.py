"""Datasets made of every combination of discrete ground-truth factors (dSprites and the like).

Introduced in: β-VAE and disentanglement. The disentanglement metrics need only this class's
index arithmetic and sampling, plus an ``images(index)`` method from the dataset.
"""

from __future__ import annotations

import math

import torch


class FactorGrid:
    """Every combination of discrete factors, indexed like dSprites (introduced in: β-VAE and disentanglement).

    The index is the mixed-radix number of the factor classes, the last factor fastest. The
    metrics need only this class's sampling methods plus ``images(index)``.
    """

    def __init__(self, factor_sizes: tuple[int, ...], device: torch.device | str = "cpu") -> None:
        self.factor_sizes, self.device = tuple(int(k) for k in factor_sizes), torch.device(device)
        sizes = torch.tensor(self.factor_sizes)
        # stride_k = prod_{l > k} K_l, so index = sum_k class_k * stride_k
        self._strides = (torch.cumprod(sizes.flip(0), 0).flip(0) // sizes).to(self.device)
        self._sizes = sizes.to(self.device)

    def __len__(self) -> int:
        return math.prod(self.factor_sizes)

    def index_from_factors(self, classes: torch.Tensor) -> torch.Tensor:
        """(..., F) integer classes -> (...,) indices."""
        return (classes.to(self._strides.device).long() * self._strides).sum(-1)

    def factors_from_index(self, index: torch.Tensor) -> torch.Tensor:
        """(...,) indices -> (..., F) integer classes."""
        return index.to(self._strides.device).long()[..., None] // self._strides % self._sizes

    def factors(self, index: torch.Tensor) -> torch.Tensor:
        """The ground-truth classes of ``index``: (..., F) int64 on the device."""
        return self.factors_from_index(index)

    def sample_index(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` indices drawn uniformly (with replacement): (n,) int64 on the device."""
        dev = generator.device if generator is not None else self.device
        return torch.randint(len(self), (n,), generator=generator, device=dev).to(self.device)

    def sample_fixed_factor(self, factor: int | torch.Tensor, batch: int,
                            generator: torch.Generator | None = None) -> torch.Tensor:
        """Batches in which one factor keeps one random value and the others vary (FactorVAE score).

        ``factor`` an int -> (batch,) indices; a (V,) tensor of factor numbers -> (V, batch).
        """
        f = torch.as_tensor(factor, device=self.device).long()
        classes = self.factors_from_index(self.sample_index(f.numel() * batch, generator))
        classes = classes.view(f.numel(), batch, -1)                      # (V, B, F)
        fixed = torch.nn.functional.one_hot(f.view(-1), len(self.factor_sizes)).bool()[:, None, :]
        classes = torch.where(fixed, classes[:, :1, :], classes)           # factor f_v := its value in row 0
        index = self.index_from_factors(classes)
        return index[0] if f.dim() == 0 else index

    def images(self, index: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("a FactorGrid has no images; use DSprites or define images(index)")
