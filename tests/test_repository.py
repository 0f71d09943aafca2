"""Repository-wide invariants: clean notebooks, one repository URL, the TOC, shipped checkpoints."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from course_lib import _about, notebook, read_record, runs

ROOT = Path(__file__).resolve().parent.parent


def test_there_are_chapters() -> None:
    assert notebook.notebooks(), "no chapter notebooks under book/"


@pytest.mark.parametrize("path", notebook.notebooks(), ids=lambda p: p.name)
def test_notebook_is_stored_clean_with_the_standard_setup_cell(path: Path) -> None:
    assert notebook.problems(path) == [], f"run `python -m course_lib.notebook` to fix {path.name}"


def test_problems_are_detected(tmp_path: Path) -> None:
    nb = json.loads(notebook.notebooks()[0].read_text())
    nb["cells"][-1] = {"cell_type": "code", "metadata": {}, "source": "1", "execution_count": 3,
                       "outputs": [{"output_type": "execute_result", "data": {"text/plain": "1"},
                                    "metadata": {}, "execution_count": 3}]}
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    first["source"] = "import course_lib"
    bad = tmp_path / "bad.ipynb"
    bad.write_text(json.dumps(nb))
    found = notebook.problems(bad)
    assert any("setup cell" in p for p in found) and any("outputs" in p for p in found)
    notebook.sync(bad)
    assert notebook.problems(bad) == []
    cells = json.loads(bad.read_text())["cells"]
    at = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    first = cells[at]
    for drifted in ("".join(first["source"]) + "\ntorch.manual_seed(1)",            # a line after setup()
                    "".join(first["source"]).replace("seed=0", "seed=7")):       # another seed is fine
        nb = json.loads(bad.read_text())
        nb["cells"][at]["source"] = drifted
        bad.write_text(json.dumps(nb))
        assert notebook.problems(bad) == ([] if "seed=7" in drifted else ["first code cell is not the standard setup cell"])


def test_no_cell_prints_the_value_of_its_last_glue() -> None:
    """`glue` returns its value, so a cell that ends with a bare `glue(...)` shows a stray number."""
    for path in notebook.notebooks():
        for cell in json.loads(path.read_text())["cells"]:
            last = ([line for line in "".join(cell["source"]).splitlines() if line.strip()] or [""])[-1]
            if cell["cell_type"] == "code" and last.startswith("glue("):
                assert last.rstrip().endswith(";"), f"{path.name}: end `{last.strip()}` with `;`"


def test_repository_url_lives_in_one_place() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == _about.REPO_URL
    assert config["repository"]["branch"] == _about.BRANCH
    assert config["repository"]["path_to_book"] == ""
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    for path in notebook.notebooks():
        cells = json.loads(path.read_text())["cells"]
        setup = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert f'REPO_URL = "{_about.REPO_URL}"' in setup, path.name


def test_book_config_fails_loudly() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "force"
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    for pattern in (".venv", "_build", "course_lib", "tests"):
        assert pattern in config["exclude_patterns"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "jupyter-book build . -W -n --keep-going" in ci


def _toc_files(node) -> list[str]:
    files = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                files.append(value)
            else:
                files += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            files += _toc_files(item)
    return files


def test_every_chapter_is_in_the_toc_and_every_toc_entry_exists() -> None:
    listed = _toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").is_file() for ext in (".md", ".ipynb")), f"{entry} missing"
    for path in notebook.notebooks():
        assert str(path.relative_to(ROOT).with_suffix("")) in listed, f"{path.name} not in _toc.yml"


def test_retrain_lists_every_shipped_model() -> None:
    out = subprocess.run([sys.executable, "-m", "course_lib.retrain", "--list"], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    for name in runs.SHIPPED:
        assert name in out
    with pytest.raises(KeyError, match="known:"):
        runs.get("no_such_model")


@pytest.mark.usefixtures("data_available")
@pytest.mark.parametrize("name", sorted(runs.SHIPPED))
def test_shipped_checkpoint_loads_without_training(name: str, monkeypatch) -> None:
    """Each registered model's committed checkpoint is finished, complete and matches its current config."""
    monkeypatch.delenv("VAE_COURSE_RETRAIN", raising=False)
    if runs.get(name).ship_weights:
        model, record = runs.trained(name, device="cpu", allow_training=False)
    else:                                     # a sweep member ships its record alone
        record = read_record(runs.checkpoint_dir() / name)
        assert record["weights"] is False and not (runs.checkpoint_dir() / f"{name}.safetensors").exists()
    assert record["name"] == name and not record["smoke"], f"{name}: shipped checkpoint is a smoke run"
    assert record["finished"] and record["config_hash"] == runs.get(name).hash()
    for key in ("config", "device", "device_name", "wall_time_s", "epochs", "images_seen", "parameters",
                "metrics", "history", "versions", "tensors_sha256"):
        assert key in record, f"{name}: record lacks {key}"
    assert record["device"] in {"cpu", "cuda", "mps"} and record["wall_time_s"] > 0


def test_records_and_the_tracked_tree_fit_the_size_budget() -> None:
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=ROOT, check=True).stdout
    files = [ROOT / f for f in tracked.decode().split("\0") if f and (ROOT / f).is_file()]
    for path in files:
        if path.suffix == ".json" and path.parent.name == "checkpoints":
            assert path.stat().st_size <= 64 * 1024, f"{path.name} is over 64 KB: thin its history"
    total = sum(p.stat().st_size for p in files)
    assert total < 45 * 1024 * 1024, f"the tracked tree is {total / 2**20:.1f} MB, over the 45 MB budget"


LIBRARY = sorted((ROOT / "course_lib").rglob("*.py"))


@pytest.mark.parametrize("path", sorted((ROOT / "course_lib" / "models").glob("*.py")), ids=lambda p: p.name)
def test_model_files_know_nothing_of_training_data_or_checkpoints(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            parts = set(name.split("."))
            assert not parts & {"trainer", "checkpoint", "resume", "data", "env", "runs"}, \
                f"{path.name} imports {name}: models are architecture only"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT / "course_lib")))
def test_library_files_stay_small_and_every_public_function_names_its_chapter(path: Path) -> None:
    lines = path.read_text().splitlines()
    assert len(lines) <= 260, f"{path.name} has {len(lines)} lines: split it (the layout keeps files ~250 lines)"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            doc = ast.get_docstring(node) or ""
            assert "ntroduced in" in doc, f"{path.name}: {node.name}'s docstring does not name its chapter"


def test_image_sizes_are_written_only_in_nets_and_dsprites() -> None:
    import re

    allowed = {"nets.py", "dsprites.py"}
    for path in LIBRARY:
        if path.name in allowed or path.parent.name == "vi":
            continue
        code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())
        code = re.sub(r'""".*?"""', "", code, flags=re.S)
        assert not re.search(r"(?<![\w.])(784|28|49)(?![\w.])", code), f"{path.name} writes an MNIST size as a literal"


def test_no_module_reaches_into_another_modules_privates() -> None:
    for path in LIBRARY + sorted((ROOT / "book").glob("*.ipynb")):
        text = path.read_text()
        assert "trainer._interactive" not in text and "import _interactive" not in text, path.name


@pytest.mark.parametrize("path", notebook.notebooks(), ids=lambda p: p.name)
def test_directive_titles_render(path: Path) -> None:
    """A backtick inside a ```{directive} title silently breaks the fence (CommonMark): forbid it."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("```{"):
                assert "`" not in line[3:], f"{path.name}: backtick in directive line {line!r}"


# ----------------------------------------------------------------------------- control characters
def control_characters(text: str) -> list[tuple[int, str]]:
    """(line, context) for every control character in ``text`` other than a newline or a tab.

    A JSON escape such as ``"\\v"`` written where ``"\\\\v"`` was meant turns ``\\varepsilon``
    into a vertical tab followed by "arepsilon": the page then shows "Math input error".
    """
    found = []
    for number, line in enumerate(text.split("\n"), start=1):
        for at, char in enumerate(line):
            if char != "\t" and unicodedata.category(char) == "Cc":
                found.append((number, repr(line[max(0, at - 15):at + 15])))
    return found


def book_sources() -> list[tuple[str, str]]:
    """(where, text) for every notebook cell source and every Markdown file under book/."""
    sources = []
    for path in notebook.notebooks():
        for index, cell in enumerate(json.loads(path.read_text(encoding="utf-8"))["cells"]):
            sources.append((f"{path.relative_to(ROOT)} cell {index}", "".join(cell["source"])))
    for path in sorted((ROOT / "book").rglob("*.md")):
        if not {"_build", "_static", ".ipynb_checkpoints"} & set(path.parts):
            sources.append((str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")))
    return sources


def test_no_control_characters_in_book_sources() -> None:
    """Only newlines and tabs: any other control character is a mangled escape (a "\\v" for "\\\\v")."""
    sources = book_sources()
    assert any(where.endswith(".md") for where, _ in sources) and any("cell" in where for where, _ in sources)
    bad = [f"{where}, line {line}: {context}" for where, text in sources for line, context in control_characters(text)]
    assert bad == [], "control characters (write \\\\varepsilon, not \\varepsilon, in JSON):\n" + "\n".join(bad)


def test_control_characters_are_detected() -> None:
    planted = "noise $" + "\v" + "arepsilon$ and a tab\tand\r\na form feed " + "\f" + "rac"
    assert [line for line, _ in control_characters(planted)] == [1, 1, 2]
    assert control_characters("$\\varepsilon$\tfine\n") == []


@pytest.mark.parametrize("path", notebook.notebooks(), ids=lambda p: p.name)
def test_graded_exercises_are_marked_for_nbgrader_and_declared(path: Path) -> None:
    """Markers balanced, metadata complete, every graded cell named after an {exercise} label, and
    every answer cell declares its difficulty and time with `exercise_header`."""
    import nbformat

    from course_lib import student

    nb = nbformat.read(path, as_version=4)
    assert student.problems(nb) == [], path.name
    labels = {line.split(":label:")[1].strip() for c in nb.cells if c.cell_type == "markdown"
              for line in c.source.splitlines() if line.startswith(":label:")}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            assert meta["grade_id"] in labels, f"{path.name}: graded cell {meta['grade_id']} has no {{exercise}}"
        if meta.get("solution") and cell.cell_type == "code":
            assert f'exercise_header("{meta["grade_id"].removesuffix("-answer")}"' in cell.source, \
                f"{path.name}: answer cell {meta['grade_id']} does not call exercise_header"


def test_the_instructor_guide_lists_every_autograded_exercise_as_declared() -> None:
    import re

    guide = (ROOT / "book" / "instructor_guide.md").read_text()
    rows = {m[0]: (m[1], int(m[2]), int(m[3])) for m in
            re.findall(r"^\| (ex-[\w-]+) \| [^|]+ \| (\w+) \| (\d+) \| (\d+) \|$", guide, flags=re.M)}
    declared = {}
    for path in notebook.notebooks():
        cells = json.loads(path.read_text())["cells"]
        points = {c["metadata"]["nbgrader"]["grade_id"]: c["metadata"]["nbgrader"]["points"] for c in cells
                  if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
        for cell in cells:
            for ex, difficulty, minutes in re.findall(r'exercise_header\("([^"]+)", "(\w+)", (\d+)\)',
                                                      "".join(cell["source"])):
                if ex in points:
                    declared[ex] = (difficulty, int(minutes), points[ex])
    assert rows == declared, "update the table in book/instructor_guide.md"


def test_the_student_edition_config_differs_only_where_it_should() -> None:
    main = yaml.safe_load((ROOT / "_config.yml").read_text())
    student = yaml.safe_load((ROOT / "_config_student.yml").read_text())
    assert student["title"].endswith("(student edition)")
    extra = {k: student["sphinx"]["config"].pop(k) for k in ("hide_solutions", "course_student_edition")}
    assert extra == {"hide_solutions": True, "course_student_edition": True}
    student["title"] = main["title"]
    assert student == main, "_config_student.yml must equal _config.yml apart from the student settings"


@pytest.mark.parametrize("path", notebook.notebooks(), ids=lambda p: p.name)
def test_every_chapter_says_how_long_it_runs_and_whether_it_trains(path: Path) -> None:
    """The box at the top reads what `timing.report` glues at the end (measured or marked estimated)."""
    cells = json.loads(path.read_text())["cells"]
    top = "".join(cells[0]["source"])
    assert "{admonition} Running this chapter" in top, f"{path.name}: the first cell needs the run-time box"
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    call = re.search(r"timing\.report\(chapter_start, (.+?), [\w.]*device\)", code)
    assert call, f"{path.name}: call timing.report(chapter_start, names, device) at the end"
    loads = call.group(1) != "[]"
    keys = ["rt_read"] + (["rt_models", "rt_train", "rt_train_device", "rt_t4", "rt_tflop"] if loads else [])
    for key in keys:
        assert re.search(r"\{glue:text\}`" + key + "[`:]", top), f"{path.name}: the box should show {key}"
    assert ("loads no shipped model" in top) != loads, f"{path.name}: the box says the wrong thing about loading"


@pytest.mark.parametrize("path", notebook.notebooks(), ids=lambda p: p.name)
def test_every_exercise_states_its_difficulty_and_time(path: Path) -> None:
    """Each {exercise} says how hard it is and how long it takes; an autograded one says the same
    as its answer cell's `exercise_header`."""
    import re

    cells = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"]]
    header = {m[0]: (m[1], int(m[2])) for s in cells for m in re.findall(r'exercise_header\("([^"]+)", "(\w+)", (\d+)\)', s)}
    for text in cells:
        for label, body in re.findall(r"```\{exercise\}[^\n]*\n:label: ([\w-]+)\n(.*?)```", text, flags=re.S):
            stated = re.search(r"\*\*Difficulty:\*\* (easy|medium|hard) · \*\*Time:\*\* about (\d+) min", body)
            assert stated, f"{path.name}: exercise {label} does not state its difficulty and time"
            if label in header:
                assert (stated[1], int(stated[2])) == header[label], f"{path.name}: {label} disagrees with its header"
