"""How fast each model trains, and what the data pipeline costs.

Introduced in: Benchmark.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .. import env, runs
from ..batches import DeviceLoader
from ..data import load
from ..objectives import elbo
from ..runs.base import loaders
from ..trainer import Trainer


def train_speed(name: str, device: torch.device, steps: int) -> float:
    """Images per second of one training step (forward, backward, Adam) on a batch of the run's own training data.

    Introduced in: Benchmark. A fresh model, so the shipped weights are untouched.
    """
    run = runs.get(name)
    env.seed_everything(0)
    model = run.build(run.model).to(device).train()
    train_loader, _ = (run.data or loaders)(run.train, device, True)
    batch = next(iter(train_loader))
    objective = run.objective(run.train, lambda: 1.0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = objective(model, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with torch.enable_grad():                                              # callers may be under no_grad
        for _ in range(2):
            step()
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
    images = len(batch[0] if isinstance(batch, (tuple, list)) else batch)
    return images * steps / (time.perf_counter() - start)


def loop_ratio(device: torch.device | str = "cpu", images: int = 10_000, batch: int = 128, repeats: int = 3) -> dict:
    """Seconds per pass over ``images`` training images: the course `Trainer` against a plain `DataLoader` loop.

    Introduced in: Benchmark. Same model (``vae_mlp32``'s architecture), objective, optimizer and
    batch size. The course loop slices batches of a dataset that sits on the device and reads
    the loss once per epoch; the plain loop copies each batch from the host and calls
    ``loss.item()`` every step, as most hand-written loops do. The loops alternate ``repeats``
    times and the fastest pass of each counts (on a shared machine the least noisy estimate).
    """
    device, run = torch.device(device), runs.get("vae_mlp32")
    on_device, host = load("dynamic_mnist", "train", device, images), load("mnist", "train", "cpu", images)

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        env.seed_everything(0)
        model = run.build(run.model).to(device)
        return model, torch.optim.Adam(model.parameters(), lr=run.train.lr)

    def course() -> float:
        model, opt = fresh()
        trainer = Trainer(model, elbo, optimizer=opt, progress=False, verbose=False)
        _sync(device)
        start = time.perf_counter()
        trainer.fit(DeviceLoader(on_device, batch), 1)
        _sync(device)
        return time.perf_counter() - start

    def plain() -> float:
        model, opt = fresh()
        loader = DataLoader(TensorDataset(host.x, host.y), batch_size=batch, shuffle=True)
        _sync(device)
        start, total = time.perf_counter(), 0.0
        for xb, _ in loader:
            xb = torch.bernoulli(xb.to(device))                            # host -> device, then binarize
            loss = elbo(model, xb)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()                                           # a host sync every step
        _sync(device)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"course": [], "dataloader": []}
    for _ in range(repeats):
        times["course"].append(course())
        times["dataloader"].append(plain())
    best = {k: min(v) for k, v in times.items()}
    return {"model": "vae_mlp32", "images": images, "batch": batch, "repeats": repeats,
            "course_images_per_s": round(images / best["course"], 1),
            "dataloader_images_per_s": round(images / best["dataloader"], 1),
            "dataloader_over_course": round(best["dataloader"] / best["course"], 3),
            "device_name": env.device_name(device)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
