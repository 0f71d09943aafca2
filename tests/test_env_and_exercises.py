"""setup(), the smoke switch, and the exercise check's diagnoses."""

from __future__ import annotations

import pytest
import torch

import course_lib
from course_lib.env import pick_device
from course_lib.exercises import ExerciseError, check_close


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_pick_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda: bool, mps: bool, expected: str) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert pick_device().type == expected
    assert pick_device("cpu").type == "cpu"  # an explicit choice wins


def test_setup_seeds_and_reports(monkeypatch, capsys) -> None:
    monkeypatch.setenv("VAE_COURSE_SMOKE", "1")
    s = course_lib.setup(seed=3)
    a = torch.rand(3)
    course_lib.setup(seed=3, verbose=False)
    assert torch.equal(a, torch.rand(3))
    assert s.smoke and s.device.type in {"cpu", "cuda", "mps"}
    assert "mode=smoke" in capsys.readouterr().out
    monkeypatch.setenv("VAE_COURSE_SMOKE", "0")
    assert not course_lib.setup(verbose=False).smoke


def test_check_close_accepts_the_right_answer(capsys) -> None:
    check_close(torch.tensor([1.0, 2.0]), [1.0, 2.0], "x")
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize("answer,pattern", [
    (None, "forget to `return`"),
    (torch.ones(2, 3), "shape"),
    (torch.tensor([-1.0, -2.0, -3.0]), "wrong sign"),
    (torch.tensor([1.5, 2.5, 3.5]), "off by a constant"),
    (torch.tensor([0.5, 1.0, 1.5]), "factor of 0.5"),
    (torch.tensor([1.0, float("nan"), 3.0]), "NaN"),
    (torch.tensor([1.0, 2.0, 5.0]), "not right yet"),
])
def test_check_close_diagnoses(answer, pattern) -> None:
    with pytest.raises(ExerciseError, match=pattern):
        check_close(answer, torch.tensor([1.0, 2.0, 3.0]), "x")
