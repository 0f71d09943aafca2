"""Student export and autograder, on a small synthetic notebook (numbers only, light kernels)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from course_lib import grade as grader
from course_lib import student

ROOT = Path(__file__).resolve().parent.parent


def _meta(grade_id: str, *, grade: bool = False, solution: bool = False, locked: bool = False,
          points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


SQUARE_ANSWER = """def square(x):
    ### BEGIN SOLUTION
    return x * x
    ### END SOLUTION"""
SQUARE_TESTS = """check_close(square(3.0), 9.0, "square(3)")
### BEGIN HIDDEN TESTS
check_close(square(-2.0), 4.0, "square(-2)")
### END HIDDEN TESTS"""
NEG_LOG = """def neg_log(p):
    ### BEGIN SOLUTION
    return -math.log(p)
    ### END SOLUTION


check_close(neg_log(0.5), math.log(2), "neg_log(0.5)")"""


def solution_notebook() -> nbformat.NotebookNode:
    """Two graded exercises (answer + locked tests; answer and check in one cell), a hidden test,
    a sphinx-exercise solution block and an nbgrader solution markdown cell."""
    return new_notebook(cells=[
        new_code_cell("import math\n\nfrom course_lib.exercises import check_close"),
        new_markdown_cell("```{exercise} Squares\n:label: ex-square\n\nWrite `square(x)`.\n```\n\n"
                          "```{solution} ex-square\n:class: dropdown\n\nMultiply x by itself.\n```"),
        new_code_cell(SQUARE_ANSWER, metadata=_meta("square-answer", solution=True)),
        new_code_cell(SQUARE_TESTS, metadata=_meta("square", grade=True, locked=True, points=2)),
        new_markdown_cell("Why is a square never negative?"),
        new_markdown_cell("A product of two numbers of the same sign is positive.",
                          metadata=_meta("square-why", solution=True)),
        new_code_cell(NEG_LOG, metadata=_meta("neg-log", grade=True, solution=True, points=3)),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture
def kernel_env(monkeypatch) -> None:
    """The kernel inherits the environment: make sure it imports this checkout's course_lib."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def write(nb: nbformat.NotebookNode, path: Path) -> Path:
    nbformat.write(nb, path)
    return path


# ----------------------------------------------------------------------------- export (no kernel)
def test_student_copy_clears_solutions_and_removes_hidden_tests_and_solution_text() -> None:
    nb, counts = student.student_notebook(solution_notebook())
    text = "\n".join(c.source for c in nb.cells)
    for secret in ("x * x", "-math.log(p)", "HIDDEN", "square(-2.0)", "Multiply x by itself",
                   "same sign is positive", "{solution}"):
        assert secret not in text, secret
    assert "def square(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()" in nb.cells[2].source
    assert nb.cells[3].source == 'check_close(square(3.0), 9.0, "square(3)")'  # the visible test stays
    assert nb.cells[5].source == student.MARKDOWN_STUB
    assert "```{exercise} Squares" in nb.cells[1].source
    assert student.nbgrader(nb.cells[3]) == _meta("square", grade=True, locked=True, points=2)["nbgrader"]
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert counts == {"solutions cleared": 2, "hidden tests removed": 1, "solution texts removed": 2}


def test_gated_solution_spanning_cells_is_removed() -> None:
    nb = new_notebook(cells=[
        new_markdown_cell("Intro.\n\n```{solution-start} ex-a\n:class: dropdown\n```\n\nThe idea."),
        new_code_cell("answer = 42"),
        new_markdown_cell("```{solution-end}\n```\n\nAfter the solution."),
        new_markdown_cell("````{admonition} Note\n```{solution} ex-b\nhidden\n```\n````"),
        new_markdown_cell("````md\n```{solution} ex-c\nshown as an example\n```\n````"),
    ])
    out, _ = student.student_notebook(nb)
    assert [c.source for c in out.cells] == [
        "Intro.", "After the solution.", "````{admonition} Note\n````",
        "````md\n```{solution} ex-c\nshown as an example\n```\n````"]  # a code block is literal text


@pytest.mark.parametrize("break_it,problem", [
    (lambda nb: setattr(nb.cells[2], "source", SQUARE_ANSWER.replace("    ### END SOLUTION", "")),
     "cell 2: ### BEGIN SOLUTION without a matching ### END SOLUTION"),
    (lambda nb: setattr(nb.cells[3], "source", SQUARE_TESTS.replace("### BEGIN HIDDEN TESTS\n", "")),
     "cell 3: line 3: ### END HIDDEN TESTS without a matching ### BEGIN HIDDEN TESTS"),
    (lambda nb: setattr(nb.cells[1], "source", nb.cells[1].source[:-4]),
     "cell 1: a ```{solution} block is never closed"),
    (lambda nb: nb.cells[3].metadata["nbgrader"].pop("points"), "cell 3: a graded cell"),
    (lambda nb: nb.cells[6].metadata.pop("nbgrader"), "cell 6: solution markers in a cell whose nbgrader"),
])
def test_check_reports_unbalanced_markers(tmp_path, capsys, break_it, problem) -> None:
    good = write(solution_notebook(), tmp_path / "good.ipynb")
    assert student.main([str(good), "--check"]) == 0
    nb = solution_notebook()
    break_it(nb)
    bad = write(nb, tmp_path / "bad.ipynb")
    assert student.main([str(bad), "--check"]) == 1
    assert problem in capsys.readouterr().out
    assert student.main([str(bad), "--out", str(tmp_path / "student")]) == 1  # never exported half-cleared
    assert not (tmp_path / "student" / "bad.ipynb").exists()
    with pytest.raises(ValueError, match="fixing first"):
        student.student_notebook(nb)


def test_restore_graded_cells_puts_the_hidden_tests_back() -> None:
    submission, _ = student.student_notebook(solution_notebook())
    submission.cells[3].source = "pass  # the student deleted the test"
    assert grader.restore_graded_cells(submission, solution_notebook()) == 1
    assert "square(-2.0)" in submission.cells[3].source


def test_grading_fails_clearly_without_a_notebook(tmp_path, capsys) -> None:
    assert grader.main([str(tmp_path / "missing.ipynb")]) == 1
    assert "missing.ipynb not found" in capsys.readouterr().err
    (tmp_path / "broken.ipynb").write_text("{ not json")
    assert grader.main([str(tmp_path / "broken.ipynb")]) == 1
    assert "cannot be read as a Jupyter notebook" in capsys.readouterr().err


# ----------------------------------------------------------------------------- grading (one kernel each)
def test_solution_notebook_scores_full_marks(tmp_path, kernel_env) -> None:
    report = grader.grade(write(solution_notebook(), tmp_path / "solution.ipynb"), timeout=60)
    assert [(r.grade_id, r.points, r.status) for r in report.results] == [("square", 2, "passed"),
                                                                           ("neg-log", 3, "passed")]
    assert (report.total, report.max_total, report.other_errors) == (5, 5, [])


def test_student_notebook_scores_zero_and_says_not_attempted(tmp_path, kernel_env, capsys) -> None:
    assert student.main([str(write(solution_notebook(), tmp_path / "ch.ipynb")), "--out", str(tmp_path / "student")]) == 0
    path, report_file = tmp_path / "student" / "ch.ipynb", tmp_path / "report.json"
    assert grader.main([str(path), "--timeout", "60", "--json", str(report_file)]) == 0  # completed: exit 0
    out = capsys.readouterr().out
    assert re.search(r"square +0 / 2 +not attempted", out) and "Total: 0 / 5" in out
    report = json.loads(report_file.read_text())
    assert [e["status"] for e in report["exercises"]] == ["not attempted", "not attempted"]
    assert (report["total"], report["max_total"], report["other_errors"]) == (0, 5, [])


def test_a_planted_mistake_gets_its_hint_and_a_short_error_block(tmp_path, kernel_env) -> None:
    nb = solution_notebook()
    nb.cells[6].source = NEG_LOG.replace("return -math.log(p)", "return math.log(p)")
    nb = grader.read_notebook(write(nb, tmp_path / "wrong.ipynb"))
    timed_out, died = grader.execute(nb, tmp_path, timeout=60)
    results = grader.assess(nb, timed_out, died)
    assert [(r.grade_id, r.points, r.status) for r in results] == [("square", 2, "passed"), ("neg-log", 0, "failed")]
    assert results[1].hint.startswith("neg_log(0.5) has the wrong sign")
    error = nb.cells[6].outputs[-1]
    assert error.ename == "ExerciseError" and len(error.traceback) <= 6  # the red block, no traceback
    assert "Traceback" not in "".join(error.traceback) and str(tmp_path) not in "".join(error.traceback)
