"""A real browser reads the built book: maths typeset, figures load, Colab link right, no broken link."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

from course_lib import _about

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "book/00_toolkit"

pytestmark = pytest.mark.browser


def open_page(browser, url: str):
    """Open ``url``; collect JavaScript errors and same-origin requests that failed or returned an error."""
    page = browser.new_page()
    failures: list[str] = []
    page.on("pageerror", lambda err: failures.append(f"JavaScript error: {err}"))
    # console errors from scripts ("invalid theme mode" and the like); a resource that failed to load
    # is reported by URL below when it is the book's own, and not twice
    page.on("console", lambda msg: failures.append(f"console error: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
    origin = urlparse(url).netloc
    page.on("requestfailed", lambda r: failures.append(f"{r.url} ({r.failure})")
            if urlparse(r.url).netloc == origin else None)
    page.on("response", lambda r: failures.append(f"{r.url} -> HTTP {r.status}")
            if urlparse(r.url).netloc == origin and r.status >= 400 else None)
    page.goto(url, wait_until="networkidle")
    return page, failures


def wait_for_maths(page) -> int:
    page.wait_for_function("() => document.querySelectorAll('mjx-container').length > 0", timeout=20_000)
    unrendered = page.evaluate("() => [...document.querySelectorAll('.math')]"
                               ".filter(e => !e.querySelector('mjx-container')).length")
    assert unrendered == 0, f"{unrendered} maths elements were left untypeset"
    return page.evaluate("() => document.querySelectorAll('mjx-container').length")


def test_landing_page(browser, book_server) -> None:
    page, failures = open_page(browser, f"{book_server}/index.html")
    assert page.url.endswith("book/intro.html"), "index.html should redirect to the landing page"
    assert "Variational Autoencoders" in page.title()
    assert wait_for_maths(page) >= 1
    assert page.locator("h2", has_text="What you will learn").count() == 1
    assert page.locator("h2", has_text="Prerequisites").count() == 1
    search = page.evaluate("() => [...document.querySelectorAll('button.search-button__button')]"
                           ".filter(e => e.offsetParent !== null).length")
    assert search == 1, f"{search} visible search controls on the page: one is enough"
    assert failures == []
    page.close()


def test_chapter_page(browser, book_server) -> None:
    page, failures = open_page(browser, f"{book_server}/{CHAPTER}.html")
    assert wait_for_maths(page) >= 1
    images = page.locator("article img, main img")
    assert images.count() >= 3, "the chapter's figures are missing"
    broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))"
                           ".map(i => i.src)")
    assert broken == [], f"images that did not load: {broken}"
    # The Colab launch link opens this chapter's notebook in this repository.
    owner_repo = urlparse(_about.REPO_URL).path.strip("/")
    colab = [a for a in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
             if "colab.research.google.com" in a]
    expected = f"https://colab.research.google.com/github/{owner_repo}/blob/{_about.BRANCH}/{CHAPTER}.ipynb"
    assert expected in colab, f"Colab links on the page: {colab}"
    assert (ROOT / f"{CHAPTER}.ipynb").is_file()
    assert failures == []
    page.close()


@pytest.mark.parametrize("path", ["index.html", f"{CHAPTER}.html"])
def test_internal_links_resolve_in_the_browser(browser, book_server, path: str) -> None:
    page, _ = open_page(browser, f"{book_server}/{path}")
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    internal = sorted({urldefrag(h)[0] for h in hrefs if h.startswith(book_server)})
    assert internal, "no internal links found"
    bad = [h for h in internal if page.request.get(h).status != 200]
    assert bad == [], f"broken internal links on {path}: {bad}"
    page.close()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("img", "script") and attrs.get("src"):
            self.links.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.links.append(attrs["href"])


def test_no_broken_internal_link_or_anchor_anywhere(book_html: Path) -> None:
    """Every relative link and #anchor in every built page points at something that exists."""
    parsed: dict[Path, _Links] = {}

    def parse(p: Path) -> _Links:
        if p not in parsed:
            parser = _Links()
            parser.feed(p.read_text(errors="replace"))
            parsed[p] = parser
        return parsed[p]

    pages = [p for p in book_html.rglob("*.html") if "_static" not in p.parts]
    broken = []
    for page in pages:
        for link in parse(page).links:
            if re.match(r"^[a-z]+:", link) or link.startswith("//"):
                continue  # external: not checked offline
            target, fragment = urldefrag(urljoin(page.relative_to(book_html).as_posix(), link))
            target = urlparse(target).path  # drop ?v=... cache busters
            file = book_html / target if target else page
            if not file.exists():
                broken.append(f"{page.relative_to(book_html)} -> {link}")
            elif fragment and file.suffix == ".html" and fragment not in parse(file).ids:
                broken.append(f"{page.relative_to(book_html)} -> {link} (no such anchor)")
    assert broken == [], "\n".join(broken[:20])


def test_no_maths_error_on_any_page(browser, book_server, book_html: Path) -> None:
    """MathJax typesets every formula on every built page without an error.

    A mangled escape (a vertical tab where ``\\v`` of ``\\varepsilon`` was meant) or an unknown
    macro still renders, as a red "Math input error" or an error message: an ``mjx-merror`` element.
    """
    pages = sorted(p.relative_to(book_html).as_posix() for p in book_html.rglob("*.html")
                   if not {"_static", "_sources", "_images"} & set(p.parts))
    with_maths, errors = 0, []
    for path in pages:
        page, _ = open_page(browser, f"{book_server}/{path}")
        if page.locator(".math").count():
            with_maths += 1
            page.wait_for_function("() => window.MathJax?.startup?.promise !== undefined", timeout=20_000)
            page.evaluate("() => MathJax.startup.promise.then(() => true)")   # typesetting has finished
            wait_for_maths(page)
        found = page.evaluate("() => ({count: document.querySelectorAll('mjx-merror').length,"
                              " texts: [...document.querySelectorAll('mjx-merror')].slice(0, 3)"
                              "        .map(e => e.getAttribute('data-mjx-error') || e.textContent),"
                              " input: document.body.innerText.includes('Math input error')})")
        if found["count"] or found["input"]:
            errors.append(f"{path}: {found['count']} maths errors, e.g. {found['texts']}")
        page.close()
    assert with_maths >= 5, f"only {with_maths} pages with maths: is the book built?"
    assert errors == [], "\n".join(errors)
