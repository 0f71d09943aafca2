"""A small Sphinx extension for the course book.

sphinx-thebe 0.3.1 registers its inline configuration script once per `env-before-read-docs`
event, which Jupyter Book 1 fires more than once, so every page declared ``THEBE_JS_URL``
twice and threw a JavaScript error. We drop exact duplicates from each page's scripts.
"""

from __future__ import annotations


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (str(script), tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
