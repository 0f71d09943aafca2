"""The student edition of the web book: built from the same notebooks with `_config_student.yml`,
it shows each answer cell as a student's notebook holds it and no solution at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import notebook

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "student"


@pytest.fixture(scope="module")
def student_html() -> Path:
    """Build the student edition once (the smoke setting, like every notebook under pytest)."""
    jb = Path(sys.executable).with_name("jupyter-book")
    done = subprocess.run([str(jb), "build", ".", "--config", "_config_student.yml", "--path-output", str(OUT),
                           "-W", "-n", "--keep-going"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "VAE_COURSE_SMOKE": "1"}, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return OUT / "_build" / "html"


def _graded(path: Path) -> bool:
    return any(c.get("metadata", {}).get("nbgrader", {}).get("solution")
               for c in json.loads(path.read_text())["cells"])


@pytest.mark.parametrize("path", [p for p in notebook.notebooks() if _graded(p)], ids=lambda p: p.name)
def test_student_pages_hold_stubs_and_no_solutions(student_html: Path, path: Path) -> None:
    page = (student_html / path.relative_to(ROOT).with_suffix(".html")).read_text()
    assert "YOUR CODE HERE" in page and "NotImplementedError" in page
    for leak in ("### BEGIN SOLUTION", "### END SOLUTION", "BEGIN HIDDEN TESTS", 'class="solution'):
        assert leak not in page, f"{path.name}: the student edition shows {leak!r}"
    assert "(student edition)" in page
