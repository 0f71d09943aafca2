"""Run times per chapter: FLOPs counted on the models' own training steps, record sums, the glued sentences."""

from __future__ import annotations

import time

import pytest

from course_lib import read_record, runs
from course_lib.runs import timing


def test_flops_of_the_mlp_classifier_match_the_matrix_sizes() -> None:
    """Forward 2 FLOPs per weight; backward 2 per weight for the weight gradients and 2 per weight
    for the input gradients of every layer but the first (the image needs no gradient)."""
    run = runs.get("tour_classifier")
    h, d, k = run.model.hidden, 784, run.model.classes
    weights = [d * h, h * h, h * k]
    expected = 2 * sum(weights) + 2 * sum(weights) + 2 * sum(weights[1:])
    assert timing.training_flops_per_image(run) == pytest.approx(expected, rel=1e-6)


def test_retraining_sums_the_records_and_estimates_the_t4_from_flops() -> None:
    names = ["tour_classifier", "vae_mlp32"]
    r = timing.retraining(names)
    records = [read_record(runs.checkpoint_dir() / n) for n in names]
    assert r["seconds"] == pytest.approx(sum(x["wall_time_s"] for x in records))
    per_image = {n: timing.training_flops_per_image(runs.get(n)) for n in names}
    assert r["flops"] == pytest.approx(sum(per_image[n] * x["images_seen"] for n, x in zip(names, records)))
    steps = sum(x["images_seen"] / runs.get(n).train.batch_size for n, x in zip(names, records))
    assert r["t4_seconds"] == pytest.approx(r["flops"] / (timing.T4_FP32_PEAK * timing.T4_UTILISATION)
                                            + steps * timing.T4_STEP_OVERHEAD_S)
    assert 0 < r["t4_seconds"] < r["seconds"]


def test_report_glues_what_the_box_shows(monkeypatch) -> None:
    glued = {}
    monkeypatch.setattr(timing, "glue", lambda name, value, display=False: glued.setdefault(name, value))
    timing.report(time.perf_counter() - 75.0, ["tour_classifier", "vae_mlp32"], "cpu")
    assert glued["rt_read"].startswith("75 s on CPU") and glued["rt_models"] == "2 shipped models"
    r = timing.retraining(["tour_classifier", "vae_mlp32"])
    assert glued["rt_train"] == timing._duration(r["seconds"]) and glued["rt_tflop"] == r["flops"] / 1e12
    assert glued["rt_t4_util"] == timing.T4_UTILISATION and glued["rt_step_ms"] == timing.T4_STEP_OVERHEAD_S * 1e3
    glued.clear()
    timing.report(time.perf_counter() - 600.0, [], "cpu")
    assert list(glued) == ["rt_read"] and glued["rt_read"].startswith("10 min")


def test_durations_and_devices_read_well() -> None:
    assert [timing._duration(s) for s in (42, 600, 7200)] == ["42 s", "10 min", "2.0 h"]
    assert timing._devices(["CPU (x86_64, 1 threads)", "CPU (x86_64, 2 threads)"]) == "CPU (x86_64, 1 or 2 threads)"
    assert timing._devices(["NVIDIA H200", "CPU (x86_64, 2 threads)"]) == "NVIDIA H200, CPU (x86_64, 2 threads)"


def test_an_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no shipped model called 'tour_clasifier'.*retrain --list"):
        timing.retraining(["tour_clasifier"])
