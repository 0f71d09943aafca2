"""The Colab setup cell, driven as a student meets it: a fake `google.colab` module, a local
repository with a release tag as the clone source, and a stand-in for pip (so nothing is
installed into the test environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib import notebook
from course_lib._about import RELEASE, REPO_URL


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.fixture()
def colab(tmp_path: Path):
    """Returns run(pip_ok=True) -> (exit code, output) of the setup cell in a fake Colab."""
    origin = tmp_path / "origin"
    (origin / "course_lib").mkdir(parents=True)
    for tag in ("v0.0.1", RELEASE):                    # an older release, then the pinned one
        (origin / "course_lib" / "__init__.py").write_text(
            f"__version__ = {tag[1:]!r}\n"
            "def setup(seed=0):\n    print('fake course', __version__, 'from', __file__)\n")
        _git("init", "-q", cwd=origin) if tag == "v0.0.1" else None
        _git("add", "-A", cwd=origin)
        _git("commit", "-q", "-m", tag, cwd=origin)
        _git("tag", tag, cwd=origin)
    fake = tmp_path / "site" / "google" / "colab"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    home = tmp_path / "content" / "vae-course"
    pip_log = tmp_path / "pip.log"

    def run(pip_ok: bool = True, repo: str = str(origin)) -> tuple[int, str]:
        pip = f'[sys.executable, "-c", "import sys; open({str(pip_log)!r}, \'a\').write(sys.argv[1] + chr(10)); sys.exit({0 if pip_ok else 1})"]'
        source = notebook.setup_cell_source()
        for old, new in ((f'REPO_URL = "{REPO_URL}"', f'REPO_URL = {repo!r}'),
                         ('"/content/vae-course"', repr(str(home))),
                         ('[sys.executable, "-m", "pip", "install", "-q", "-e"]', pip)):
            assert old in source
            source = source.replace(old, new)
        code = "import google.colab\n" + source
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(fake.parent.parent)})
        return done.returncode, done.stdout + done.stderr

    run.home, run.pip_log, run.origin = home, pip_log, origin
    return run


def test_a_fresh_runtime_gets_the_pinned_release_installed_and_says_so(colab) -> None:
    code, out = colab()
    assert code == 0, out
    assert f"fake course {RELEASE[1:]} from {colab.home}" in out
    assert colab.pip_log.read_text().splitlines() == [str(colab.home)]


def test_running_the_cell_again_changes_nothing(colab) -> None:
    colab()
    (colab.home / "marker").write_text("kept")
    code, out = colab()
    assert code == 0 and (colab.home / "marker").exists(), "a good copy must not be cloned again"
    assert len(colab.pip_log.read_text().splitlines()) == 1, "nor installed again"


@pytest.mark.parametrize("damage", ["stale", "empty", "partial"])
def test_a_stale_empty_or_partial_copy_is_repaired(colab, damage: str) -> None:
    if damage == "stale":                             # an older release checked out
        subprocess.run(["git", "clone", "-q", "--branch", "v0.0.1", str(colab.origin), str(colab.home)], check=True)
    elif damage == "empty":
        colab.home.mkdir(parents=True)
    else:                                             # an interrupted clone: files but no repository
        (colab.home / "course_lib").mkdir(parents=True)
        (colab.home / "course_lib" / "__init__.py").write_text("raise ImportError('half a copy')")
    code, out = colab()
    assert code == 0 and f"fake course {RELEASE[1:]}" in out, out


def test_a_failed_install_says_what_to_do_and_is_retried(colab) -> None:
    code, out = colab(pip_ok=False)
    assert code != 0 and "Course setup stopped: pip could not install the course" in out
    assert "Traceback" not in out, "one sentence, not a traceback"
    code, out = colab()
    assert code == 0 and f"fake course {RELEASE[1:]}" in out
    assert len(colab.pip_log.read_text().splitlines()) == 2


def test_a_missing_repository_is_one_sentence(colab, tmp_path: Path) -> None:
    code, out = colab(repo=str(tmp_path / "no-such-repo"))
    assert code != 0 and f"could not download release {RELEASE}" in out and "Traceback" not in out
