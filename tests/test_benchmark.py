"""The benchmark protocol (course_lib.benchmark), its records, and the chapter's exercise check."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from torch import nn
from torch.distributions import Independent, Normal

from course_lib import benchmark, runs
from course_lib.benchmark import BENCHMARKED, Protocol, html_table, table_rows
from course_lib.checkpoint import read_record
from course_lib.exercises.benchmark import check_bound_summary
from course_lib.exercises.check import ExerciseError
from course_lib.paired import per_image_bounds


class ExactGaussian(nn.Module):
    """z ~ N(0, 1), x | z ~ N(z, 1): p(x) = N(0, 2) and the exact posterior is N(x/2, 1/2)."""

    def __init__(self, exact_posterior: bool = True) -> None:
        super().__init__()
        self.exact = exact_posterior
        self.dummy = nn.Parameter(torch.zeros(1))

    def encode(self, x):
        scale = math.sqrt(0.5) if self.exact else 1.0
        return Independent(Normal(x / 2, torch.full_like(x, scale)), 1)

    def decode(self, z):
        return Independent(Normal(z, torch.ones_like(z)), 1)

    def prior(self):
        return Independent(Normal(torch.zeros(1), torch.ones(1)), 1)


def test_with_the_exact_posterior_every_bound_is_log_p_x() -> None:
    x = torch.linspace(-3, 3, 7)[:, None]                                   # (N, 1)
    terms = per_image_bounds(ExactGaussian(), x, k=7, batch=3, chunk=2)
    log_px = Normal(0.0, math.sqrt(2.0)).log_prob(x[:, 0])
    torch.testing.assert_close(terms["iwae"], log_px)                      # w = p(x) for every z: L_k = log p(x)
    torch.testing.assert_close(terms["elbo"], log_px)
    kl = torch.distributions.kl_divergence(ExactGaussian().encode(x), ExactGaussian().prior())
    torch.testing.assert_close(terms["rate"], kl, atol=1.5, rtol=0)         # a 7-sample estimate of the KL


def test_terms_are_seeded_and_add_up() -> None:
    torch.manual_seed(0)
    x = torch.randn(200, 1) * 2
    model = ExactGaussian(exact_posterior=False)                            # a loose posterior: L_k > ELBO
    terms = per_image_bounds(model, x, k=30, batch=5, chunk=7, seed=3)
    ref = per_image_bounds(model, x, k=30, batch=5, chunk=7, seed=3)
    torch.testing.assert_close(terms["iwae"], ref["iwae"])                  # same images, k, seed: same numbers
    torch.testing.assert_close(terms["elbo"], ref["elbo"])
    torch.testing.assert_close(-(terms["rate"] + terms["distortion"]), terms["elbo"])
    assert (terms["iwae"] > terms["elbo"]).all()
    exact = Normal(0.0, math.sqrt(2.0)).log_prob(x[:, 0])
    gap_k, gap_1 = (exact - terms["iwae"]).mean(), (exact - terms["elbo"]).mean()
    assert 0 < gap_k < gap_1                                                # a lower bound in expectation, tighter than the ELBO


def test_the_protocol_images_are_a_prefix_of_the_whole_test_set() -> None:
    small, _ = benchmark.test_data("vae_mlp32", 50, "cpu")
    large, _ = benchmark.test_data("vae_mlp32", 200, "cpu")
    assert torch.equal(small, large[:50]) and set(small.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name", ["vae_mlp2d", "cvae_mnist", "vqvae_mnist", "ae_mnist_z16", "betavae_b16"])
def test_evaluate_every_kind(name: str) -> None:
    out = benchmark.evaluate(name, Protocol(k=4, n=20, samples=40, speed_steps=1), "cpu")
    assert out["tensors_sha256"] == read_record(runs.checkpoint_dir() / name)["tensors_sha256"]
    assert out["distortion"] > 0 and math.isfinite(out["distortion"]) and out["train_images_per_s"] > 0
    if BENCHMARKED[name].kind != "ae":
        assert out["rate"] >= 0 and math.isfinite(out["nll"])
        assert out["nll"] <= out["neg_elbo"] + 1e-4                        # L_k >= ELBO
    if BENCHMARKED[name].fld:
        assert out["fld"] > 0


def test_store_writes_beside_the_same_weights_and_refuses_numbers_of_other_weights(tmp_path) -> None:
    for suffix in (".safetensors", ".json"):
        shutil.copy(runs.checkpoint_dir() / f"vae_mlp2d{suffix}", tmp_path / f"vae_mlp2d{suffix}")
    before = read_record(tmp_path / "vae_mlp2d")
    with pytest.raises(RuntimeError, match="changed while it was benchmarked"):
        benchmark.store("vae_mlp2d", {"tensors_sha256": "0" * 64}, tmp_path)
    assert read_record(tmp_path / "vae_mlp2d") == before                   # nothing written
    benchmark.store("vae_mlp2d", {"tensors_sha256": before["tensors_sha256"], "nll": 1.0}, tmp_path)
    after = read_record(tmp_path / "vae_mlp2d")
    assert after["benchmark"]["nll"] == 1.0 and after["tensors_sha256"] == before["tensors_sha256"]


def test_command_line_errors_say_what_to_do(capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit):
        benchmark.main(["vae_nonexistent"])
    assert "see --list" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.main(["vae_mlp2d", "--k", "1"])
    assert "at least 2" in capsys.readouterr().err
    monkeypatch.setenv("VAE_COURSE_SMOKE", "1")
    with pytest.raises(SystemExit):
        benchmark.main(["vae_mlp2d"])
    assert "--dry-run" in capsys.readouterr().err


def test_every_benchmarked_record_has_numbers_for_its_own_weights_and_one_protocol() -> None:
    records = {n: read_record(runs.checkpoint_dir() / n) for n in BENCHMARKED}
    missing = [n for n, r in records.items() if "benchmark" not in r]
    assert not missing, f"run `python -m course_lib.benchmark {' '.join(missing)}`"
    assert all(r["benchmark"]["tensors_sha256"] == r["tensors_sha256"] for r in records.values())
    protocols = {json.dumps(r["benchmark"]["protocol"], sort_keys=True) for r in records.values()}
    assert len(protocols) == 1
    assert all(math.isfinite(v) for r in records.values() for v in r["benchmark"].values() if isinstance(v, float))
    assert "loop_ratio" in records["vae_mlp32"]["benchmark"]


def test_table_rows_count_the_prior_of_a_vq_vae_and_html_dashes_missing_values() -> None:
    records = {n: read_record(runs.checkpoint_dir() / n) for n in ("vqvae_mnist", "pixelcnn_mnist", "ae_mnist_z16")}
    rows = {r["model"]: r for r in table_rows(records)}
    assert set(rows) == {"vqvae_mnist", "ae_mnist_z16"}                     # the prior is not a row of its own
    assert rows["vqvae_mnist"]["parameters"] == records["vqvae_mnist"]["parameters"] + records["pixelcnn_mnist"]["parameters"]
    html = html_table([{"a": None, "b": "<x>", "c": 1234.5}], {"a": "A", "b": "B", "c": "C"}, {"c": ",.0f"})
    assert "&ndash;" in html and "&lt;x&gt;" in html and "1,234" in html


def _summary(log_w):
    per = -(torch.logsumexp(log_w, 0) - math.log(log_w.shape[0]))
    return per.mean(), per.std() / math.sqrt(log_w.shape[1])


@pytest.mark.parametrize("slip, pattern", [
    (lambda lw: (-lw.mean(), 0.0), "negative ELBO"),
    (lambda lw: (-torch.logsumexp(lw, 0).mean(), 0.0), "subtract log k"),
    (lambda lw: (-(lw.exp().mean(0).log()).mean(), 0.0), "underflows"),
    (lambda lw: (_summary(lw)[0], _summary(lw)[1] * math.sqrt(lw.shape[1]) / lw.shape[1]), "not std / N"),
    (lambda lw: (_summary(lw)[0], _summary(lw)[1] * math.sqrt(lw.shape[1])), "divide by sqrt"),
    (lambda lw: None, "return nll, stderr"),
])
def test_bound_summary_check_names_each_slip(slip, pattern, capsys) -> None:
    check_bound_summary(_summary)
    with pytest.raises(ExerciseError, match=pattern):
        check_bound_summary(slip)
