"""The Trainer under DistributedDataParallel: two CPU processes (gloo) train exactly what one
process trains on the same global batch, metrics are reduced across ranks, one rank writes."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from course_lib import distributed
from course_lib.batches import DeviceLoader, Split
from course_lib.trainer import Trainer
from helpers import Tiny, TinyConfig, mse

N, LOCAL_BATCH, RANKS, EPOCHS = 200, 16, 2, 3


def data() -> Split:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(N, 1, generator=g)
    return Split("toy", "train", x, y)


def _rank(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=RANKS)
    try:
        torch.manual_seed(0)
        trainer = Trainer(Tiny(), mse, config=TinyConfig(), lr=0.05, checkpoint=Path(out) / "ddp",
                          progress=False, verbose=False)
        history = trainer.fit(DeviceLoader(data(), LOCAL_BATCH, labels=True), EPOCHS,
                              valid=DeviceLoader(data(), 50, shuffle=False, labels=True))
        if rank == 0:
            torch.save({"state": trainer.model.state_dict(), "history": history, "steps": trainer.step},
                       Path(out) / "rank0.pt")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_what_one_process_trains_on_the_global_batch(tmp_path: Path) -> None:
    mp.start_processes(_rank, args=(_free_port(), str(tmp_path)), nprocs=RANKS, start_method="spawn", join=True)
    ddp = torch.load(tmp_path / "rank0.pt")
    torch.manual_seed(0)
    single = Trainer(Tiny(), mse, config=TinyConfig(), lr=0.05, progress=False, verbose=False)
    history = single.fit(DeviceLoader(data(), LOCAL_BATCH * RANKS, labels=True, drop_last=True), EPOCHS,
                         valid=DeviceLoader(data(), 50, shuffle=False, labels=True))
    assert ddp["steps"] == single.step == EPOCHS * (N // (LOCAL_BATCH * RANKS))
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp["state"][name], value, rtol=1e-5, atol=1e-6)
    # metrics reduced over both ranks; batch means such as the loss agree (a nonlinear term of a
    # batch, like the rmse, is averaged over each rank's half-batches instead)
    for part in ("train", "valid"):
        for term in ("loss",):
            torch.testing.assert_close(torch.tensor(ddp["history"][part][term]), torch.tensor(history[part][term]),
                                       rtol=1e-5, atol=1e-6)
    # only rank 0 wrote the training state
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp.partial.safetensors", "rank0.pt"]


def test_without_torchrun_nothing_is_distributed(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env() is None and distributed.world() == (0, 1) and distributed.is_main()
    t = torch.ones(3)
    assert distributed.all_reduce_sum(t) is t and torch.equal(t, torch.ones(3))


def test_torchrun_retrains_a_shipped_model_and_one_rank_publishes(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node=2 -m course_lib.retrain NAME`: two CPU processes (gloo), one checkpoint."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "course_lib.retrain", "tour_classifier", "--directory", str(tmp_path), "--smoke",
                           "--device", "cpu"], capture_output=True, text=True, timeout=600, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tour_classifier.json", "tour_classifier.lock",
                                                          "tour_classifier.safetensors"]
    record = json.loads((tmp_path / "tour_classifier.json").read_text())
    assert record["processes"] == 2 and record["finished"] and record["smoke"]
    assert record["images_seen"] == record["step"] * 128 * 2     # each step: one global batch of 2 x 128
