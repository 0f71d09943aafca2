"""Check functions for code exercises: they say what is wrong without giving the answer.

Introduced in: How to use this book. Chapters wrap `check_close` in a named check
(``check_elbo(your_fn)``); the message diagnoses the usual slips: wrong shape, wrong sign,
off by a constant, off by a factor, NaN.
"""

from __future__ import annotations

import torch


class ExerciseError(AssertionError):
    """Your answer is not right yet; the message gives a hint."""


def check_close(answer, expected, what: str = "your answer", rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Compare ``answer`` with ``expected``; raise `ExerciseError` with a diagnosis, print a success line."""
    expected = torch.as_tensor(expected, dtype=torch.float64)
    if answer is None:
        raise ExerciseError(f"{what} is None: did you forget to `return` it?")
    try:
        answer = torch.as_tensor(answer.detach() if torch.is_tensor(answer) else answer, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ExerciseError(f"{what} should be a tensor or number, got {type(answer).__name__}") from err
    if answer.shape != expected.shape:
        hint = ""
        if answer.numel() == expected.numel():
            hint = " (same number of entries: a transpose or a reshape?)"
        elif answer.dim() == expected.dim() + 1:
            hint = " (one dimension too many: did you forget to sum or average over it?)"
        elif answer.dim() + 1 == expected.dim():
            hint = " (one dimension too few: did you sum over the batch?)"
        raise ExerciseError(f"{what} has shape {tuple(answer.shape)}, expected {tuple(expected.shape)}{hint}")
    if not torch.isfinite(answer).all():
        raise ExerciseError(f"{what} contains NaN or inf: look for log(0), division by zero or exp overflow")
    if torch.allclose(answer, expected, rtol=rtol, atol=atol):
        print(f"Correct: {what} matches.")
        return
    if torch.allclose(-answer, expected, rtol=rtol, atol=atol):
        raise ExerciseError(f"{what} has the wrong sign (a loss where a bound was asked for, or the reverse?)")
    diff = answer - expected
    if diff.numel() > 1 and torch.allclose(diff, diff.flatten()[0].expand_as(diff), rtol=0, atol=max(atol, 1e-6)):
        raise ExerciseError(f"{what} is off by a constant ({float(diff.flatten()[0]):.4g}) everywhere: "
                            "a missing normalising term, such as -0.5*log(2*pi) per dimension?")
    ratio = answer / expected.where(expected.abs() > 1e-12, torch.ones_like(expected))
    if diff.numel() >= 1 and torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-4) \
            and not torch.isclose(ratio.flatten()[0], torch.tensor(1.0, dtype=torch.float64)):
        raise ExerciseError(f"{what} is off by a factor of {float(ratio.flatten()[0]):.4g}: "
                            "a missing 1/2, a sum where a mean was meant, or the reverse?")
    worst = float(diff.abs().max())
    raise ExerciseError(f"{what} is not right yet (largest difference {worst:.4g}); re-read the derivation.")
