"""Time MNIST epochs of a small conv VAE: the course Trainer against plain DataLoader loops.

A measurement, not a test. Three loops train the same model (course_lib.models.vae, conv, 32-d
latent, Bernoulli decoder, dynamic binarization) for the same number of epochs:

  course    course_lib.Trainer over a DeviceLoader: the dataset sits on the device as one
            tensor, batches are sliced there, terms are summed on the device and read once
            per epoch;
  tensor    torch DataLoader over a TensorDataset on the host: one host->device copy per
            batch and a `loss.item()` per step (the usual hand-written loop);
  tutorial  torchvision.datasets.MNIST with ToTensor() in a DataLoader: a PIL image is
            decoded and converted per example (the loop most tutorials show).

Usage: python benchmarks/trainer_vs_dataloader.py [--epochs 1] [--repeats 3] [--device cuda] [--workers 0]
The loops run interleaved ``--repeats`` times; the fastest epoch of each is reported (on a
shared machine the minimum is the least noisy estimate), with the ratios to the course loop.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

import course_lib
from course_lib import DeviceLoader, Trainer, load
from course_lib.data import locate
from course_lib.env import cache_dir, device_name
from course_lib.models.vae import VAE, VAEConfig
from course_lib.objectives import elbo


def make_model(device: torch.device) -> tuple[VAE, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = VAE(VAEConfig(arch="conv", latent=32, channels=32)).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_course(device: torch.device, epochs: int, batch: int) -> float:
    model, opt = make_model(device)
    trainer = Trainer(model, elbo, optimizer=opt, progress=False, verbose=False)
    loader = DeviceLoader(load("dynamic_mnist", "train", device), batch)
    trainer.fit(loader, epochs)
    return sum(trainer.history["epoch_time"]) / epochs


def plain_loop(device: torch.device, loader: DataLoader, epochs: int) -> float:
    model, opt = make_model(device)
    sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        total = 0.0
        for x, _ in loader:
            x = torch.bernoulli(x.to(device, non_blocking=False))  # host -> device, then binarize
            loss = elbo(model, x)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()  # a host sync every step, as most hand-written loops do
    sync(device)
    return (time.perf_counter() - start) / epochs


def time_tensor(device: torch.device, epochs: int, batch: int, workers: int) -> float:
    train = load("mnist", "train", "cpu")
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=batch, shuffle=True,
                        num_workers=workers, pin_memory=device.type == "cuda")
    return plain_loop(device, loader, epochs)


def time_tutorial(device: torch.device, epochs: int, batch: int, workers: int) -> float:
    import torchvision
    from torchvision.transforms import ToTensor

    # torchvision wants the extracted files: copy the .gz files into the cache (no download;
    # their md5s are verified) and let it extract them there.
    root = cache_dir() / "torchvision"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for f in (locate("mnist") / "MNIST" / "raw").glob("*.gz"):
        if not (raw / f.name).exists():
            shutil.copy(f, raw / f.name)
    full = torchvision.datasets.MNIST(str(root), train=True, download=True, transform=ToTensor())
    subset = torch.utils.data.Subset(full, range(50_000))  # the same 50k training images
    loader = DataLoader(subset, batch_size=batch, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda")
    return plain_loop(device, loader, epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for the plain loops")
    parser.add_argument("--device", default=None)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions; the minimum is reported")
    parser.add_argument("--skip-tutorial", action="store_true")
    args = parser.parse_args()
    settings = course_lib.setup(seed=0, device=args.device)
    device = settings.device
    results = {"device": device_name(device), "epochs": args.epochs, "batch_size": args.batch_size,
               "workers": args.workers, "torch": torch.__version__}
    loops = {"course": lambda: time_course(device, args.epochs, args.batch_size),
             "tensor_dataloader": lambda: time_tensor(device, args.epochs, args.batch_size, args.workers)}
    if not args.skip_tutorial:
        loops["tutorial_dataloader"] = lambda: time_tutorial(device, args.epochs, args.batch_size, args.workers)
    times: dict[str, list[float]] = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, loop in loops.items():
            times[name].append(loop())
    for name, values in times.items():
        results[f"{name}_s_per_epoch"] = min(values)
        results[f"{name}_images_per_s"] = round(50_000 / min(values), 1)   # one epoch = 50k training images
        results[f"{name}_all_runs"] = [round(v, 3) for v in values]
    base = results["course_s_per_epoch"]
    for key in ("tensor_dataloader", "tutorial_dataloader"):
        if f"{key}_s_per_epoch" in results:
            results[f"{key}_over_course"] = results[f"{key}_s_per_epoch"] / base
    print(json.dumps(results, indent=1))
    for name in times:
        ratio = results.get(f"{name}_over_course", 1.0)
        print(f"{name:22s} {results[f'{name}_images_per_s']:10.1f} images/s   course is {ratio:.2f}x faster")


if __name__ == "__main__":
    main()
