"""Diagnoses of wrong answers for `check_close`: shape slips, signs, factors, offsets.

Introduced in: How to use this book. Each hint is given only when the evidence supports it;
otherwise the message reports the relative error and its direction, never the expected value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)  # the constant of a standard normal log-density, per dimension
SYMBOLS = {"batch": "B", "latent dims": "M", "pixels": "D"}  # how the book writes the usual `sizes`


@dataclass(frozen=True)
class _Tolerance:
    rtol: float
    atol: float

    def close(self, answer: torch.Tensor, candidate: torch.Tensor, scale: float = 1.0) -> bool:
        """``answer`` equals ``candidate`` up to the tolerance (``atol`` scaled by ``scale``)."""
        gap = (answer - candidate).abs()
        return bool((gap <= self.atol * max(1.0, abs(scale)) + self.rtol * candidate.abs()).all())


# ----------------------------------------------------------------------------- diagnoses
def _index(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


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
