"""Small models and data shared by the trainer, checkpoint and run tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class TinyConfig:
    width: int = 8
    lr: float = 0.05


class Tiny(nn.Module):
    """y = w2 relu(w1 x): a regression net small enough for unit tests."""

    def __init__(self, config: TinyConfig = TinyConfig()) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, config.width), nn.ReLU(), nn.Linear(config.width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def mse(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
    x, y = batch
    err = (model(x) - y).pow(2).mean()
    return {"loss": err, "rmse": err.sqrt()}


def batches(n: int = 20, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    w = torch.tensor([[1.0], [-2.0], [0.5]])
    out = []
    for _ in range(n):
        x = torch.randn(32, 3, generator=g)
        out.append((x, x @ w + 0.01 * torch.randn(32, 1, generator=g)))
    return out


def finished_record(config=TinyConfig(), **extra) -> dict:
    """A minimal valid record of a finished run (what `save_checkpoint` requires)."""
    from course_lib.checkpoint import config_dict, config_hash

    return {"name": "m", "config": config_dict(config), "config_hash": config_hash(config), "epochs": 1,
            "finished": True, "device": "cpu", "wall_time_s": 0.1, "metrics": {}, **extra}
