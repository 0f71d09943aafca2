"""The checkpoint format: round trips, records inside the weights, damage, names, schema, locks."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import torch

import course_lib._files

from course_lib import checkpoint as ckpt
from course_lib.checkpoint import CheckpointError, config_hash, load_checkpoint, read_record, save_checkpoint
from course_lib.resume import training_lock
from helpers import Tiny, TinyConfig, finished_record


def test_round_trip_restores_weights_and_the_record(tmp_path: Path) -> None:
    model = Tiny()
    written = save_checkpoint(tmp_path / "m", model, finished_record(metrics={"loss": 0.5}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    other = Tiny()
    record = load_checkpoint(tmp_path / "m", other, expect_hash=config_hash(TinyConfig()))
    assert record == written == json.loads((tmp_path / "m.json").read_text())
    for key in ("config", "device", "wall_time_s", "metrics", "versions", "tensors_sha256", "format"):
        assert key in record
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)


def test_the_embedded_record_is_authoritative(tmp_path: Path) -> None:
    """Item 3: a crash between the two writes (or a hand edit of the JSON) cannot mislead."""
    save_checkpoint(tmp_path / "m", Tiny(), finished_record(metrics={"nll": 90.0}))
    edited = json.loads((tmp_path / "m.json").read_text())
    edited["metrics"]["nll"] = 80.0                       # a stale or hand-edited copy
    (tmp_path / "m.json").write_text(json.dumps(edited))
    assert read_record(tmp_path / "m")["metrics"]["nll"] == 90.0
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["nll"] == 90.0, "the copy is repaired"


def test_unfinished_or_nonfinite_runs_are_never_written_as_finished(tmp_path: Path) -> None:
    """Items 1 and 5: only a finished run with finite weights becomes NAME.safetensors."""
    with pytest.raises(CheckpointError, match="not finished"):
        save_checkpoint(tmp_path / "m", Tiny(), finished_record(finished=False))
    broken = Tiny()
    with torch.no_grad():
        broken.net[0].weight[0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="non-finite weights"):
        save_checkpoint(tmp_path / "m", broken, finished_record())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", ".hidden", "x.partial", "name with space", "x" * 200])
def test_names_that_would_leave_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    """Item 7: a name is a plain file stem."""
    with pytest.raises(CheckpointError, match="invalid checkpoint name"):
        ckpt.check_name(name)
    with pytest.raises(CheckpointError, match="invalid checkpoint name|climbs out"):
        save_checkpoint(tmp_path / "sub" / ".." / ".." / "escape", Tiny(), finished_record())
    assert not (tmp_path.parent / "escape.safetensors").exists()


@pytest.mark.parametrize("edit,pattern", [
    (lambda r: r.pop("finished"), "finished missing"),
    (lambda r: r.update(epochs="3"), "epochs is str"),
    (lambda r: r.update(config={"width": 99, "lr": 0.05}), "config_hash does not match"),
    (lambda r: r.update(metrics=[1, 2]), "metrics is list"),
])
def test_hand_edited_records_are_rejected(tmp_path: Path, edit, pattern) -> None:
    """Item 7: the schema and the config hash are checked on load (a record-only checkpoint here)."""
    save_checkpoint(tmp_path / "m", None, finished_record())
    record = json.loads((tmp_path / "m.json").read_text())
    edit(record)
    (tmp_path / "m.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match=pattern):
        read_record(tmp_path / "m")


@pytest.mark.parametrize("damage,pattern", [
    (lambda d: (d / "m.safetensors").write_bytes(b"\x00" * 50), "not a readable safetensors file"),
    (lambda d: (d / "m.safetensors").write_bytes((d / "m.safetensors").read_bytes()[:-7]), "not a readable"),
    (lambda d: (d / "m.safetensors").unlink() or (d / "m.json").unlink(), "no checkpoint m.safetensors"),
    (lambda d: (d / "m.safetensors").unlink(), "record without weights"),
])
def test_damaged_checkpoints_give_clear_errors(tmp_path: Path, damage, pattern) -> None:
    save_checkpoint(tmp_path / "m", Tiny(), finished_record())
    damage(tmp_path)
    with pytest.raises(CheckpointError, match=pattern):
        load_checkpoint(tmp_path / "m", Tiny())


def test_flipped_weight_bytes_fail_the_checksum(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", Tiny(), finished_record())
    raw = bytearray((tmp_path / "m.safetensors").read_bytes())
    raw[-3] ^= 0xFF                                        # one weight byte, header intact
    (tmp_path / "m.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="do not match the checksum"):
        load_checkpoint(tmp_path / "m", Tiny())


def test_checkpoint_of_another_model_or_config_is_rejected(tmp_path: Path) -> None:
    save_checkpoint(tmp_path / "m", Tiny(TinyConfig(width=4)), finished_record(TinyConfig(width=4)))
    with pytest.raises(CheckpointError, match=r"shape mismatch .*net.0.weight: file \(4, 3\) vs model \(8, 3\)"):
        load_checkpoint(tmp_path / "m", Tiny())
    with pytest.raises(CheckpointError, match="another config"):
        load_checkpoint(tmp_path / "m", Tiny(TinyConfig(width=4)), expect_hash="other")


def test_a_crash_while_writing_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    save_checkpoint(tmp_path / "c", Tiny(), finished_record())
    before = (tmp_path / "c.safetensors").read_bytes()

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(course_lib._files, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "c", Tiny(), finished_record())
    assert (tmp_path / "c.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json", "c.safetensors"]
    load_checkpoint(tmp_path / "c", Tiny())


def _hold(path: str, ready, release) -> None:
    with training_lock(Path(path)):
        ready.set()
        release.wait(20)


def test_a_second_process_cannot_train_the_same_name(tmp_path: Path) -> None:
    """Item 9: the lock file, held by another process, gives a clear error; released after it exits."""
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(tmp_path / "m"), ready, release))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(CheckpointError, match=r"another process \(pid \d+\) is training m"):
            with training_lock(tmp_path / "m"):
                pass
    finally:
        release.set()
        holder.join(30)
    with training_lock(tmp_path / "m"):
        pass
