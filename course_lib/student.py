"""Student notebooks from the authored ones: solutions cleared, hidden tests and solution text removed.

Introduced in: How to use this book. Exercises are written once, with their solutions, in the
chapter notebooks (the instructor version), marked the nbgrader way:

- in a code cell, ``### BEGIN SOLUTION`` ... ``### END SOLUTION`` becomes ``# YOUR CODE HERE`` and
  ``raise NotImplementedError()`` at the same indentation; ``### BEGIN HIDDEN TESTS`` ...
  ``### END HIDDEN TESTS`` is removed;
- a cell whose nbgrader metadata says ``solution: true`` and has no markers is replaced whole
  (code: the stub above; markdown: ``YOUR ANSWER HERE``);
- the sphinx-exercise solution blocks of markdown cells (```` ```{solution} ```` or
  ``:::{solution}``, and everything from ``{solution-start}`` to ``{solution-end}``, across cells)
  are removed, and a cell left empty is dropped.

Outputs are stripped. Run ``python -m course_lib.student`` to write ``student/<chapter>.ipynb``
for every ``book/*.ipynb`` (Neuromatch's layout: the book is the instructor copy, ``student/``
is generated from it and never edited by hand); ``--check`` only reports notebooks whose markers
are unbalanced or whose nbgrader metadata is incomplete.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections import Counter
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .markers import (CODE_STUB, MARKDOWN_STUB, _marker, _replace_regions, _strip_solution_text, _tidy,  # noqa: F401
                      marker_problems,
                      nbgrader)

ROOT = Path(__file__).resolve().parent.parent


def problems(nb: NotebookNode) -> list[str]:
    """What stops ``nb`` from becoming a safe student notebook: unbalanced markers or solution
    blocks, and nbgrader metadata that nbgrader itself would reject. Introduced in: How to use this book."""
    found, seen, gated_at = [], {}, None
    for index, cell in enumerate(nb.cells):
        lines = cell.source.splitlines(keepends=True)
        meta = nbgrader(cell)
        found += [f"cell {index}: {p}" for p in marker_problems(lines)]
        if cell.cell_type == "markdown":
            _, _, text_problems, gated = _strip_solution_text(lines, gated_at is not None)
            found += [f"cell {index}: {p}" for p in text_problems]
            gated_at = (gated_at if gated_at is not None else index) if gated else None
        markers = {m for m in map(_marker, lines) if m}
        if ("BEGIN", "SOLUTION") in markers and not meta.get("solution"):
            found.append(f"cell {index}: solution markers in a cell whose nbgrader metadata lacks \"solution\": true")
        if ("BEGIN", "HIDDEN TESTS") in markers and not meta.get("grade"):
            found.append(f"cell {index}: hidden tests in a cell whose nbgrader metadata lacks \"grade\": true")
        if meta.get("grade") or meta.get("solution") or meta.get("locked"):
            grade_id = meta.get("grade_id")
            if not grade_id:
                found.append(f"cell {index}: nbgrader metadata without a grade_id")
            elif grade_id in seen:
                found.append(f"cell {index}: grade_id {grade_id!r} already used by cell {seen[grade_id]}")
            else:
                seen[grade_id] = index
        if meta.get("grade") and not isinstance(meta.get("points"), (int, float)):
            found.append(f"cell {index}: a graded cell (\"grade\": true) without a number of \"points\"")
    if gated_at is not None:
        found.append(f"cell {gated_at}: a {{solution-start}} never ended by a {{solution-end}}")
    return found


def student_notebook(nb: NotebookNode) -> tuple[NotebookNode, Counter]:
    """The student version of an instructor notebook, and counts of what was taken out.

    Introduced in: How to use this book. Refuses (ValueError) a notebook with `problems`, so an
    unbalanced marker cannot leak a solution.
    """
    found = problems(nb)
    if found:
        raise ValueError("markers or nbgrader metadata need fixing first:\n  " + "\n  ".join(found))
    nb = copy.deepcopy(nb)
    cells, gated, counts = [], False, Counter()
    for cell in nb.cells:
        meta = nbgrader(cell)
        lines = cell.source.splitlines(keepends=True)
        if cell.cell_type == "code":
            if gated:  # between {solution-start} and {solution-end}: part of the solution
                counts["solution cells"] += 1
                continue
            lines, n = _replace_regions(lines, "SOLUTION", CODE_STUB)
            if meta.get("solution") and not n:
                lines, n = ["\n".join(CODE_STUB)], 1
            lines, hidden = _replace_regions(lines, "HIDDEN TESTS", [])
            counts["solutions cleared"] += n
            counts["hidden tests removed"] += hidden
            cell.source = "".join(lines)
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
        elif cell.cell_type == "markdown":
            lines, n, _, gated_after = _strip_solution_text(lines, gated)
            counts["solution texts removed"] += n
            lines, cleared = _replace_regions(lines, "SOLUTION", [MARKDOWN_STUB])
            if meta.get("solution") and not cleared:
                lines, cleared = [MARKDOWN_STUB], 1
            counts["solution texts removed"] += cleared
            was_gated, gated = gated, gated_after
            cell.source = _tidy(lines)
            if not cell.source.strip():
                counts["solution cells"] += was_gated
                continue
        cells.append(cell)
    nb.cells = cells
    return nb, counts


def export(path: Path, out_dir: Path) -> tuple[Path, Counter]:
    """Write the student version of the notebook at ``path`` into ``out_dir`` (same file name).

    Introduced in: How to use this book.
    """
    nb = nbformat.read(path, as_version=4)
    student, counts = student_notebook(nb)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / path.name
    nbformat.write(student, target)
    return target, counts


def _default_notebooks() -> list[Path]:
    return sorted((ROOT / "book").glob("*.ipynb"))


def main(argv: list[str] | None = None) -> int:
    """The command line (introduced in: How to use this book)."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.student", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="instructor notebooks (default: every book/*.ipynb)")
    parser.add_argument("--out", type=Path, default=ROOT / "student", help="folder for the student notebooks")
    parser.add_argument("--check", action="store_true", help="only report unbalanced markers, write nothing")
    args = parser.parse_args(argv)
    paths = args.notebooks or _default_notebooks()
    bad = 0
    for path in paths:
        try:
            nb = nbformat.read(path, as_version=4)
        except (OSError, ValueError) as err:  # missing file, or not JSON / not a notebook
            print(f"{path}: cannot read it as a notebook ({err}); pass the path of a .ipynb file", file=sys.stderr)
            bad += 1
            continue
        found = problems(nb)
        for problem in found:
            print(f"{path}: {problem}")
        bad += bool(found)
        if args.check or found:
            continue
        target, counts = export(path, args.out)
        done = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "no exercises"
        print(f"wrote {target} ({done})")
    if args.check and not bad:
        print(f"markers balanced in {len(paths)} notebook(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
