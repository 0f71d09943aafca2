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


def test_report_glues_sentences_that_say_measured_and_estimated(monkeypatch) -> None:
    glued = {}
    monkeypatch.setattr(timing, "glue", lambda name, value, display=False: glued.setdefault(name, value))
    timing.report(time.perf_counter() - 75.0, ["tour_classifier"], "cpu")
    assert glued["rt_read"].startswith("75 s on CPU") and "loads 1 shipped model " in glued["rt_mode"]
    assert "(measured" in glued["rt_retrain"] and "(estimated, not measured" in glued["rt_retrain"]
    glued.clear()
    timing.report(time.perf_counter() - 600.0, [], "cpu")
    assert glued["rt_read"].startswith("10 min") and "loads no shipped model" in glued["rt_mode"]


def test_an_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="no shipped model called 'tour_clasifier'.*retrain --list"):
        timing.retraining(["tour_clasifier"])
