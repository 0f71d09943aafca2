"""A small Sphinx extension for the course book.

Theme defaults: pydata-sphinx-theme logs "Got invalid theme mode" on every page unless
``default_mode`` is set, and sphinx-book-theme shows a search field in the sidebar as well as
a search button in the header: we set the mode and keep the header button alone.

sphinx-thebe 0.3.1 registers its inline configuration script once per `env-before-read-docs`
event, which Jupyter Book 1 fires more than once, so every page declared ``THEBE_JS_URL``
twice and threw a JavaScript error. We drop exact duplicates from each page's scripts.
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files", [])
    seen, unique = set(), []
    for script in scripts:
        key = (getattr(script, "filename", None) or "",  # None and "" both mean an inline script
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique  # in place: the builder and other handlers hold this same list


def _theme_defaults(app, config) -> None:
    context = dict(config.html_context or {})
    context.setdefault("default_mode", "light")      # pydata-sphinx-theme reads it from the context
    config.html_context = context
    if not config.html_sidebars:
        config.html_sidebars = {"**": ["navbar-logo.html", "icon-links.html", "sbt-sidebar-nav.html"]}


def _student_edition(app, doctree) -> None:
    """In the student edition (``course_student_edition: true``) the code of an exercise's answer
    shows what a student's notebook holds: the solution replaced by the stub, hidden tests gone."""
    if not app.config.course_student_edition:
        return
    from docutils import nodes

    from course_lib.markers import CODE_STUB, _replace_regions

    for block in list(doctree.findall(nodes.literal_block)):
        text = block.astext()
        if "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text:
            continue
        lines = text.splitlines(keepends=True)
        lines, _ = _replace_regions(lines, "SOLUTION", CODE_STUB)
        lines, _ = _replace_regions(lines, "HIDDEN TESTS", [])
        student = "".join(lines)
        block.replace_self(nodes.literal_block(student, student, **block.attributes))


def setup(app):
    app.add_config_value("course_student_edition", False, "env")
    app.connect("config-inited", _theme_defaults)
    app.connect("doctree-read", _student_edition)
    # last, after sphinx.ext.mathjax (priority 500) has added MathJax to pages that have maths
    app.connect("html-page-context", _dedupe_scripts, priority=999)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
