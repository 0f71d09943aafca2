"""Reading nbgrader markers and sphinx-exercise solution blocks in notebook cells.

Introduced in: How to use this book. `course_lib.student` uses these to clear solutions.
"""

from __future__ import annotations

import re

from nbformat import NotebookNode

CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
MARKDOWN_STUB = "YOUR ANSWER HERE"
_MARKER = re.compile(r"^\s*###\s*(BEGIN|END) (SOLUTION|HIDDEN TESTS)\s*$")
_FENCE = re.compile(r"^ {0,3}(?P<fence>`{3,}|:{3,})(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*\{(?P<name>[\w-]+)\}")


def nbgrader(cell: NotebookNode) -> dict:
    """The cell's nbgrader metadata (empty when it has none) (introduced in: How to use this book)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


# ----------------------------------------------------------------------------- markers
def _marker(line: str) -> tuple[str, str] | None:
    """("BEGIN", "SOLUTION") for a ``### BEGIN SOLUTION`` line, and so on; None for other lines."""
    m = _MARKER.match(line)
    return (m[1], m[2]) if m else None


def marker_problems(lines: list[str]) -> list[str]:
    """What is unbalanced among the nbgrader markers of one cell's lines (introduced in: How to use this book)."""
    problems, open_region = [], None
    for number, line in enumerate(lines, 1):
        marker = _marker(line)
        if marker is None:
            continue
        edge, region = marker
        if edge == "BEGIN":
            if open_region is not None:
                problems.append(f"line {number}: ### BEGIN {region} inside the {open_region} region opened earlier")
            else:
                open_region = region
        elif open_region != region:
            problems.append(f"line {number}: ### END {region} without a matching ### BEGIN {region}")
        else:
            open_region = None
    if open_region is not None:
        problems.append(f"### BEGIN {open_region} without a matching ### END {open_region}")
    return problems


def _replace_regions(lines: list[str], region: str, stub: list[str]) -> tuple[list[str], int]:
    """Lines with every ``### BEGIN region`` ... ``### END region`` replaced by ``stub`` (indented alike)."""
    out, inside, count = [], False, 0
    for line in lines:
        marker = _marker(line)
        if marker == ("BEGIN", region):
            inside, count = True, count + 1
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + s + "\n" for s in stub]
        elif marker == ("END", region):
            inside = False
        elif not inside:
            out.append(line)
    if out and lines and not lines[-1].endswith("\n") and out[-1].endswith("\n"):
        out[-1] = out[-1][:-1]  # keep the source's own ending
    return out, count


# ----------------------------------------------------------------------------- solution text
def _fence_end(lines: list[str], start: int, char: str, length: int) -> int | None:
    """Index of the line that closes the fence opened at ``start`` (CommonMark: same character,
    at least as long, nothing else on the line), or None when it is never closed."""
    closing = re.compile(rf"^ {{0,3}}{re.escape(char)}{{{length},}}\s*$")
    return next((j for j in range(start + 1, len(lines)) if closing.match(lines[j])), None)


def _strip_solution_text(lines: list[str], gated: bool) -> tuple[list[str], int, list[str], bool]:
    """Markdown lines without sphinx-exercise solutions: (kept lines, blocks removed, problems,
    whether a ``{solution-start}`` is still open at the end). ``gated``: one was open before."""
    out, removed, problems, i = [], 0, [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i].rstrip("\n"))
        if m is None:
            if not gated:
                out.append(lines[i])
            i += 1
            continue
        fence, directive = m["fence"], _DIRECTIVE.match(m["info"])
        name = directive["name"] if directive else None
        end = _fence_end(lines, i, fence[0], len(fence))
        stop = len(lines) if end is None else end + 1
        if end is None and name in ("solution", "solution-start", "solution-end"):
            problems.append(f"a {fence}{{{name}}} block is never closed (no {fence} line after it)")
        if gated:
            if name == "solution-end":
                gated = False
        elif name == "solution":
            removed += 1
        elif name == "solution-start":
            gated, removed = True, removed + 1
        elif name == "solution-end":
            problems.append(f"a {fence}{{solution-end}} without a {{solution-start}} before it")
        elif name is not None and end is not None:  # another directive: its body may hold a solution
            inner, count, found, _ = _strip_solution_text(lines[i + 1:end], False)
            out += [lines[i], *inner, lines[end]]
            removed, problems = removed + count, problems + found
        else:  # a code block, or an unclosed one: literal text
            out += lines[i:stop]
        i = stop
    return out, removed, problems, gated


def _tidy(lines: list[str]) -> str:
    """Join lines, with no run of blank lines left where a block was removed."""
    return re.sub(r"\n{3,}", "\n\n", "".join(lines)).strip("\n")


# ----------------------------------------------------------------------------- notebooks
