"""A dataset split as whole tensors on the device, and the loader that batches it there.

Introduced in: How to use this book. `course_lib.data.load` returns a `Split`; a
`DeviceLoader` draws mini-batches from it without leaving the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from .distributed import broadcast, world


@dataclass
class Split:
    """One split of one dataset, as whole tensors.

    ``x``: (N, 1, 28, 28) float32 in [0, 1]; ``y``: (N,) int64 labels, or None (static
    binarized MNIST has none). ``binarize`` is ``"dynamic"`` when every pass should draw
    fresh binary pixels x_b ~ Bernoulli(x) (the protocol of Burda et al. 2015).
    Introduced in: How to use this book.
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor | None
    binarize: str | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> "Split":
        y = None if self.y is None else self.y.to(device)
        return Split(self.name, self.split, self.x.to(device), y, self.binarize)

    def __repr__(self) -> str:
        return (f"Split({self.name!r}, {self.split!r}, x={tuple(self.x.shape)} on {self.x.device}, "
                f"labels={'yes' if self.y is not None else 'no'}, binarize={self.binarize})")


class DeviceLoader:
    """Mini-batches drawn from a `Split` that already sits on the device (introduced in: How to use this book).

    Each epoch draws one permutation on the device and slices it, so no batch ever leaves
    the device. Yields ``x`` alone, or ``(x, y)`` when ``labels=True``. Dynamically
    binarized splits get fresh Bernoulli pixels in every batch. Under ``torchrun`` each of the
    N ranks gets ``batch_size`` examples of every global batch of N * ``batch_size`` (rank 0's
    permutation, broadcast), and the last incomplete global batch is dropped so every rank
    takes the same number of equal steps.
    """

    def __init__(self, data: Split, batch_size: int = 128, shuffle: bool = True,
                 labels: bool = False, drop_last: bool = False) -> None:
        if labels and data.y is None:
            raise ValueError(f"{data.name} has no labels; use labels=False")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.labels, self.drop_last = labels, drop_last
        self.rank, self.ranks = world()

    def __len__(self) -> int:
        n, b = len(self.data), self.batch_size * self.ranks        # b: the global batch
        return n // b if self.drop_last or self.ranks > 1 else -(-n // b)

    def __iter__(self) -> Iterator[torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        n, dev = len(self.data), self.data.x.device
        order = torch.randperm(n, device=dev) if self.shuffle else torch.arange(n, device=dev)
        order = broadcast(order)                                    # every rank: rank 0's order
        glob = self.batch_size * self.ranks
        for b in range(len(self)):
            start = b * glob + self.rank * self.batch_size          # this rank's slice of global batch b
            idx = order[start:min(start + self.batch_size, (b + 1) * glob)]
            x = self.data.x[idx]  # gather on the device: (B, 1, 28, 28)
            if self.data.binarize == "dynamic":
                x = torch.bernoulli(x)  # x_b ~ Bernoulli(grey level), fresh every pass
            yield (x, self.data.y[idx]) if self.labels else x
