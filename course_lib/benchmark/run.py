"""Measure every benchmarked model with one protocol and write the numbers into its record.

Introduced in: Benchmark.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .. import env, runs
from ..checkpoint import read_record
from ..evaluation import active_units
from ..fld import fld
from ..objectives_discrete import codebook_usage
from ..paired import mean_se, per_image_bounds
from ..runs.discrete import vq_bound_terms
from ..runs.hierarchical import layer_statistics
from ..runs.sigma import lenet_name, reference_stats
from ..runs.sweep import rewrite_record
from .images import generate
from .protocol import BENCHMARKED, Protocol, test_data
from .speed import loop_ratio, train_speed


@torch.no_grad()
def evaluate(name: str, protocol: Protocol = Protocol(), device: torch.device | str = "cpu") -> dict:
    """Model ``name`` measured with ``protocol``: bound, rate, distortion, units, FLD, training speed.

    Introduced in: Benchmark. Means in nats per image with standard errors over the n images.
    """
    device, entry = torch.device(device), BENCHMARKED[name]
    start = time.perf_counter()
    model, record = runs.trained(name, device, allow_training=False)
    x, y = test_data(name, protocol.n, device, protocol.seed)
    out: dict = {"family": entry.family, "kind": entry.kind, "protocol": asdict(protocol),
                 "data": getattr(runs.get(name).train, "dataset", ""), "tensors_sha256": record["tensors_sha256"]}
    if entry.kind == "ae":
        err = torch.cat([(model(b) - b).pow(2).flatten(1).sum(1) for b in x.split(500)])   # squared error per image
        out["distortion"], out["distortion_stderr"] = mean_se(err)
    else:
        prior = runs.trained(entry.prior, device, allow_training=False)[0] if entry.prior else None
        if entry.kind == "vq":
            model.eval(), prior.eval()
            codes, rate, distortion = vq_bound_terms(model, prior, x, y.to(device))   # rate = -log p(z_q)
            terms = {"iwae": -(rate + distortion), "elbo": -(rate + distortion), "rate": rate, "distortion": distortion}
            perplexity, used = codebook_usage(codes, model.config.codes)
            out.update({"perplexity": float(perplexity), "codes_used": float(used), "bound": "vq_prior",
                        "prior_sha256": read_record(runs.checkpoint_dir() / entry.prior)["tensors_sha256"]})
        else:
            terms = per_image_bounds(model, x, protocol.k, protocol.batch, protocol.chunk, protocol.seed,
                                     y if entry.kind == "conditional" else None)
            out["bound"] = "iwae_conditional" if entry.kind == "conditional" else "iwae"
            out.update(_units(model, x, y if entry.kind == "conditional" else None))
        for key, values in (("nll", -terms["iwae"]), ("neg_elbo", -terms["elbo"]), ("rate", terms["rate"]),
                            ("distortion", terms["distortion"])):
            out[key], out[f"{key}_stderr"] = mean_se(values)
        if entry.fld:
            dataset = out["data"].replace("dynamic_", "")                 # samples are scored against grey levels
            lenet, ref = reference_stats(dataset, device, protocol.samples)
            out["fld"] = fld(generate(name, model, protocol.samples, protocol.seed, prior), ref, lenet)
            out["fld_with"] = lenet_name(dataset)
    out["eval_s"] = round(time.perf_counter() - start, 1)
    out["device_name"] = env.device_name(device)
    out["train_images_per_s"] = round(train_speed(name, device, protocol.speed_steps), 1)
    out["speed_device_name"] = out["device_name"]
    return out


def _units(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> dict:
    """Active units (Burda et al.: Cov_x E_q[z_u] > 0.01), over every stochastic layer of a hierarchy."""

    if hasattr(model, "forward_levels"):
        layers = layer_statistics(model, x)
        return {"active_units": sum(layers["layer_active"]), "latent_units": sum(layers["layer_units"])}
    if y is not None:
        mu = torch.cat([model.encode(b, yb).mean for b, yb in zip(x.split(500), y.split(500))])
        return {"active_units": int((mu.var(0) > 0.01).sum()), "latent_units": mu.shape[1]}
    count, variance = active_units(model, x)
    return {"active_units": count, "latent_units": len(variance)}


def store(name: str, result: dict, directory: str | None = None) -> None:
    """Write ``result`` under ``"benchmark"`` into model ``name``'s record, re-saving the same weights.

    Introduced in: Benchmark. Refuses numbers measured on other weights (the checksums differ);
    `save_checkpoint` recomputes the checksum, so a record only ever describes the weights beside it.
    """
    directory = Path(directory) if directory is not None else runs.checkpoint_dir()
    record = read_record(directory / name)
    if record["tensors_sha256"] != result["tensors_sha256"]:
        raise RuntimeError(f"{name} changed while it was benchmarked (checksum {record['tensors_sha256'][:12]}, "
                           f"measured {result['tensors_sha256'][:12]}); run the benchmark again")
    rewrite_record(runs.get(name), directory / name, {**record, "benchmark": result})


def main(argv: list[str] | None = None) -> dict:
    """The command line (introduced in: Benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"models to benchmark (default: all {len(BENCHMARKED)})")
    parser.add_argument("--k", type=int, default=Protocol.k, help="importance samples per image")
    parser.add_argument("--n", type=int, default=Protocol.n, help="test images (10000: all of MNIST's)")
    parser.add_argument("--samples", type=int, default=Protocol.samples, help="prior samples for the FLD")
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--no-ratio", action="store_true", help="skip the Trainer-versus-DataLoader timing")
    parser.add_argument("--speed-only", action="store_true",
                        help="re-time the training steps (and the loop ratio) only, keeping the other numbers")
    parser.add_argument("--dry-run", action="store_true", help="print the numbers, write nothing")
    parser.add_argument("--list", action="store_true", help="list the benchmarked models and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, entry in BENCHMARKED.items():
            print(f"{name:22s} {entry.kind:12s} {entry.family}")
        return {}
    unknown = [n for n in args.names if n not in BENCHMARKED]
    if unknown:
        parser.error(f"not benchmarked: {unknown}; choose from {', '.join(BENCHMARKED)} (see --list)")
    if min(args.k, args.n, args.samples) < 2:
        parser.error(f"--k, --n and --samples must each be at least 2 (got {args.k}, {args.n}, {args.samples})")
    if env.smoke() and not args.dry_run:
        parser.error(f"{env.SMOKE_VAR} is set: unset it to benchmark the shipped models, or pass --dry-run")
    device = env.pick_device(args.device)
    protocol = Protocol(k=args.k, n=args.n, samples=args.samples)
    results = {}
    for name in args.names or list(BENCHMARKED):
        env.seed_everything(protocol.seed)
        if args.speed_only:

            result = read_record(runs.checkpoint_dir() / name).get("benchmark")
            if result is None:
                parser.error(f"{name} has no benchmark yet: run `python -m course_lib.benchmark {name}` first")
            result = {**result, "train_images_per_s": round(train_speed(name, device, protocol.speed_steps), 1),
                      "speed_device_name": env.device_name(device)}
        else:
            result = evaluate(name, protocol, device)
        if name == "vae_mlp32" and not args.no_ratio:
            result["loop_ratio"] = loop_ratio(device)
        if not args.dry_run:
            store(name, result)                                            # one model at a time: a kill loses one
        results[name] = result
        shown = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()
                 if k not in ("protocol", "tensors_sha256", "prior_sha256")}
        print(json.dumps({name: shown}), flush=True)
    return results


