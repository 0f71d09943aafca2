"""Keep the chapter notebooks consistent: the shared setup cell, and no stored outputs.

Run ``python -m course_lib.notebook`` after editing `_about.REPO_URL` or adding a chapter: it
rewrites the first code cell of every ``book/**/*.ipynb`` from `setup_cell_source` and
strips outputs. ``--check`` only reports (the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._about import RELEASE, REPO_URL

ROOT = Path(__file__).resolve().parent.parent


def setup_cell_source(seed: int = 0) -> str:
    """The first code cell of every chapter (introduced in: How to use this book).

    On Colab it installs the course at `RELEASE`, checks the copy on every run (a missing,
    empty, partial or stale folder is replaced; a failed install is retried) and turns each
    failure into one sentence that says what to do. Elsewhere it only calls `course_lib.setup()`.
    """
    return f'''# Setup, the same in every chapter. On Colab this installs the course at the release the book
# was built from, checks the copy every time it runs and says what it installed; elsewhere the
# course is already installed (see "How to use this book").
import os, shutil, subprocess, sys

REPO_URL = "{REPO_URL}"  # written by `python -m course_lib.notebook` from course_lib/_about.py
RELEASE = "{RELEASE}"
if "google.colab" in sys.modules:
    HOME, PIP = "/content/vae-course", [sys.executable, "-m", "pip", "install", "-q", "-e"]

    def run(cmd, failure):
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:]
            raise SystemExit(f"Course setup stopped: {{failure}} ({{' '.join(last)}}). Run this cell again.")

    tag = subprocess.run(["git", "-C", HOME, "describe", "--tags", "--exact-match"], capture_output=True, text=True)
    if tag.returncode or tag.stdout.strip() != RELEASE:  # missing, empty, partial or stale: a clean copy
        shutil.rmtree(HOME, ignore_errors=True)
        run(["git", "clone", "-q", "--depth", "1", "--branch", RELEASE, REPO_URL, HOME],
            f"could not download release {{RELEASE}} of {{REPO_URL}}; check the internet connection")
    if not os.path.isfile(os.path.join(HOME, ".installed")):  # an install that failed is retried
        run([*PIP, HOME], "pip could not install the course; if this repeats, use Runtime > Restart session")
        open(os.path.join(HOME, ".installed"), "w").close()
    if getattr(sys.modules.get("course_lib"), "__version__", RELEASE[1:]) != RELEASE[1:]:
        raise SystemExit("Another version of the course is already imported: use Runtime > Restart "
                         "session, then run this cell again.")
    if HOME not in sys.path:
        sys.path.insert(0, HOME)

import course_lib

settings = course_lib.setup(seed={seed})'''


def notebooks(root: Path = ROOT) -> list[Path]:
    """Every chapter notebook under ``book/`` (build folders and checkpoints excluded).

    Introduced in: How to use this book.
    """
    return sorted(p for p in (root / "book").rglob("*.ipynb")
                  if "_build" not in p.parts and ".ipynb_checkpoints" not in p.parts)


def _first_code_cell(nb: dict) -> dict | None:
    return next((c for c in nb.get("cells", []) if c.get("cell_type") == "code"), None)


def _seed_of(cell: dict | None) -> int:
    """The seed a setup cell passes to ``course_lib.setup(seed=...)`` (0 when it passes none)."""
    source = "".join(cell["source"]) if cell is not None else ""
    if "course_lib.setup(seed=" not in source:
        return 0
    return int(source.split("course_lib.setup(seed=")[1].split(")")[0])


def problems(path: Path) -> list[str]:
    """What is wrong with one notebook: stored outputs, or a setup cell that drifted.

    Introduced in: How to use this book.
    """
    nb = json.loads(path.read_text())
    found = []
    cell = _first_code_cell(nb)
    if cell is None or "".join(cell["source"]) != setup_cell_source(_seed_of(cell)):
        found.append("first code cell is not the standard setup cell")
    elif "hide-input" not in cell.get("metadata", {}).get("tags", []):
        found.append("the setup cell is not folded in the book (tag hide-input)")
    with_outputs = [i for i, c in enumerate(nb["cells"])
                    if c.get("cell_type") == "code" and (c.get("outputs") or c.get("execution_count"))]
    if with_outputs:
        found.append(f"cells {with_outputs[:5]} carry outputs or execution counts")
    return found


def sync(path: Path) -> None:
    """Rewrite the setup cell (keeping its seed) and strip every output (introduced in: How to use this book)."""
    nb = json.loads(path.read_text())
    cell = _first_code_cell(nb)
    source = setup_cell_source(_seed_of(cell)).splitlines(keepends=True)
    if cell is None:
        cell = {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}
        nb["cells"].insert(0, cell)
    cell["source"] = source
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if "hide-input" not in tags:                            # the book folds the Colab plumbing
        tags.append("hide-input")
    for c in nb["cells"]:
        if c.get("cell_type") == "code":
            c["outputs"], c["execution_count"] = [], None
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    """The command line (introduced in: How to use this book)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report problems, change nothing")
    args = parser.parse_args(argv)
    bad = 0
    for path in notebooks():
        if args.check:
            for problem in problems(path):
                print(f"{path.relative_to(ROOT)}: {problem}")
                bad += 1
        else:
            sync(path)
            print(f"synced {path.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
