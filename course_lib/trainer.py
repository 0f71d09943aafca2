"""One small, model-agnostic training loop (introduced in: How to use this book).

The Trainer knows nothing about VAEs. It calls ``objective(model, batch)``, which returns a
dict of scalar tensors with at least ``loss`` (for a VAE also ``rate`` and ``distortion``),
and it logs every term. Nothing in the hot loop copies to the host: the terms are summed
on the device and read once per epoch, and a non-finite loss is caught by a device-side
flag that is checked every ``check_every`` steps. When it fires, the model and optimizer
go back to their state at the start of the epoch, so nothing non-finite is ever kept.

With ``checkpoint=`` the Trainer saves its full state (weights, optimizer, RNG, history)
to ``NAME.partial.safetensors`` after every epoch and resumes from it, so an interrupted
run continues exactly as if it had not stopped. It never writes the finished ``NAME``
checkpoint itself: `course_lib.runs.fit_run` publishes that once the run finished.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from . import distributed, env
from .checkpoint import CheckpointError, config_dict, config_hash, paths
from .resume import load_training_state, save_training_state

Objective = Callable[[torch.nn.Module, Any], dict]


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step (introduced in: How to use this book)."""


def _call_model(model: torch.nn.Module, batch: Any) -> dict:
    return model(*batch) if isinstance(batch, (tuple, list)) else model(batch)


def _progress(iterable: Iterable, total: int | None, desc: str, enabled: bool):
    if not enabled:
        return iterable
    if env.interactive():
        from tqdm.auto import tqdm  # notebook widget bar
    else:
        from tqdm import tqdm  # plain text bar on stderr (the book hides stderr)
    return tqdm(iterable, total=total, desc=desc, leave=False, mininterval=2.0)


class Trainer:
    """Fit ``model`` by minimising ``objective(model, batch)["loss"]`` (introduced in: How to use this book).

    Options: ``clip_grad`` (max gradient norm), ``skip_grad`` (no update above it), ``amp`` (bfloat16 autocast, CUDA only),
    ``compile`` (``torch.compile`` the model for the forward pass), ``checkpoint`` (a path
    stem; written atomically after every epoch and resumed from when it exists with the
    same ``config`` and did not finish), ``scheduler`` (stepped once per epoch).
    """

    def __init__(self, model: torch.nn.Module, objective: Objective | None = None, *,
                 config: Any = None, name: str | None = None, lr: float = 1e-3,
                 optimizer: torch.optim.Optimizer | None = None, scheduler: Any = None,
                 clip_grad: float | None = None, skip_grad: float | None = None, amp: bool = False, compile: bool = False,
                 checkpoint: str | Path | None = None, check_every: int = 50,
                 progress: bool = True, verbose: bool = True) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.objective = objective or _call_model
        self.config = config if config is not None else {}
        self.name = name or (Path(checkpoint).name if checkpoint else type(model).__name__)
        self.optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
        self.scheduler, self.clip_grad, self.skip_grad = scheduler, clip_grad, skip_grad
        self.amp = amp and self.device.type == "cuda"
        self.forward_model = torch.compile(model) if compile else model
        self.rank, self.ranks = distributed.world()
        # under torchrun the objective runs inside DistributedDataParallel (gradients averaged)
        self.ddp = distributed.data_parallel(self.forward_model, self.objective) if self.ranks > 1 else None
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.check_every, self.progress, self.verbose = check_every, progress, verbose
        self.step, self.epoch, self.wall_time, self.finished = 0, 0, 0.0, False
        self.history: dict[str, Any] = {"train": {}, "valid": {}, "step_loss": [], "epoch_time": []}
        if self.checkpoint is not None:
            self._maybe_resume()

    # ------------------------------------------------------------------ resume / save
    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"torch_cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            state["torch_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def _maybe_resume(self) -> None:
        """Continue an interrupted run from ``NAME.partial.safetensors`` when it is the same run."""
        if not paths(self.checkpoint)["partial"].is_file():
            return
        try:
            record, rng = load_training_state(self.checkpoint, self.model, self.optimizer, config_hash(self.config))
        except CheckpointError as err:
            print(f"[{self.name}] not resuming {paths(self.checkpoint)['partial'].name} ({err}); starting afresh.")
            return
        self.step, self.epoch = record["step"], record["epochs"]
        self.wall_time, self.history = record.get("wall_time_s", 0.0), record["history"]
        if self.scheduler is not None and record.get("scheduler") is not None:
            self.scheduler.load_state_dict(record["scheduler"])
        if "torch_cpu" in rng:
            torch.set_rng_state(rng["torch_cpu"])
        if self.device.type == "cuda" and "torch_cuda" in rng:
            torch.cuda.set_rng_state(rng["torch_cuda"], self.device)
        elif self.device.type != record.get("device"):
            print(f"[{self.name}] the run was on {record.get('device')}, now on {self.device.type}: "
                  "the resumed run will not be bit-identical to an uninterrupted one.")
        if self.verbose:
            print(f"[{self.name}] resumed from {paths(self.checkpoint)['partial'].name} at epoch "
                  f"{self.epoch}, step {self.step}.")

    def record(self, thin: int | None = None) -> dict:
        """The JSON record of this run; ``thin`` caps the per-step loss at that many points."""
        last = {f"{part}_{k}": v[-1] for part in ("train", "valid") for k, v in self.history[part].items() if v}
        history = self.history
        if thin is not None:
            values, stride = thin_curve(history["step_loss"], thin)
            history = {**history, "step_loss": values, "step_loss_stride": stride}
        return {"name": self.name, "model": type(self.model).__name__, "config": config_dict(self.config),
                "config_hash": config_hash(self.config), "epochs": self.epoch, "step": self.step,
                "device": self.device.type, "device_name": env.device_name(self.device),
                "smoke": env.smoke(), "finished": self.finished,
                "wall_time_s": round(self.wall_time, 3), "metrics": last, "history": history,
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def save(self) -> None:
        """Write the training state to ``NAME.partial.safetensors`` atomically (refuses NaN weights)."""
        if self.checkpoint is None:
            raise ValueError("no checkpoint path: pass checkpoint=... to Trainer")
        if not distributed.is_main():
            return                                          # one writer: rank 0
        save_training_state(self.checkpoint, self.model, self.optimizer, self.record(), self._rng_state())

    # ------------------------------------------------------------------ loops
    def _raise_if_nonfinite(self, first_bad: torch.Tensor, terms: dict) -> None:
        bad = int(first_bad)  # the one host sync, every `check_every` steps
        if bad >= 0:
            self.model.load_state_dict(self._epoch_start[0])      # back to the last finite state
            self.optimizer.load_state_dict(self._epoch_start[1])
            self.step = self._epoch_start[2]
            raise NonFiniteLossError(
                f"[{self.name}] loss became NaN/inf at step {bad} (epoch {self.epoch + 1}). "
                f"Last terms: { {k: float(v) for k, v in terms.items()} }. Try a lower learning rate, "
                f"clip_grad=..., or check the data and the likelihood's scale. The model is back at its "
                f"state before this epoch, and the last saved state ({self.checkpoint or 'none'}) is "
                f"untouched; training resumes from it.")

    def train_epoch(self, loader: Iterable) -> dict[str, float]:
        """One pass over ``loader``; returns the mean of every term."""
        self.model.train()
        self._epoch_start = (copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.optimizer.state_dict()),
                             self.step)
        sums: dict[str, torch.Tensor] = {}
        step_losses: list[torch.Tensor] = []
        first_bad = torch.full((), -1, device=self.device, dtype=torch.long)
        n_batches = 0
        bar = _progress(loader, len(loader) if hasattr(loader, "__len__") else None, f"epoch {self.epoch + 1}", self.progress)
        for batch in bar:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out = self.ddp(batch) if self.ddp is not None else self.objective(self.forward_model, batch)
            loss = out["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.clip_grad is not None or self.skip_grad is not None:   # the norm before clipping
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad or math.inf)
            if self.skip_grad is not None:   # VDVAE: no update when the norm explodes (one host read per step)
                out = {**out, "skipped": (~(norm < self.skip_grad)).float()}      # NaN norms are skipped too
            if self.skip_grad is None or not bool(out["skipped"]):
                self.optimizer.step()
            # device-side book-keeping only: no .item() in the hot loop
            detached = {k: v.detach().float() for k, v in out.items() if torch.is_tensor(v) and v.dim() == 0}
            for k, v in detached.items():
                sums[k] = sums[k] + v if k in sums else v.clone()
            step_losses.append(detached["loss"])
            finite = torch.isfinite(detached["loss"])
            first_bad = torch.where(~finite & (first_bad < 0), torch.full_like(first_bad, self.step), first_bad)
            self.step += 1
            n_batches += 1
            if self.step % self.check_every == 0:
                self._raise_if_nonfinite(first_bad, detached)
        if n_batches == 0:
            raise ValueError(f"[{self.name}] the training loader yielded no batches")
        self._raise_if_nonfinite(first_bad, detached)
        # one exchange per epoch: every rank's sums and per-step losses, averaged over ranks
        keys = sorted(sums)
        packed = distributed.all_reduce_sum(torch.cat([torch.stack([sums[k] for k in keys]),
                                                       torch.stack(step_losses)])) / self.ranks
        self.history["step_loss"].extend(packed[len(keys):].cpu().tolist())
        return {k: float(v) / n_batches for k, v in zip(keys, packed[:len(keys)])}

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> dict[str, float]:
        """Mean of every term over ``loader`` in eval mode, without gradients."""
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for batch in loader:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out = self.objective(self.forward_model, batch)
            size = (batch[0] if isinstance(batch, (tuple, list)) else batch).shape[0]
            for k, v in out.items():
                if torch.is_tensor(v) and v.dim() == 0:
                    sums[k] = sums.get(k, 0) + v.detach().float() * size  # batch means -> sum
            n += size
        keys = sorted(sums)
        packed = distributed.all_reduce_sum(torch.stack([*(sums[k] for k in keys),
                                                         torch.tensor(float(n), device=self.device)]))
        return {k: float(v) / float(packed[-1]) for k, v in zip(keys, packed[:-1])}

    def fit(self, train: Iterable, epochs: int, valid: Iterable | None = None) -> dict[str, Any]:
        """Train until ``epochs`` epochs in total are done (resumed epochs count); returns the history."""
        if epochs < self.epoch and self.verbose:
            print(f"[{self.name}] already trained {self.epoch} epochs (asked for {epochs}).")
        while self.epoch < epochs:
            start = time.perf_counter()
            terms = self.train_epoch(train)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            self.epoch += 1
            self.wall_time += seconds
            self.history["epoch_time"].append(round(seconds, 4))
            for k, v in terms.items():
                self.history["train"].setdefault(k, []).append(v)
            line = " ".join(f"{k}={v:.4g}" for k, v in terms.items())
            if valid is not None:
                vterms = self.evaluate(valid)
                for k, v in vterms.items():
                    self.history["valid"].setdefault(k, []).append(v)
                line += " | valid " + " ".join(f"{k}={v:.4g}" for k, v in vterms.items())
            if self.scheduler is not None:
                self.scheduler.step()
            self.finished = self.epoch >= epochs
            if self.checkpoint is not None:
                self.save()
            if self.verbose and (self.epoch <= 3 or self.epoch == epochs or self.epoch % max(1, epochs // 10) == 0):
                print(f"[{self.name}] epoch {self.epoch}/{epochs} ({seconds:.1f} s) {line}")
        # also true when a resumed run had already done every epoch (killed before it was published)
        self.finished = self.epoch >= epochs
        return self.history


def thin_curve(values: list[float], points: int = 500) -> tuple[list[float], int]:
    """Means of consecutive blocks so that at most ``points`` remain; returns (means, block size).

    Introduced in: How to use this book.
    """
    stride = max(1, math.ceil(len(values) / points))
    means = [sum(values[i:i + stride]) / len(values[i:i + stride]) for i in range(0, len(values), stride)]
    return means, stride


__all__ = ["Trainer", "NonFiniteLossError", "thin_curve"]
