"""The Trainer and checkpoints: learning, NaN handling, resume, round trips, corrupt files, train_or_load."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from course_lib import checkpoint as ckpt
from course_lib.checkpoint import CheckpointError, config_hash, load_checkpoint, save_checkpoint, train_or_load
from course_lib.trainer import NonFiniteLossError, Trainer


@dataclass
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


def test_a_few_steps_lower_the_loss_and_every_term_is_logged() -> None:
    torch.manual_seed(0)
    trainer = Trainer(Tiny(), mse, lr=0.05, progress=False, verbose=False)
    history = trainer.fit(batches(), epochs=3, valid=batches(5, seed=1))
    assert trainer.step == 60 and trainer.epoch == 3
    assert len(history["step_loss"]) == 60
    assert set(history["train"]) == {"loss", "rmse"} == set(history["valid"])
    assert history["train"]["loss"][-1] < 0.2 * history["train"]["loss"][0]
    assert history["valid"]["loss"][-1] < history["valid"]["loss"][0]


def test_one_step_changes_the_parameters() -> None:
    model = Tiny()
    before = [p.detach().clone() for p in model.parameters()]
    Trainer(model, mse, progress=False, verbose=False).train_epoch(batches(1))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_evaluate_weights_batches_by_size() -> None:
    model = Tiny()
    data = batches(2)
    small = (data[1][0][:4], data[1][1][:4])
    trainer = Trainer(model, mse, progress=False, verbose=False)
    got = trainer.evaluate([data[0], small])
    with torch.no_grad():
        x = torch.cat([data[0][0], small[0]])
        y = torch.cat([data[0][1], small[1]])
        want = float((model(x) - y).pow(2).mean())
    assert got["loss"] == pytest.approx(want, rel=1e-5)


def test_nan_stops_with_an_error_naming_the_step() -> None:
    data = batches(10)
    x, y = data[6]
    data[6] = (x, torch.full_like(y, float("nan")))
    trainer = Trainer(Tiny(), mse, progress=False, verbose=False, check_every=4)
    with pytest.raises(NonFiniteLossError, match=r"NaN/inf at step 6 \(epoch 1\)"):
        trainer.fit(data, epochs=1)


def test_checkpoint_round_trip_restores_weights_and_optimizer(tmp_path: Path) -> None:
    trainer = Trainer(Tiny(), mse, config=TinyConfig(), progress=False, verbose=False)
    trainer.fit(batches(), epochs=1)
    record = trainer.save(tmp_path / "tiny")
    assert record["config_hash"] == config_hash(TinyConfig()) and record["epochs"] == 1
    assert (tmp_path / "tiny.safetensors").is_file() and (tmp_path / "tiny.resume.safetensors").is_file()
    for key in ("config", "device", "device_name", "wall_time_s", "metrics", "versions", "history"):
        assert key in json.loads((tmp_path / "tiny.json").read_text())
    model, opt = Tiny(), None
    opt = torch.optim.Adam(model.parameters())
    loaded = load_checkpoint(tmp_path / "tiny", model, opt, expect_hash=config_hash(TinyConfig()))
    assert loaded["step"] == 20
    for a, b in zip(trainer.model.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    s_old, s_new = trainer.optimizer.state_dict(), opt.state_dict()
    for pid in s_old["state"]:
        for k in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(torch.as_tensor(s_old["state"][pid][k]), torch.as_tensor(s_new["state"][pid][k]))


class CrashesInEpoch:
    """A loader that works for ``epoch - 1`` epochs, then fails after 7 batches (a crash, Ctrl-C)."""

    def __init__(self, data: list, epoch: int) -> None:
        self.data, self.epoch, self.started = data, epoch, 0

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        self.started += 1
        for i, batch in enumerate(self.data):
            if self.started == self.epoch and i == 7:
                raise KeyboardInterrupt
            yield batch


def test_resume_continues_the_step_count(tmp_path: Path) -> None:
    path = tmp_path / "run"
    first = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=path, progress=False, verbose=False)
    with pytest.raises(KeyboardInterrupt):
        first.fit(CrashesInEpoch(batches(), epoch=3), epochs=3)
    assert first.step == 47
    again = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=path, progress=False, verbose=False)
    assert (again.epoch, again.step) == (2, 40), "must resume from the last completed epoch"
    assert len(again.history["step_loss"]) == 40
    again.fit(batches(), epochs=3)
    assert (again.epoch, again.step) == (3, 60) and again.finished
    assert len(again.history["step_loss"]) == 60 and len(again.history["train"]["loss"]) == 3
    fresh = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=path, progress=False, verbose=False)
    assert fresh.step == 0, "a finished run is retrained from scratch, not extended"
    other_path = tmp_path / "other"
    with pytest.raises(KeyboardInterrupt):
        Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=other_path, progress=False,
                verbose=False).fit(CrashesInEpoch(batches(), epoch=2), epochs=3)
    other = Trainer(Tiny(), mse, config=TinyConfig(width=9), checkpoint=other_path, progress=False, verbose=False)
    assert other.step == 0, "a different config must not resume"


def test_crash_while_saving_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    trainer = Trainer(Tiny(), mse, config=TinyConfig(), progress=False, verbose=False)
    trainer.save(tmp_path / "c")
    before = (tmp_path / "c.safetensors").read_bytes()
    trainer.fit(batches(), epochs=1)

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        trainer.save(tmp_path / "c")
    assert (tmp_path / "c.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.resume.safetensors", "c.safetensors"]
    load_checkpoint(tmp_path / "c", Tiny())  # still consistent


def test_gradient_clipping_bounds_the_gradient_norm() -> None:
    def last_grad_norm(clip: float | None) -> float:
        torch.manual_seed(0)
        trainer = Trainer(Tiny(), mse, lr=0.05, clip_grad=clip, progress=False, verbose=False)
        trainer.fit(batches(1), epochs=1)   # one step; its (clipped) gradients stay on the parameters
        return float(torch.cat([p.grad.flatten() for p in trainer.model.parameters()]).norm())

    assert last_grad_norm(None) > 0.5
    assert last_grad_norm(0.1) == pytest.approx(0.1, rel=1e-4)


@pytest.mark.parametrize("damage,pattern", [
    (lambda d: (d / "m.safetensors").write_bytes(b"\x00" * 50), "checksum"),
    (lambda d: (d / "m.json").write_text("{ not json"), "not valid JSON"),
    (lambda d: (d / "m.json").write_text("[1, 2]"), "not a JSON object"),
    (lambda d: (d / "m.safetensors").unlink(), "weights .* are missing"),
])
def test_corrupt_checkpoints_give_clear_errors(tmp_path: Path, damage, pattern) -> None:
    save_checkpoint(tmp_path / "m", Tiny(), {"config_hash": "x"})
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(tmp_path / "m", Tiny())


def test_unreadable_weights_without_checksum(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", Tiny(), {})
    record = json.loads((tmp_path / "m.json").read_text())
    record.pop("weights_sha256")
    (tmp_path / "m.json").write_text(json.dumps(record))
    (tmp_path / "m.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(tmp_path / "m", Tiny())


def test_checkpoint_of_another_model_is_rejected(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", Tiny(TinyConfig(width=4)), {"config_hash": "h"})
    with pytest.raises(CheckpointError, match=r"shape mismatch .*net.0.weight: file \(4, 3\) vs model \(8, 3\)"):
        load_checkpoint(tmp_path / "m", Tiny())
    with pytest.raises(CheckpointError, match="another config"):
        load_checkpoint(tmp_path / "m", Tiny(TinyConfig(width=4)), expect_hash="other")


class Calls:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, model: nn.Module, config: TinyConfig, path: Path) -> None:
        self.n += 1
        Trainer(model, mse, config=config, checkpoint=path, progress=False, verbose=False).fit(batches(5), 1)


def test_train_or_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VAE_COURSE_SMOKE", "0")
    monkeypatch.delenv("VAE_COURSE_RETRAIN", raising=False)
    train = Calls()
    model, record = train_or_load("t", TinyConfig(), Tiny, train, device="cpu", directory=tmp_path)
    assert train.n == 1 and record["epochs"] == 1 and (tmp_path / "t.safetensors").is_file()
    again, _ = train_or_load("t", TinyConfig(), Tiny, train, device="cpu", directory=tmp_path)
    assert train.n == 1, "a matching checkpoint must be loaded, not retrained"
    assert torch.equal(again.net[0].weight, model.net[0].weight)
    with pytest.warns(UserWarning, match="another config"):
        train_or_load("t", TinyConfig(lr=0.01), Tiny, train, device="cpu", directory=tmp_path)
    assert train.n == 2
    monkeypatch.setenv("VAE_COURSE_RETRAIN", "other,t")
    train_or_load("t", TinyConfig(lr=0.01), Tiny, train, device="cpu", directory=tmp_path)
    assert train.n == 3


def test_train_or_load_falls_back_on_a_corrupt_checkpoint(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VAE_COURSE_SMOKE", "0")
    train = Calls()
    train_or_load("t", TinyConfig(), Tiny, train, device="cpu", directory=tmp_path)
    (tmp_path / "t.safetensors").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="checksum"):
        train_or_load("t", TinyConfig(), Tiny, train, device="cpu", directory=tmp_path)
    assert train.n == 2


def test_smoke_training_never_overwrites_shipped_checkpoints(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VAE_COURSE_SMOKE", "1")
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    train_or_load("t", TinyConfig(), Tiny, Calls(), device="cpu", directory=shipped)
    assert list(shipped.iterdir()) == []
    assert (tmp_path / "cache" / "smoke-checkpoints" / "t.safetensors").is_file()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mixed precision and torch.compile are GPU options")
def test_amp_and_compile_train_on_a_gpu() -> None:
    torch.manual_seed(0)
    data = [(x.cuda(), y.cuda()) for x, y in batches()]
    trainer = Trainer(Tiny().cuda(), mse, lr=0.05, amp=True, compile=True, progress=False, verbose=False)
    history = trainer.fit(data, epochs=3)
    assert history["train"]["loss"][-1] < 0.5 * history["train"]["loss"][0]
