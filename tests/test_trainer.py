"""The Trainer: learning, NaN handling, resuming an interrupted run exactly, clipping, GPU options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from course_lib.checkpoint import paths
from course_lib.trainer import NonFiniteLossError, Trainer, thin_curve
from helpers import Tiny, TinyConfig, batches, mse


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


def test_resume_continues_exactly_as_if_never_interrupted(tmp_path: Path) -> None:
    """Item 6: weights, optimizer and RNG state are saved, so the resumed run is bit-identical."""
    class Shuffled(CrashesInEpoch):  # draws its order from the global RNG, like DeviceLoader
        def __iter__(self):
            self.started += 1
            for i, k in enumerate(torch.randperm(len(self.data)).tolist()):
                if self.started == self.epoch and i == 7:
                    raise KeyboardInterrupt
                yield self.data[k]

    data = batches()
    torch.manual_seed(0)
    straight = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=tmp_path / "a", progress=False, verbose=False)
    straight.fit(Shuffled(data, epoch=0), epochs=3)

    torch.manual_seed(0)
    first = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=tmp_path / "b", progress=False, verbose=False)
    with pytest.raises(KeyboardInterrupt):
        first.fit(Shuffled(data, epoch=3), epochs=3)
    assert first.step == 47
    torch.manual_seed(123)  # a new process: another global RNG state, restored from the file
    again = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=tmp_path / "b", progress=False, verbose=False)
    assert (again.epoch, again.step) == (2, 40), "must resume from the last completed epoch"
    assert len(again.history["step_loss"]) == 40
    again.fit(Shuffled(data, epoch=0), epochs=3)
    assert (again.epoch, again.step) == (3, 60) and again.finished
    assert again.history["step_loss"] == straight.history["step_loss"]
    for a, b in zip(straight.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b), "the resumed run must equal the uninterrupted one bit for bit"


def test_resume_refuses_another_config_or_learning_rate(tmp_path: Path, capsys) -> None:
    """Item 6: the saved learning rate never silently overrides the configured one."""
    with pytest.raises(KeyboardInterrupt):
        Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=tmp_path / "r", lr=0.05, progress=False,
                verbose=False).fit(CrashesInEpoch(batches(), epoch=2), epochs=3)
    other = Trainer(Tiny(), mse, config=TinyConfig(width=9), checkpoint=tmp_path / "r", progress=False, verbose=False)
    assert other.step == 0 and "another config" in capsys.readouterr().out
    faster = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=tmp_path / "r", lr=0.5, progress=False,
                     verbose=False)
    assert faster.step == 0 and "other optimizer settings" in capsys.readouterr().out
    same = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=tmp_path / "r", lr=0.05, progress=False,
                   verbose=False)
    assert same.step == 20 and same.optimizer.param_groups[0]["lr"] == 0.05


def test_nan_leaves_the_model_and_the_saved_state_finite(tmp_path: Path) -> None:
    """Item 5: after a NaN the in-memory weights are the last finite ones and nothing NaN is written."""
    data = batches(10)
    trainer = Trainer(Tiny(), mse, config=TinyConfig(), checkpoint=tmp_path / "n", progress=False,
                      verbose=False, check_every=100)
    trainer.fit(data, epochs=1)
    saved = paths(tmp_path / "n")["partial"].read_bytes()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    x, y = data[3]
    poisoned = data[:3] + [(x, torch.full_like(y, float("nan")))] + data[4:]
    with pytest.raises(NonFiniteLossError):
        trainer.fit(poisoned, epochs=2)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} was not restored to its last finite value"
    assert trainer.step == 10
    assert paths(tmp_path / "n")["partial"].read_bytes() == saved
    trainer.save()  # finite again, so saving is allowed
    trainer.fit(data, epochs=2)
    assert trainer.epoch == 2 and all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


def test_thin_curve_keeps_block_means() -> None:
    values = [float(i) for i in range(1001)]
    means, stride = thin_curve(values, 500)
    assert stride == 3 and len(means) == 334 and means[0] == 1.0 and means[-1] == 999.5
    assert thin_curve(values[:10], 500) == (values[:10], 1)


def test_gradient_clipping_bounds_the_gradient_norm() -> None:
    def last_grad_norm(clip: float | None) -> float:
        torch.manual_seed(0)
        trainer = Trainer(Tiny(), mse, lr=0.05, clip_grad=clip, progress=False, verbose=False)
        trainer.fit(batches(1), epochs=1)   # one step; its (clipped) gradients stay on the parameters
        return float(torch.cat([p.grad.flatten() for p in trainer.model.parameters()]).norm())

    assert last_grad_norm(None) > 0.5
    assert last_grad_norm(0.1) == pytest.approx(0.1, rel=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mixed precision and torch.compile are GPU options")
def test_amp_and_compile_train_on_a_gpu() -> None:
    torch.manual_seed(0)
    data = [(x.cuda(), y.cuda()) for x, y in batches()]
    trainer = Trainer(Tiny().cuda(), mse, lr=0.05, amp=True, compile=True, progress=False, verbose=False)
    history = trainer.fit(data, epochs=3)
    assert history["train"]["loss"][-1] < 0.5 * history["train"]["loss"][0]


def test_the_hot_loop_does_not_sync_with_the_host_per_step(monkeypatch) -> None:
    """No .item(), float(), bool() or .cpu() per step: the number of host reads in an epoch does not
    grow with its number of steps (one NaN check every `check_every` steps, and the epoch summary)."""
    calls = {"n": 0}
    for name in ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            calls["n"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def reads(steps: int) -> int:
        # SGD: Adam reads its step counters with .item(), but they are CPU scalars, never a GPU sync
        model = Tiny()
        trainer = Trainer(model, mse, optimizer=torch.optim.SGD(model.parameters(), lr=0.01), progress=False,
                          verbose=False, check_every=10_000)
        calls["n"] = 0
        trainer.train_epoch(batches(steps))
        return calls["n"]

    assert reads(40) == reads(10), "host reads grew with the number of steps"
