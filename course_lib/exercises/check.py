"""Check functions for code exercises: they say what is wrong without giving the answer.

Introduced in: How to use this book. Chapters wrap `check_close` in a named check
(``check_gaussian_kl(your_fn)``). The comparison is relative, with a tolerance suited to the
reference's precision, and a wrong answer is diagnosed only when the evidence supports it:
NaN or inf (checked first), a wrong type or dtype, a wrong shape, one of the chapter's own
typical slips (``mistakes=``), a wrong sign, a factor of 2 or 1/2, a sum where a mean was
asked (``sizes=``), an offset of k * 1/2 log(2 pi). Otherwise the message gives the relative
error and its direction, never the expected value.

`exercise_header` declares an exercise's difficulty and time; in Jupyter and the built book a
failed check then shows as one short red block naming that exercise (no traceback).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .hints import HALF_LOG_2PI, _index, _shape_hint, _Tolerance, _value_hint  # noqa: F401 (HALF_LOG_2PI re-exported)

DIFFICULTIES = ("easy", "medium", "hard")
_RED, _BOLD_RED, _RESET = "\x1b[31m", "\x1b[1;31m", "\x1b[0m"


# ----------------------------------------------------------------------------- exercises
@dataclass(frozen=True)
class Exercise:
    """An exercise's label, difficulty and time estimate, declared by `exercise_header`.

    Introduced in: How to use this book.
    """

    id: str          # the {exercise} label, also the nbgrader grade_id of its test cell: "ex-vae-kl"
    difficulty: str  # "easy", "medium" or "hard"
    minutes: int     # a typical time to solve it

    def __str__(self) -> str:
        marks = "●" * (DIFFICULTIES.index(self.difficulty) + 1) + "○" * (2 - DIFFICULTIES.index(self.difficulty))
        return f"Exercise {self.id} · {marks} {self.difficulty} · about {self.minutes} min"


EXERCISES: dict[str, Exercise] = {}  # every exercise declared in this session, by id
_current: str | None = None  # the exercise declared last: a failed check names it


def exercise_header(exercise_id: str, difficulty: str, minutes: int) -> None:
    """Declare the exercise a student is about to solve and show one line: its difficulty and time.

    Introduced in: How to use this book. Call it first in the exercise's answer cell,
    ``exercise_header("ex-vae-kl", "medium", 10)``; a failed check that follows names it.
    """
    global _current
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    if not isinstance(minutes, int) or minutes <= 0:
        raise ValueError(f"minutes must be a positive whole number, got {minutes!r}")
    exercise = Exercise(exercise_id, difficulty, minutes)
    EXERCISES[exercise_id] = exercise
    _current = exercise_id
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython comes with the course requirements
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(f"**{exercise}**"))
    else:
        print(exercise)


class ExerciseError(AssertionError):
    """Your answer is not right yet; the message gives a hint.

    Introduced in: How to use this book. In Jupyter and the built book it shows as one short
    red block, the exercise and the hint, instead of a traceback (`_render_traceback_`).
    """

    def __init__(self, message: str, exercise: str | None = None) -> None:
        super().__init__(message)
        self.exercise = exercise if exercise is not None else _current

    def _render_traceback_(self) -> list[str]:
        """The lines IPython shows in place of a traceback: a red title, then the hint on one line.

        The book highlights these lines as an IPython traceback; ``Name: message`` lines are the
        form that highlighter accepts whatever the message holds (backticks, Greek letters).
        """
        title = f"Exercise {self.exercise}: not yet" if self.exercise else "Not yet: your answer"
        hint = " ".join(line.strip() for line in str(self).splitlines() if line.strip())
        return [f"{_BOLD_RED}{title}{_RESET}", f"{_RED}ExerciseError: {hint}{_RESET}"]


# ----------------------------------------------------------------------------- the checker
def check_close(answer: Any, expected: Any, what: str = "your answer", rtol: float | None = None,
                atol: float | None = None, *, sizes: Mapping[str, int] | None = None,
                mistakes: Mapping[str, Any] | None = None) -> None:
    """Compare ``answer`` with ``expected``; raise `ExerciseError` with a diagnosis, print a success line.

    Introduced in: How to use this book. ``answer`` may be a tensor (any device, with or
    without gradients), a NumPy array, a number or a (nested) list. Entries pass when
    ``|answer - expected| <= atol + rtol * |expected|``. ``rtol`` defaults to 1e-5 when both
    are float64 (Python floats count as float64) and 1e-4 when either is float32; ``atol``
    defaults to ``rtol`` times the mean magnitude of ``expected``, and never below the
    rounding noise of the coarser dtype (1e-12 for float64, 1e-6 for float32).

    ``sizes`` names the dimensions of the input, ``{"batch": B, "latent dims": M, "pixels": D}``,
    so a ratio of B is reported as a sum over the batch where a mean was asked. ``mistakes``
    maps a description of a typical slip to the value that slip produces,
    ``{"logvar treated as log sigma: sigma^2 = exp(logvar)": wrong}``; an answer equal to one
    of them is told that description.
    """
    sizes = {name: int(n) for name, n in (sizes or {}).items() if int(n) > 1}
    ref = _reference(expected)
    got = _as_tensor(answer, what)
    _check_finite(got, what)
    _check_dtype(got, ref.dtype, what)
    rtol = _default_rtol(got.dtype, ref.dtype) if rtol is None else rtol
    a, e = got.to(torch.float64), ref.to(torch.float64)
    if atol is None:
        scale = float(e.abs().mean()) if e.numel() else 0.0
        atol = max(rtol * scale, _atol_floor(got.dtype, ref.dtype))
    tol = _Tolerance(rtol, atol)
    if a.shape == e.shape and tol.close(a, e):
        print(f"Correct: {what} matches.")
        return
    for slip, value in (mistakes or {}).items():
        wrong = _reference(value).to(torch.float64)
        if wrong.shape == a.shape and tol.close(a, wrong):
            raise ExerciseError(f"{what} looks like a known slip: {slip.rstrip('.')}.")
    if a.shape != e.shape:
        raise ExerciseError(_shape_hint(a, e, what, tol, sizes))
    raise ExerciseError(_value_hint(a, e, what, tol, sizes))


def _reference(expected: Any) -> torch.Tensor:
    """The reference as a tensor; a problem with it is the check's bug, not the student's."""
    try:
        ref = _as_tensor(expected, "the reference")
    except ExerciseError as err:
        raise ValueError(f"check_close: bad reference: {err}") from None
    if ref.is_complex() or not torch.isfinite(ref).all():
        raise ValueError("check_close: the reference must be real and finite (a bug in the check)")
    return ref


def _as_tensor(x: Any, what: str) -> torch.Tensor:
    """Any tensor, array, number or list of them as a CPU tensor keeping its dtype."""
    if x is None:
        raise ExerciseError(f"{what} is None: did you forget to `return` it?")
    if torch.is_tensor(x):
        return x.detach().cpu().resolve_conj()
    if isinstance(x, bool):
        return torch.tensor(x)
    if isinstance(x, numbers.Real) and not isinstance(x, np.generic):
        return torch.tensor(float(x), dtype=torch.float64)  # a Python int or float is a float64 number
    if isinstance(x, (list, tuple, np.ndarray, np.generic, numbers.Complex)):
        try:
            array = np.array(_plain(x))
        except (ValueError, TypeError, RuntimeError) as err:
            raise ExerciseError(f"{what} is a {type(x).__name__} that is not a regular grid of numbers "
                                "(entries of different lengths?): return one tensor, e.g. with torch.stack") from err
        if array.dtype.kind not in "biufc":
            raise ExerciseError(f"{what} should hold numbers, got a {type(x).__name__} of {array.dtype.name} "
                                f"(e.g. {str(array.flat[0])[:20]!r})" if array.size else f"{what} is empty")
        return torch.from_numpy(array.copy())
    hint = (" (a function: did you forget to call it?)" if callable(x)
            else " (a dict: return the value itself, not the dict)" if isinstance(x, Mapping) else "")
    raise ExerciseError(f"{what} should be a tensor, a number or a list of numbers, got {type(x).__name__}{hint}")


def _plain(x: Any) -> Any:
    """Tensors inside lists become NumPy arrays (detached), so `np.array` can stack them."""
    if torch.is_tensor(x):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not (t.is_floating_point() or t.is_complex()):
        return
    nan, inf = torch.isnan(t), torch.isinf(t)
    kinds = [kind for kind, mask in (("NaN", nan), ("inf", inf)) if mask.any()]
    if not kinds:
        return
    bad = nan | inf
    count = f" in {int(bad.sum())} of {t.numel()} entries (the first at index {_index(bad)})" if t.dim() else ""
    causes = {"NaN": "for NaN look for 0/0, inf - inf, or a log or square root of a negative number",
              "inf": "for inf look for log(0), a division by zero or exp overflowing "
                     "(logsumexp, log1p and softplus are the stable forms)"}
    raise ExerciseError(f"{what} contains {' and '.join(kinds)}{count}: " + "; ".join(causes[k] for k in kinds))


def _check_dtype(t: torch.Tensor, ref_dtype: torch.dtype, what: str) -> None:
    dtype = str(t.dtype).replace("torch.", "")
    if t.is_complex():
        raise ExerciseError(f"{what} is complex ({dtype}): the answer is real. A square root or log of a "
                            "negative number, or an FFT without .real?")
    if t.dtype == torch.bool:
        raise ExerciseError(f"{what} holds True/False values: a comparison where a number was asked? "
                            "If you meant a fraction or a count, convert with .float() first.")
    if not t.is_floating_point() and ref_dtype.is_floating_point:
        raise ExerciseError(f"{what} is an integer tensor ({dtype}), so any fraction was rounded away: build "
                            "tensors from floats (torch.tensor([1.0, 2.0])), divide with / not //, or call .float()")
    half = (torch.float16, torch.bfloat16)
    if t.dtype in half and ref_dtype not in half:
        raise ExerciseError(f"{what} is in half precision ({dtype}), too coarse for this check: "
                            "compute in float32 (call .float() on the inputs)")


def _default_rtol(answer: torch.dtype, reference: torch.dtype) -> float:
    """1e-5 for float64 (and integers), 1e-4 when either side is float32, 1e-2 for half precision."""
    dtypes = {answer, reference}
    return 1e-2 if dtypes & {torch.float16, torch.bfloat16} else 1e-4 if torch.float32 in dtypes else 1e-5


def _atol_floor(answer: torch.dtype, reference: torch.dtype) -> float:
    """The rounding noise of the coarser dtype: the smallest absolute tolerance that makes sense."""
    dtypes = {answer, reference}
    return 1e-3 if dtypes & {torch.float16, torch.bfloat16} else 1e-6 if torch.float32 in dtypes else 1e-12
