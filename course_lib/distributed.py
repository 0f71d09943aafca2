"""Several processes, one model: PyTorch's DistributedDataParallel under ``torchrun``.

Introduced in: How to use this book (training on several GPUs). Nothing here changes a
single-process run. Under ``torchrun --nproc_per_node=N``, `init_from_env` joins the process
group (NCCL on GPUs, gloo on CPUs); the `Trainer` then wraps the objective in DDP, each rank
trains on its own shard of every global batch (`DeviceLoader` shards by itself), metrics are
summed across ranks once per epoch, and only rank 0 writes checkpoints.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn


def world() -> tuple[int, int]:
    """(this process's rank, the number of processes); (0, 1) when not distributed.

    Introduced in: How to use this book.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0 (and in every single-process run): the process that writes files.

    Introduced in: How to use this book.
    """
    return world()[0] == 0


def init_from_env() -> torch.device | None:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1); return this rank's device.

    Introduced in: How to use this book. Returns None outside ``torchrun`` (nothing to join).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place; returns it (a no-op in a single process).

    Introduced in: How to use this book.
    """
    if world()[1] > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``tensor`` on every rank, in place (a no-op in a single process).

    Introduced in: How to use this book.
    """
    if world()[1] > 1:
        dist.broadcast(tensor, src=0)
    return tensor


class ObjectiveModule(nn.Module):
    """The objective as a module's ``forward``, so DDP sees the whole loss computation.

    Introduced in: How to use this book. Objectives call ``model.encode``/``decode``, not
    ``model(x)``; DDP synchronises gradients only for computations inside its ``forward``.
    """

    def __init__(self, model: nn.Module, objective: Callable[[nn.Module, Any], dict]) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, batch: Any) -> dict:
        return self.objective(self.model, batch)


def data_parallel(model: nn.Module, objective: Callable[[nn.Module, Any], dict]) -> nn.Module:
    """``DistributedDataParallel(ObjectiveModule(model, objective))`` for this rank's device.

    Introduced in: How to use this book. Each rank's loss is the mean over its shard; DDP
    averages the gradients, so with equal shards the step is that of the global batch.
    """
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(ObjectiveModule(model, objective), device_ids=ids)
