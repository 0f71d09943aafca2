"""Grade a notebook: run it top to bottom, then points and the checker's hint per exercise.

Introduced in: How to use this book. ``python -m course_lib.grade student/05_vae.ipynb`` runs the
notebook with nbclient in the ``python3`` kernel of this environment (a failing cell does not
stop the run), then looks at every code cell whose nbgrader metadata says ``"grade": true``:
it earns its ``points`` when it ran without an error and 0 otherwise, with the reason: the
`ExerciseError` hint of the check, "not attempted" when the cell, or a solution cell since the
previous graded cell, raised NotImplementedError (the student stub), or the error itself.

``--json FILE`` also writes the report as JSON; ``--source book/05_vae.ipynb`` first puts the
instructor's graded cells (hidden tests included) back in place of the student's, matched by
grade_id, as nbgrader's autograder does. The exit code is 0 whenever grading completed,
whatever the score, and 1 when it could not (file missing or not a notebook, no kernel).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .student import nbgrader

_TIMEOUT = "CellTimeoutError"


class GradingError(RuntimeError):
    """Grading itself failed (not the student's answers); the message says what to do.

    Introduced in: How to use this book.
    """


@dataclass
class Result:
    """The grade of one exercise (one graded cell) (introduced in: How to use this book)."""

    grade_id: str
    cell: int          # index of the graded cell in the notebook
    points: float
    max_points: float
    status: str        # "passed", "failed", "not attempted" or "error"
    hint: str = ""     # the checker's message, or the error, for a cell that did not pass


@dataclass
class Report:
    """Every graded exercise of one notebook, and errors that happened outside them.

    Introduced in: How to use this book.
    """

    notebook: str
    results: list[Result]
    other_errors: list[str] = field(default_factory=list)  # "cell 0: ModuleNotFoundError: ..."

    @property
    def total(self) -> float:
        return sum(r.points for r in self.results)

    @property
    def max_total(self) -> float:
        return sum(r.max_points for r in self.results)

    def to_dict(self) -> dict:
        return {"notebook": self.notebook, "total": self.total, "max_total": self.max_total,
                "exercises": [asdict(r) for r in self.results], "other_errors": self.other_errors}

    def __str__(self) -> str:
        lines = [f"Grading {self.notebook}"]
        if not self.results:
            lines.append("  no graded cells (code cells with nbgrader metadata \"grade\": true and \"points\")")
        width = max((len(r.grade_id) for r in self.results), default=0)
        for r in self.results:
            line = f"  {r.grade_id:<{width}}  {_num(r.points):>4} / {_num(r.max_points):<4} {r.status}"
            lines.append(line + (f": {r.hint}" if r.hint and r.status != "not attempted" else ""))
        lines += [f"  note: {e}" for e in self.other_errors]
        lines.append(f"Total: {_num(self.total)} / {_num(self.max_total)}")
        return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:g}"


def read_notebook(path: Path) -> NotebookNode:
    """The notebook at ``path``, or a `GradingError` saying what is wrong with the file.

    Introduced in: How to use this book.
    """
    if not path.is_file():
        raise GradingError(f"{path} not found: pass the path of a notebook, e.g. student/05_vae.ipynb "
                           "(make the student notebooks with `python -m course_lib.student`)")
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError, UnicodeDecodeError) as err:  # unreadable, not JSON, not a notebook
        raise GradingError(f"{path} cannot be read as a Jupyter notebook ({type(err).__name__}: {err}); "
                           "open it in Jupyter to see what is wrong, or export it again") from err


def restore_graded_cells(submission: NotebookNode, source: NotebookNode) -> int:
    """Put the instructor's version of every graded or locked cell back, matched by grade_id
    (hidden tests included, so a student cannot edit the tests); returns how many. Introduced in: How to use this book."""
    originals = {nbgrader(c)["grade_id"]: c for c in source.cells
                 if nbgrader(c).get("grade_id") and (nbgrader(c).get("locked") or
                                                      (nbgrader(c).get("grade") and not nbgrader(c).get("solution")))}
    restored = 0
    for cell in submission.cells:
        original = originals.get(nbgrader(cell).get("grade_id"))
        if original is not None:
            cell.source, cell.metadata["nbgrader"] = original.source, dict(nbgrader(original))
            restored += 1
    return restored


def execute(nb: NotebookNode, cwd: Path, timeout: int) -> tuple[set[int], tuple[int, str] | None]:
    """Run ``nb`` in place, top to bottom, errors allowed; (cells that timed out, (cell, reason) if
    the kernel died). A kernel that cannot start is a `GradingError`. Introduced in: How to use this book."""
    from nbclient import NotebookClient

    started: list[int] = []
    timed_out: set[int] = set()

    def on_start(cell: NotebookNode, cell_index: int) -> None:
        started.append(cell_index)

    def on_executed(cell: NotebookNode, cell_index: int, execute_reply: dict) -> None:
        if (execute_reply or {}).get("content", {}).get("ename") == _TIMEOUT:
            timed_out.add(cell_index)

    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
        error_on_timeout={"ename": _TIMEOUT, "evalue": f"ran past {timeout} s", "traceback": []},
        resources={"metadata": {"path": str(cwd)}}, on_cell_start=on_start, on_cell_executed=on_executed)
    try:
        client.execute()
    except Exception as err:  # noqa: BLE001 - nbclient raises many kinds; which cell tells them apart
        if not started:
            raise GradingError(f"the python3 kernel could not start ({type(err).__name__}: {err}); install "
                               "ipykernel in this environment (`pip install ipykernel`) and try again") from err
        return timed_out, (started[-1], f"{type(err).__name__}: {err}".strip())
    return timed_out, None


def _error(cell: NotebookNode) -> tuple[str, str] | None:
    """(exception name, message) of the first error a code cell's outputs hold, or None."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return output.get("ename", ""), output.get("evalue", "")
    return None


def assess(nb: NotebookNode, timed_out: set[int] = frozenset(), died: tuple[int, str] | None = None,
           timeout: int | None = None) -> list[Result]:
    """Grade every graded code cell of an executed notebook (introduced in: How to use this book)."""
    results, previous = [], -1
    for index, cell in enumerate(nb.cells):
        meta = nbgrader(cell)
        if cell.cell_type != "code" or not meta.get("grade"):
            continue
        max_points = float(meta.get("points", 0) or 0)
        result = Result(meta.get("grade_id") or f"cell-{index}", index, 0.0, max_points, "error")
        answer_cells = [nb.cells[j] for j in range(previous + 1, index) if nbgrader(nb.cells[j]).get("solution")]
        errors = [e for e in map(_error, answer_cells + [cell]) if e]
        error = _error(cell)
        previous = index
        if died is not None and index >= died[0]:
            result.hint = (f"the kernel died in this cell ({died[1]})" if index == died[0]
                           else f"not run: the kernel died in cell {died[0]} ({died[1]})")
        elif index in timed_out:
            result.hint = f"the cell ran past the time limit ({timeout} s): an endless loop, or too much work?"
        elif any(name == "NotImplementedError" for name, _ in errors):
            result.status = "not attempted"
            result.hint = "the answer still raises NotImplementedError: replace the stub with your code"
        elif error is None:
            result.points, result.status = max_points, "passed"
        elif error[0] in ("ExerciseError", "AssertionError"):
            result.status, result.hint = "failed", error[1] or "a test failed (an assert without a message)"
        else:
            result.hint = f"{error[0]}: {error[1]}"[:500]
        results.append(result)
    return results


def grade(path: Path | str, timeout: int = 120, source: Path | str | None = None) -> Report:
    """Run the notebook at ``path`` and grade it; ``timeout`` is per cell, in seconds.

    Introduced in: How to use this book. ``source`` is the instructor notebook whose graded
    cells replace the submission's (see `restore_graded_cells`).
    """
    path = Path(path)
    nb = read_notebook(path)
    if source is not None:
        restore_graded_cells(nb, read_notebook(Path(source)))
    timed_out, died = execute(nb, path.resolve().parent, timeout)
    results = assess(nb, timed_out, died, timeout)
    graded = {r.cell for r in results}
    other = [f"cell {i}: {e[0]}: {e[1]}"[:300] for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and i not in graded and not nbgrader(c).get("solution") and (e := _error(c))]
    return Report(str(path), results, other)


def main(argv: list[str] | None = None) -> int:
    """The command line (introduced in: How to use this book)."""
    parser = argparse.ArgumentParser(prog="python -m course_lib.grade", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path, help="the notebook to grade, e.g. student/05_vae.ipynb")
    parser.add_argument("--timeout", type=int, default=120, help="seconds each cell may run (default 120)")
    parser.add_argument("--json", type=Path, help="also write the report to this JSON file")
    parser.add_argument("--source", type=Path, help="instructor notebook whose graded cells (with hidden tests) "
                                                    "replace the submission's")
    args = parser.parse_args(argv)
    try:
        report = grade(args.notebook, args.timeout, args.source)
    except GradingError as err:
        print(f"grading failed: {err}", file=sys.stderr)
        return 1
    print(report)
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        except OSError as err:
            print(f"grading failed: cannot write the JSON report {args.json} ({err}); "
                  "check that its folder exists and is writable", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
