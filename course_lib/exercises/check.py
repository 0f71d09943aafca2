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

import math
import numbers
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)  # the constant of a standard normal log-density, per dimension
SYMBOLS = {"batch": "B", "latent dims": "M", "pixels": "D"}  # how the book writes the usual `sizes`
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
        """The lines IPython shows in place of a traceback: a red title, then the wrapped hint."""
        title = f"Exercise {self.exercise}: not yet" if self.exercise else "Not yet"
        lines = [line for paragraph in str(self).splitlines()
                 for line in (textwrap.wrap(paragraph, 88) or [""])]
        return [f"{_BOLD_RED}✗ {title}{_RESET}"] + [f"{_RED}{line}{_RESET}" for line in lines]


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


@dataclass(frozen=True)
class _Tolerance:
    rtol: float
    atol: float

    def close(self, answer: torch.Tensor, candidate: torch.Tensor, scale: float = 1.0) -> bool:
        """``answer`` equals ``candidate`` up to the tolerance (``atol`` scaled by ``scale``)."""
        gap = (answer - candidate).abs()
        return bool((gap <= self.atol * max(1.0, abs(scale)) + self.rtol * candidate.abs()).all())


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


def _index(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


# ----------------------------------------------------------------------------- diagnoses
def _size_name(n: int, sizes: Mapping[str, int]) -> str:
    """" = B, the batch" when ``n`` is one of the named sizes, else ""."""
    names = [name for name, size in sizes.items() if size == n]
    return f" = {' or '.join(f'{SYMBOLS.get(name, name)}, the {name}' for name in names)}" if names else ""


def _shape_hint(a: torch.Tensor, e: torch.Tensor, what: str, tol: _Tolerance, sizes: Mapping[str, int]) -> str:
    got, want = tuple(a.shape), tuple(e.shape)
    head = f"{what} has shape {got}, expected {want}"
    if a.dim() == 2 and got == want[::-1]:
        right = " (the values are right once transposed)" if tol.close(a.T, e) else ""
        return f"{head}: transposed? A .T too many or too few, or dimensions in the wrong order{right}."
    if a.dim() == e.dim() + 1:
        extra = [i for i in range(a.dim()) if got[:i] + got[i + 1:] == want]
        for i in extra:
            if got[i] == 1:
                return f"{head}: an extra dimension of size 1 (position {i}): keepdim=True, or a missing squeeze?"
        for i in extra:
            for op, doing in (("sum", "summing"), ("mean", "averaging")):
                if tol.close(getattr(a, op)(i), e):
                    return (f"{head}: one dimension too many, and {doing} over dimension {i} (of size {got[i]}"
                            f"{_size_name(got[i], sizes)}) gives the right answer.")
        if e.dim() == 1 and got == want * 2:
            return (f"{head}: a square, which is what broadcasting makes of a ({want[0]},) tensor combined with a "
                    f"({want[0]}, 1) one; check for keepdim=True or a missing or extra unsqueeze.")
        for i in extra:
            return (f"{head}: one dimension too many (dimension {i}, of size {got[i]}{_size_name(got[i], sizes)}): "
                    "did you forget to sum or average over it?")
    if a.dim() + 1 == e.dim():
        for i in range(e.dim()):
            if want[:i] + want[i + 1:] == got:
                name = _size_name(want[i], sizes) or (", usually the batch" if i == 0 else "")
                return (f"{head}: dimension {i} (of size {want[i]}{name}) is missing: "
                        "did you sum or average over it? One value per entry of that dimension was asked.")
    if a.dim() == e.dim():
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w and sizes and _size_name(g, sizes):
                return (f"{head}: dimension {i} has size {g}{_size_name(g, sizes)}, where {w}"
                        f"{_size_name(w, sizes)} was asked: a sum or mean over the wrong dimension?")
    if a.numel() == e.numel():
        return f"{head}: the same number of entries arranged differently: a reshape or view in the wrong order?"
    return f"{head}."


def _recognised_factors(sizes: Mapping[str, int]) -> list[tuple[float, str]]:
    """(ratio answer / expected, what it points to), most specific first."""
    def sym(name: str) -> str:
        return SYMBOLS.get(name, name)

    factors: list[tuple[float, str]] = []
    named = list(sizes.items())
    for k, (n1, s1) in enumerate(named):
        for n2, s2 in named[k + 1:]:
            both, n = f"{sym(n1)}·{sym(n2)}", s1 * s2
            factors.append((n, f"looks like a sum over the {n1} and the {n2} where a mean was asked (ratio = {both} = {n})"))
            factors.append((1 / n, f"looks like a mean over the {n1} and the {n2} where a sum was asked "
                                   f"(ratio = 1/({both}) = 1/{n})"))
    for name, n in named:
        label = " or the ".join(m for m, s in named if s == n)
        factors.append((n, f"looks like a sum over the {label} where a mean was asked (ratio = {sym(name)} = {n})"))
        factors.append((1 / n, f"looks like a mean over the {label} where a sum was asked (ratio = 1/{sym(name)} = 1/{n})"))
    return factors + [
        (2.0, "is twice the right value (a factor of 2): a missing 1/2, as in the Gaussian log-density -1/2 (x - mu)^2 / sigma^2 "
              "or the KL 1/2 (mu^2 + sigma^2 - log sigma^2 - 1)?"),
        (0.5, "is half the right value (a factor of 0.5): a 1/2 too many, or a mean of two terms where their sum was asked?"),
        (1 / math.log(2), "looks like bits where nats were asked (ratio = 1/log 2): use the natural log"),
        (math.log(2), "looks like nats where bits were asked (ratio = log 2): divide by log 2"),
    ]


def _value_hint(a: torch.Tensor, e: torch.Tensor, what: str, tol: _Tolerance, sizes: Mapping[str, int]) -> str:
    if a.dim() == 2 and a.shape[0] == a.shape[1] and tol.close(a, e.T):
        return f"{what} is transposed: the values are right, their order is not (a .T too many or too few?)."
    if tol.close(a, -e):
        return (f"{what} has the wrong sign: a loss where a bound was asked for (or the reverse), or a difference "
                "taken the wrong way round?")
    if not bool(a.any()):
        return f"{what} is zero everywhere: a placeholder left in, or a term multiplied by zero?"
    for factor, slip in _recognised_factors(sizes):
        if tol.close(a, factor * e, scale=factor):
            return f"{what} {slip}"
        if tol.close(a, -factor * e, scale=factor):
            return f"{what} has the wrong sign and {slip}"
    # A whole vector is evidence when the reference takes different values and all moved alike;
    # a single number is off by some constant and some factor whatever the mistake, so for it
    # only the recognised multiples of 1/2 log(2 pi) are named.
    informative = e.numel() > 1 and float(e.max() - e.min()) > tol.atol + tol.rtol * float(e.abs().max())
    offset = float((a - e).mean())
    if informative:
        ks = [round(offset / HALF_LOG_2PI)]
    else:
        few = {1, 2} | set(sizes.values()) | {s * t for s in sizes.values() for t in sizes.values()}
        ks = [sign * k for k in sorted(few) for sign in (1, -1)]
    for k in ks:
        if k != 0 and tol.close(a, e + k * HALF_LOG_2PI, scale=abs(k)):
            which = f"k = {abs(k)}{_size_name(abs(k), sizes)}"
            if k > 0:
                return (f"{what} is too large by k * 1/2 log(2 pi) ({which}): a missing -1/2 log(2 pi) per "
                        "dimension in a Gaussian log-density?")
            return (f"{what} is too small by k * 1/2 log(2 pi) ({which}): one -1/2 log(2 pi) per dimension too "
                    "many, or a normalising constant with the wrong sign?")
    if informative:
        if tol.close(a, e + offset):
            return (f"{what} is off by a constant, the same everywhere (about {offset:+.2g}): a missing normalising "
                    "term, such as a log-partition or a -1/2 log(2 pi)?")
        ratio = float((a * e).sum() / (e * e).sum())
        if tol.close(a, ratio * e, scale=ratio):
            return (f"{what} is off by a factor, the same everywhere (about {ratio:.2g}): a missing scale such as "
                    "1/sigma^2, or a sum where a mean was meant, or the reverse?")
    return _relative_error(a, e, what, tol)


def _relative_error(a: torch.Tensor, e: torch.Tensor, what: str, tol: _Tolerance) -> str:
    """The fallback: how many entries are off, in which direction, by how much relatively."""
    wrong = (a - e).abs() > tol.atol + tol.rtol * e.abs()
    above, below = bool((a > e)[wrong].any()), bool((a < e)[wrong].any())
    direction = ("too large" if above and not below else "too small" if below and not above
                 else "some entries too large, others too small")
    reference = float(e.norm())
    rel = float((a - e).norm()) / reference if reference > tol.atol else math.inf
    size = ("more than 10 times the size of the reference" if rel > 10
            else f"relative error {100 * rel:.0f}%" if rel >= 1 else f"relative error {100 * rel:.2g}%")
    n = int(wrong.sum())
    entries = (f"{n} of {a.numel()} entries {'is' if n == 1 else 'are'} off (the first at index {_index(wrong)}), "
               if a.dim() else "")
    return f"{what} is not right yet: {entries}{direction}, {size}. Re-read the derivation step by step."
