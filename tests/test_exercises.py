"""check_close: right answers pass, each usual slip gets its own hint, and no hint without evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from course_lib.exercises import ExerciseError, check_close
from course_lib.exercises import check as check_module
from course_lib.exercises.check import HALF_LOG_2PI, EXERCISES, exercise_header

GEN = torch.Generator().manual_seed(0)
REF = torch.randn(16, generator=GEN, dtype=torch.float64)  # one value per image, batch of 16
SIZES = {"batch": 16, "latent dims": 5, "pixels": 784}


def hint(answer, expected=REF, **kwargs) -> str:
    """The message check_close raises for a wrong answer."""
    with pytest.raises(ExerciseError) as err:
        check_close(answer, expected, "x", **kwargs)
    return str(err.value)


# ----------------------------------------------------------------------------- right answers pass
@pytest.mark.parametrize("answer", [
    REF.clone(),
    REF.float(),                                   # float32 against a float64 reference
    REF.tolist(),                                  # a Python list
    REF.numpy(),                                   # a NumPy array
    REF.numpy().astype(np.float32),
    REF.clone().requires_grad_(),                  # a tensor that carries gradients
    list(REF.float().unbind()),                    # a list of 0-d tensors
], ids=["float64", "float32", "list", "numpy", "numpy32", "requires_grad", "list-of-tensors"])
def test_right_answers_pass(answer, capsys) -> None:
    check_close(answer, REF, "x")
    assert "Correct: x matches" in capsys.readouterr().out


def test_float32_computation_passes_against_a_float64_reference(capsys) -> None:
    mu, logvar = torch.randn(16, 5, generator=GEN, dtype=torch.float64), torch.randn(16, 5, generator=GEN,
                                                                                     dtype=torch.float64)
    reference = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(-1)
    mu32, logvar32 = mu.float(), logvar.float()
    check_close(0.5 * (mu32**2 + logvar32.exp() - logvar32 - 1).sum(-1), reference, "kl")
    check_close(2.5, 2.5, "a number")
    assert capsys.readouterr().out.count("Correct") == 2


# ----------------------------------------------------------------------------- small wrong answers fail
@pytest.mark.parametrize("answer,expected,kwargs", [
    (3e-6, 0.0, {}),                               # a KL of 3e-6 where 0 was asked
    (torch.tensor(3e-6), 0.0, {}),                 # the same in float32
    (1.0001, 1.0, {"rtol": 1e-5}),
    (torch.full((4,), 1e-4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64), {}),
])
def test_small_wrong_answers_fail(answer, expected, kwargs) -> None:
    message = hint(answer, expected, **kwargs)
    assert "too large" in message


# ----------------------------------------------------------------------------- one test per hint
def test_wrong_sign() -> None:
    assert "wrong sign" in hint(-REF)
    assert "wrong sign" in hint(-math.log(2), math.log(2))  # a scalar too


def test_factor_two_and_one_half() -> None:
    assert "twice the right value" in hint(2 * REF)
    assert "twice the right value" in hint(2.0 * 1.7, 1.7)  # recognised even for one number
    assert "half the right value" in hint(0.5 * REF)


def test_sum_where_a_mean_was_asked_names_the_size() -> None:
    per_image = REF.abs() + 1
    message = hint(per_image.sum(), per_image.mean(), sizes=SIZES)
    assert "a sum over the batch where a mean was asked (ratio = B = 16)" in message
    message = hint(per_image.mean() / 784, per_image.mean(), sizes=SIZES)
    assert "a mean over the pixels where a sum was asked (ratio = 1/D = 1/784)" in message
    assert "factor" not in hint(per_image.sum(), per_image.mean())  # without sizes, 16 means nothing


def test_constant_multiple_of_half_log_two_pi() -> None:
    message = hint(REF + 5 * HALF_LOG_2PI, sizes=SIZES)  # a vector: any whole k is evidence
    assert "too large by k * 1/2 log(2 pi) (k = 5 = M, the latent dims)" in message
    assert "missing -1/2 log(2 pi) per dimension" in message
    assert "k = 784 = D, the pixels" in hint(1.3 - 784 * HALF_LOG_2PI, 1.3, sizes=SIZES)  # a scalar: named k
    assert "too small by k * 1/2 log(2 pi) (k = 3)" in hint(REF - 3 * HALF_LOG_2PI)
    assert "off by a constant, the same everywhere" in hint(REF + 0.3)


def test_named_mistake_is_diagnosed_precisely() -> None:
    mu, logvar = torch.randn(16, 5, generator=GEN, dtype=torch.float64), torch.randn(16, 5, generator=GEN,
                                                                                     dtype=torch.float64)
    right = 0.5 * (mu**2 + logvar.exp() - logvar - 1).sum(-1)
    slip = 0.5 * (mu**2 + (2 * logvar).exp() - 2 * logvar - 1).sum(-1)  # logvar read as log sigma
    mistakes = {"logvar treated as log sigma: sigma^2 = exp(logvar), not exp(2 logvar)": slip,
                "the sum over latent dims forgotten": 0.5 * (mu**2 + logvar.exp() - logvar - 1)}
    assert "known slip: logvar treated as log sigma" in hint(slip, right, mistakes=mistakes)
    # a named mistake of another shape is matched before the shape is blamed
    assert "known slip: the sum over latent dims forgotten" in hint(mistakes["the sum over latent dims forgotten"],
                                                                   right, mistakes=mistakes)
    check_close(right, right, "kl", mistakes=mistakes)  # a right answer is never told it is a slip


def test_wrong_shapes() -> None:
    table = torch.randn(16, 5, generator=GEN, dtype=torch.float64)
    assert "transposed" in hint(table.T.contiguous(), table)
    assert "values are right once transposed" in hint(table.T.contiguous(), table)
    message = hint(table, table.sum(-1), sizes=SIZES)
    assert "one dimension too many" in message and "summing over dimension 1 (of size 5 = M" in message
    assert "extra dimension of size 1" in hint(REF[:, None])
    assert "is missing: did you sum or average over it" in hint(REF.sum(), REF, sizes=SIZES)  # batch summed
    assert "broadcasting" in hint(REF[:, None] - REF)


@pytest.mark.parametrize("answer,pattern", [
    (torch.tensor([1, 2, 3]), "integer tensor"),
    (np.array([1, 2, 3]), "integer tensor"),
    (torch.tensor([1.0, 2.0, 3.0]) > 0, "True/False"),
    (torch.tensor([1.0, 2.0, 3.0], dtype=torch.complex64), "complex"),
    (torch.tensor([1.0, 2.0, 3.0], dtype=torch.float16), "half precision"),
])
def test_wrong_dtypes(answer, pattern) -> None:
    assert pattern in hint(answer, [1.0, 2.0, 3.0])


def test_nan_and_inf_are_reported_before_the_shape() -> None:
    message = hint(torch.tensor([1.0, float("nan"), 3.0]))  # wrong shape too: NaN first
    assert "contains NaN in 1 of 3 entries" in message and "shape" not in message
    assert "contains inf" in hint(torch.tensor([1.0, float("inf")]), [1.0, 2.0])


@pytest.mark.parametrize("answer,pattern", [
    (None, "is None: did you forget to `return` it?"),
    ("0.5", "got str"),
    (print, "did you forget to call it"),
    ([[1.0], [1.0, 2.0]], "not a regular grid"),
])
def test_not_a_number(answer, pattern) -> None:
    assert pattern in hint(answer)


# ----------------------------------------------------------------------------- no hint without evidence
def test_a_wrong_scalar_gets_the_relative_error_not_a_factor() -> None:
    message = hint(3.7, 1.3)
    assert "factor" not in message and "constant" not in message
    assert "relative error 185%" in message and "too large" in message


def test_messages_never_reveal_the_expected_value() -> None:
    expected = torch.tensor([1.2345678, -2.3456789, 3.4567891], dtype=torch.float64)
    for answer in (expected + torch.tensor([0.5, 0.0, 0.0]), expected * 3.3, expected + 0.77, -expected, 2 * expected):
        message = hint(answer, expected)
        assert not any(f"{v:.3g}"[:4] in message for v in expected.tolist()), message


# ----------------------------------------------------------------------------- Jupyter display, metadata
def test_render_traceback_is_one_short_block_without_paths() -> None:
    exercise_header("ex-test-kl", "medium", 10)
    try:
        check_close(2 * REF, REF, "the KL per image")
    except ExerciseError as err:
        lines = err._render_traceback_()
    assert lines[0] == "\x1b[1;31mExercise ex-test-kl: not yet\x1b[0m"
    # the book lexes this block as an IPython traceback: every token must lex (a warning fails -W)
    from pygments.lexers import get_lexer_by_name
    from pygments.token import Error

    for message in ("\n".join(lines), "\n".join(ExerciseError("`x` is None: did you `return` it? σ² ≤ 1 ✗\nline 2",
                                                                 "ex-1")._render_traceback_())):
        plain = message.replace("\x1b[1;31m", "").replace("\x1b[31m", "").replace("\x1b[0m", "")
        assert [v for t, v in get_lexer_by_name("ipythontb").get_tokens(plain) if t is Error] == [], plain
    text = "\n".join(lines)
    assert "twice the right value" in text and len(lines) <= 6
    assert "Traceback" not in text and "File " not in text and check_module.__file__ not in text
    assert len(lines) == 2 and lines[1].startswith("\x1b[31mExerciseError: ")   # the hint: one line, wrapped by the page
    assert ExerciseError("plain", exercise=None).exercise == "ex-test-kl"  # the exercise declared last


def test_exercise_header_declares_and_validates(capsys) -> None:
    exercise_header("ex-test-easy", "easy", 5)
    assert EXERCISES["ex-test-easy"].minutes == 5
    assert "Exercise ex-test-easy · ●○○ easy · about 5 min" in capsys.readouterr().out
    with pytest.raises(ValueError, match="difficulty"):
        exercise_header("ex-test-x", "tricky", 5)
    with pytest.raises(ValueError, match="minutes"):
        exercise_header("ex-test-x", "hard", 0)


def test_a_bad_reference_is_the_checks_bug() -> None:
    with pytest.raises(ValueError, match="reference"):
        check_close(1.0, float("nan"))
