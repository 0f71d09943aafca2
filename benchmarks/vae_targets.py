"""The VAE targets of the course: conv VAE on dynamically binarized MNIST, timed and evaluated.

A measurement, not a test. Protocol (Burda et al. 2015): train the conv VAE of
`course_lib.models.vae` (32-d latent, Bernoulli decoder) on the 50k training images, re-binarized
every pass, for ``--epochs`` epochs (target protocol: 50); then estimate the test NLL with
the k-sample importance-weighted bound (target: k >= 1000, the whole 10k test set) on

  dynamic   MNIST test images binarized once with seed 0 (target: <= 86 nats;
            Burda et al. report 86.76 for a one-stochastic-layer VAE);
  static    the binarized MNIST of Larochelle & Murray (2011).

Prints the device, seconds per epoch, the 50-epoch wall time (measured or extrapolated) and
the NLLs as JSON. Usage:

  python benchmarks/vae_targets.py                       # the full protocol
  python benchmarks/vae_targets.py --epochs 1 --k 100 --subset 500   # a quick run
"""

from __future__ import annotations

import argparse
import json
import time


import course_lib
from course_lib import DeviceLoader, Trainer, load
from course_lib.env import device_name
from course_lib.evaluation import nll_estimate, test_subset
from course_lib.models.vae import VAE, VAEConfig
from course_lib.objectives import elbo

TARGET_NLL, TARGET_GPU_S, SEEDS_50_EPOCHS_S, BURDA_VAE = 86.0, 30.0, 9 * 60 + 22, 86.76


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--k", type=int, default=1000, help="importance samples per test image")
    parser.add_argument("--subset", type=int, default=None, help="random test images per set (default: all 10k)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    args = parser.parse_args(argv)

    settings = course_lib.setup(seed=0, device=args.device)
    device = settings.device
    model = VAE(VAEConfig(arch="conv", latent=32)).to(device)
    trainer = Trainer(model, elbo, lr=1e-3, compile=args.compile, amp=False, progress=False, verbose=True,
                      name="vae_targets")
    train = DeviceLoader(load("dynamic_mnist", "train", device), args.batch)
    start = time.perf_counter()
    trainer.fit(train, args.epochs)
    train_s = time.perf_counter() - start
    per_epoch = trainer.history["epoch_time"]

    results = {"device": str(device), "device_name": device_name(device), "epochs": args.epochs,
               "batch": args.batch, "train_wall_s": round(train_s, 2),
               "epoch_s_mean": round(sum(per_epoch) / len(per_epoch), 3),
               "epoch_s_first": per_epoch[0],
               "fifty_epochs_s": round(train_s if args.epochs == 50 else 50 * sum(per_epoch) / len(per_epoch), 1),
               "fifty_epochs_extrapolated": args.epochs != 50,
               "final_train_neg_elbo": trainer.history["train"]["loss"][-1]}
    for tag, name in (("dynamic", "dynamic_mnist"), ("static", "binarized_mnist")):
        start = time.perf_counter()
        data = test_subset(name, args.subset, device) if args.subset else load(name, "test", device)
        est = nll_estimate(model, data, k=args.k, batch=100)
        results[tag] = {**{k: round(v, 3) if isinstance(v, float) else v for k, v in est.items()},
                        "eval_s": round(time.perf_counter() - start, 1)}
    results["targets"] = {
        "nll_dynamic<=86": results["dynamic"]["nll"] <= TARGET_NLL and args.k >= 1000 and args.subset is None,
        "gpu_50_epochs<30s": device.type == "cuda" and results["fifty_epochs_s"] < TARGET_GPU_S,
        "seeds_50_epochs_s": SEEDS_50_EPOCHS_S, "burda_vae_nll": BURDA_VAE,
        "full_protocol": args.epochs >= 50 and args.k >= 1000 and args.subset is None}
    print(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
