"""A small Sphinx extension for the course book.

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


def setup(app):
    # last, after sphinx.ext.mathjax (priority 500) has added MathJax to pages that have maths
    app.connect("html-page-context", _dedupe_scripts, priority=999)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
