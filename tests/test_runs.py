"""Shipped runs: fit_run's order (seed, build, train, evaluate), publishing only finished finite runs,
resuming after a crash or SIGKILL, bit-identical retraining, and `trained` never serving an unfinished run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from course_lib import checkpoint, runs
from course_lib.checkpoint import CheckpointError, load_checkpoint, paths
from course_lib.resume import load_training_state
from course_lib.models.classifier import ClassifierConfig, MLPClassifier
from course_lib.runs.base import TrainConfig, fit_run, trained

ROOT = Path(__file__).resolve().parent.parent
TINY = replace(runs.get("tour_classifier"), model=ClassifierConfig(hidden=16),
               train=TrainConfig(dataset="mnist", epochs=3, batch_size=500, labels=True, valid_n=1000))


@pytest.fixture(autouse=True)
def _full_setting(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VAE_COURSE_SMOKE", "0")
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VAE_COURSE_RETRAIN", raising=False)


def test_fit_run_publishes_a_finished_checkpoint_and_removes_the_partial(tmp_path: Path) -> None:
    model, record = fit_run("tiny", TINY, "cpu", tmp_path, verbose=False)
    assert record["finished"] and record["epochs"] == 3 and record["images_seen"] == 3 * 100 * 500
    assert record["config"] == TINY.config() and record["family"] == "classifier"
    assert len(record["history"]["step_loss"]) <= 500
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tiny.lock", "tiny.safetensors"]
    again, loaded = trained("tiny", TINY, "cpu", tmp_path, allow_training=False)
    assert loaded == record
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_evaluation_settings_are_not_part_of_the_hash() -> None:
    vae = runs.get("vae_conv")
    assert replace(vae, eval=replace(vae.eval, k=5000, n=10_000)).hash() == vae.hash()
    assert replace(vae, train=replace(vae.train, epochs=51)).hash() != vae.hash()


def test_the_seed_alone_fixes_the_weights(tmp_path: Path) -> None:
    """The old bug: the model was built before seeding, so other code run first changed the weights."""
    a, _ = fit_run("a", replace(TINY, train=replace(TINY.train, epochs=1)), "cpu", tmp_path, verbose=False)
    torch.rand(1000)  # anything that draws from the global RNG in between
    b, _ = fit_run("b", replace(TINY, train=replace(TINY.train, epochs=1)), "cpu", tmp_path, verbose=False)
    for x, y in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(x, y)


class Crash(Exception):
    pass


def test_an_interrupted_retrain_never_touches_the_shipped_files(tmp_path: Path, monkeypatch) -> None:
    """Items 1-2: retraining writes NAME.partial; an unfinished run is never loaded as if it were done."""
    fit_run("m", TINY, "cpu", tmp_path, verbose=False)
    shipped = {p.name: p.read_bytes() for p in tmp_path.glob("m.*") if p.suffix != ".lock"}
    real_fit = runs.base.Trainer.fit

    def crash_after_one_epoch(self, train, epochs, valid=None):
        real_fit(self, train, 1, valid)
        raise Crash

    monkeypatch.setattr(runs.base.Trainer, "fit", crash_after_one_epoch)
    with pytest.raises(Crash):
        fit_run("m", replace(TINY, train=replace(TINY.train, lr=2e-3)), "cpu", tmp_path, verbose=False)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("m.*") if p.name in shipped} == shipped
    assert paths(tmp_path / "m")["partial"].is_file()
    with pytest.raises(CheckpointError, match=r"no finished checkpoint .*m.partial.safetensors holds an unfinished "
                                              r"run.*python -m course_lib.retrain m"):
        trained("m", replace(TINY, train=replace(TINY.train, lr=2e-3)), "cpu", tmp_path, allow_training=False)
    monkeypatch.setattr(runs.base.Trainer, "fit", real_fit)
    _, record = fit_run("m", replace(TINY, train=replace(TINY.train, lr=2e-3)), "cpu", tmp_path, verbose=False)
    assert record["epochs"] == 3 and not paths(tmp_path / "m")["partial"].exists()


def test_a_run_killed_after_its_last_epoch_but_before_publishing_resumes_to_a_finished_checkpoint(
        tmp_path: Path, monkeypatch) -> None:
    """The partial file already holds every epoch; resuming must publish it, not refuse it as unfinished."""
    monkeypatch.setattr(runs.base, "save_checkpoint", lambda *a, **k: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):                        # dies between the last partial save and publishing
        fit_run("late", TINY, "cpu", tmp_path, verbose=False)
    assert paths(tmp_path / "late")["partial"].is_file()
    monkeypatch.undo()
    monkeypatch.setenv("VAE_COURSE_SMOKE", "0")
    monkeypatch.setenv("VAE_COURSE_CACHE", str(tmp_path / "cache"))
    _, record = fit_run("late", TINY, "cpu", tmp_path, verbose=False)
    assert record["finished"] and record["epochs"] == 3 and not paths(tmp_path / "late")["partial"].exists()


def test_nonfinite_metrics_never_replace_the_shipped_checkpoint(tmp_path: Path) -> None:
    fit_run("m", TINY, "cpu", tmp_path, verbose=False)
    before = (tmp_path / "m.safetensors").read_bytes()
    bad = replace(TINY, evaluate=lambda model, run, device: {"test_nll": float("nan")})
    with pytest.raises(CheckpointError, match="non-finite metrics"):
        fit_run("m", bad, "cpu", tmp_path, verbose=False)
    assert (tmp_path / "m.safetensors").read_bytes() == before
    assert paths(tmp_path / "m")["partial"].is_file()


def test_smoke_runs_go_to_the_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VAE_COURSE_SMOKE", "1")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    _, record = trained("t", TINY, "cpu", shipped)
    assert record["smoke"] and list(shipped.iterdir()) == []
    assert (tmp_path / "cache" / "smoke-checkpoints" / "t.safetensors").is_file()


def test_retrain_env_var_forces_training(tmp_path: Path, monkeypatch, capsys) -> None:
    fit_run("t", TINY, "cpu", tmp_path, verbose=False)
    monkeypatch.setenv("VAE_COURSE_RETRAIN", "other,t")
    trained("t", TINY, "cpu", tmp_path)
    assert "VAE_COURSE_RETRAIN asks for retraining" in capsys.readouterr().out


RETRAIN = """
import sys
from course_lib import runs
for name in sys.argv[2:]:
    runs.fit(name, device="cpu", directory=sys.argv[1], smoke=True)
"""


def test_retraining_is_bit_identical_across_processes_and_orders(tmp_path: Path) -> None:
    """The smallest shipped model, retrained in two processes, after and before another model."""
    env = {**os.environ, "VAE_COURSE_SMOKE": "1", "PYTHONPATH": str(ROOT)}
    for folder, order in (("one", ["tour_classifier", "ae_mnist_z2"]), ("two", ["ae_mnist_z2", "tour_classifier"])):
        subprocess.run([sys.executable, "-c", RETRAIN, str(tmp_path / folder), *order], env=env, check=True,
                       capture_output=True, timeout=300)
    for name in ("tour_classifier", "ae_mnist_z2"):
        one = load_file(tmp_path / "one" / f"{name}.safetensors")
        two = load_file(tmp_path / "two" / f"{name}.safetensors")
        assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one), name


KILLABLE = """
import sys
from dataclasses import replace
from course_lib import runs
from course_lib.models.classifier import ClassifierConfig
from course_lib.runs.base import TrainConfig, fit_run
run = replace(runs.get("tour_classifier"), model=ClassifierConfig(hidden=16),
              train=TrainConfig(dataset="mnist", epochs=4, batch_size=1000, labels=True, valid_n=1000))
from course_lib.data import load
load("mnist", "train"), load("mnist", "valid")        # read the files now (cached): the kill window is training
open(sys.argv[2], "w").close()                      # imports and data done: training starts now
fit_run("k", run, "cpu", sys.argv[1], smoke=False, verbose=False)
"""


def test_sigkill_at_random_moments_never_breaks_the_checkpoint(tmp_path: Path) -> None:
    """Kill a retraining process 20 times: the shipped checkpoint still loads and verifies every
    time, and the partial one (when there is one) resumes."""
    run = replace(TINY, train=replace(TINY.train, epochs=4, batch_size=1000))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def child(i: int) -> tuple[subprocess.Popen, float]:
        """Start a retraining process; return it once it has imported and read its data."""
        started = tmp_path / f"started{i}"
        proc = subprocess.Popen([sys.executable, "-c", KILLABLE, str(tmp_path), str(started)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not started.exists() and proc.poll() is None:   # wait out the imports, however slow
            time.sleep(0.02)
        return proc, time.perf_counter()

    proc, start = child(-1)                                   # one whole retrain, timed from the same point
    assert proc.wait() == 0
    duration = time.perf_counter() - start
    rng = random.Random(0)
    kills = resumed = attempts = 0
    while (kills < 20 or resumed < 3) and attempts < 80:      # 20 real kills, at least 3 mid-run
        attempts += 1
        proc, _ = child(attempts)
        time.sleep(rng.uniform(0.0, 1.2 * duration))          # a random moment of training or publishing
        if proc.poll() is not None:                           # it finished first: not a kill
            continue
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        load_checkpoint(tmp_path / "k", MLPClassifier(run.model), expect_hash=run.hash())
        if paths(tmp_path / "k")["partial"].is_file():
            model = MLPClassifier(run.model)
            load_training_state(tmp_path / "k", model, torch.optim.Adam(model.parameters(), lr=run.train.lr),
                                run.hash())
            resumed += 1
    _, record = fit_run("k", run, "cpu", tmp_path, verbose=False)
    assert record["finished"] and not paths(tmp_path / "k")["partial"].exists()
    assert kills >= 20 and resumed >= 3, f"{kills} kills, {resumed} left a partial run, in {attempts} tries"


def test_a_sweep_trains_only_what_is_missing_and_stores_targets_without_touching_weights(tmp_path: Path) -> None:
    from course_lib.runs.sweep import compact_history, read_records, store_targets, train_missing

    one = replace(TINY, train=replace(TINY.train, epochs=1))
    table = {"kept": one, "record_only": replace(one, ship_weights=False, train=replace(one.train, seed=1))}
    first = train_missing(table, directory=tmp_path, local=tmp_path / "local", smoke=True)
    assert sorted(first) == ["kept", "record_only"]
    assert (tmp_path / "local" / "record_only.safetensors").is_file() and not (tmp_path / "record_only.safetensors").exists()
    assert train_missing(table, directory=tmp_path, smoke=True) == {}              # nothing left to train
    table["kept"] = replace(one, train=replace(one.train, lr=2e-3))                # a changed config is retrained
    assert list(train_missing(table, ["kept"], directory=tmp_path, smoke=True)) == ["kept"]
    weights = load_file(tmp_path / "kept.safetensors")
    assert store_targets(table, {"checks": {"x": [1.0, True]}}, directory=tmp_path) == ["kept", "record_only"]
    assert list(read_records(["kept", "missing", "record_only"], tmp_path)) == ["kept", "record_only"]
    for name in table:
        assert checkpoint.read_record(tmp_path / name)["targets"] == {"checks": {"x": [1.0, True]}}
    for key, value in load_file(tmp_path / "kept.safetensors").items():
        assert torch.equal(value, weights[key])
    trained("kept", table["kept"], "cpu", tmp_path, allow_training=False)          # still loads and verifies
    untouched = (tmp_path / "record_only.json").read_bytes()
    assert store_targets(table, {"other": 1}, directory=tmp_path, edit=lambda n, r: r if n == "kept" else None) == ["kept"]
    assert (tmp_path / "record_only.json").read_bytes() == untouched               # edit -> None: left as it is
    history = {"step_loss": [float(i) for i in range(10)], "step_loss_stride": 2, "train": {"loss": [1.234567]},
               "epoch_time": [0.123456]}
    short = compact_history(history, 5, digits=3, parts=("train",))
    assert short["step_loss"] == [0.5, 2.5, 4.5, 6.5, 8.5] and short["step_loss_stride"] == 4
    assert short["train"] == {"loss": [1.23]} and short["epoch_time"] == [0.123456]
    assert compact_history(history, 20, digits=3)["epoch_time"] == [0.123] and history["step_loss_stride"] == 2
