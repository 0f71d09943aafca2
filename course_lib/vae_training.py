"""Training and shipping the VAEs of the chapter "The variational autoencoder".

`CONFIGS` names every shipped VAE; ``trained_vae(name)`` loads its checkpoint (training it
if missing or stale), and ``python -m course_lib.retrain vae_conv`` retrains one. After
training, `test_metrics` stores active units and k-sample test NLLs in the JSON record.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from . import env
from .checkpoint import save_checkpoint, train_or_load
from .data import DeviceLoader, load
from .evaluation import active_units, eval_images, nll_estimate, test_subset
from .trainer import Trainer
from .vae import VAE, VAEConfig, elbo


def train_vae(model: VAE, config: VAEConfig, path: Path) -> Trainer:
    """Train with `Trainer` (KL warm-up if asked), then store test NLLs in the record."""
    device = next(model.parameters()).device
    smoke = env.smoke()
    env.seed_everything(config.seed)
    limit = 2000 if smoke else None
    train = DeviceLoader(load(config.dataset, "train", device, limit), config.batch_size)
    valid = DeviceLoader(load(config.dataset, "valid", device, 2000 if smoke else 5000), 500, shuffle=False)
    steps_warm = config.warmup_epochs * len(train)

    def objective(m: VAE, x: torch.Tensor) -> dict[str, torch.Tensor]:
        ramp = min(1.0, trainer.step / steps_warm) if steps_warm and m.training else 1.0
        out = elbo(m, x, beta=config.beta * ramp)
        return {**out, "beta": torch.tensor(config.beta * ramp, device=x.device)}

    trainer = Trainer(model, objective, config=config, lr=config.lr, checkpoint=path)
    trainer.fit(train, 1 if smoke else config.epochs, valid)
    record = trainer.record()
    extra = test_metrics(model, config, *((20, 200) if smoke else (config.eval_k, config.eval_n)))
    save_checkpoint(path, model, {**record, "metrics": {**record["metrics"], **extra}}, trainer.optimizer)
    return trainer


def test_metrics(model: VAE, config: VAEConfig, k: int, n: int) -> dict:
    """Active units and (if ``config.eval_k``) k-sample NLL estimates on ``n`` random test images."""
    device = next(model.parameters()).device
    data = test_subset(config.dataset, 2000, device)
    extra: dict = {"active_units": active_units(model, eval_images(data))[0]}
    if config.eval_k:
        test_sets = {"dynamic": "dynamic_mnist", "static": "binarized_mnist"} \
            if config.likelihood == "bernoulli" else {"test": config.dataset}
        for tag, name in test_sets.items():
            est = nll_estimate(model, test_subset(name, n, device), k=k)
            extra.update({f"{tag}_{key}": value for key, value in est.items()})
    return extra


MLP32 = VAEConfig(latent=32, epochs=20)
GAUSS = VAEConfig(latent=32, epochs=10, likelihood="gaussian", dataset="mnist")
CONFIGS: dict[str, VAEConfig] = {
    "vae_mlp2d": VAEConfig(latent=2, epochs=30),
    "vae_mlp2d_vamp": VAEConfig(latent=2, epochs=30, prior="vamp"),
    "vae_mlp32": replace(MLP32, eval_k=500, eval_n=2000),
    "vae_mlp32_warmup": replace(MLP32, warmup_epochs=10),
    "vae_gauss_s010": replace(GAUSS, sigma=0.1),
    "vae_gauss_s071": replace(GAUSS, sigma=math.sqrt(0.5)),
    "vae_gauss_meanmse": replace(GAUSS, sigma=math.sqrt(784 / 2)),
    "vae_conv": VAEConfig(arch="conv", latent=32, epochs=50, eval_k=1000, eval_n=2000),
    "vae_cat": VAEConfig(arch="conv", latent=32, epochs=5, likelihood="categorical", dataset="mnist"),
}


def trained_vae(name: str, device: torch.device | str | None = None) -> tuple[VAE, dict]:
    """The shipped VAE ``name`` (a key of `CONFIGS`), trained if missing or stale."""
    return train_or_load(name, CONFIGS[name], VAE, train_vae, device=device)
