"""Shared test fixtures: data and browser."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build" / "html"

# The smoke setting for every test and notebook is switched on in the root conftest.py.

IN_CI = bool(os.environ.get("CI"))


def skip_or_fail(message: str) -> None:
    """Skip locally with a message saying what to do; fail under CI, where everything must run."""
    if IN_CI:
        pytest.fail(f"{message} (CI is set, so this may not be skipped)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def data_available() -> None:
    """Skip (fail under CI) when the datasets cannot be found."""
    from course_lib.data import DatasetNotFoundError, locate

    try:
        locate("mnist")
    except DatasetNotFoundError:
        skip_or_fail("MNIST not found: set VAE_COURSE_DATA to a folder with the datasets "
                     "(in this project's CI: ../shared/data)")


# ----------------------------------------------------------------------------- browser
def chromium_path() -> str | None:
    """The system Chromium (Debian's `chromium`), or whatever CHROMIUM names."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """A headless Chromium driven by Playwright (the system browser; nothing is downloaded)."""
    path = chromium_path()
    if path is None:
        skip_or_fail("no Chromium found: install it (Debian/Ubuntu: `sudo apt-get install chromium`) "
                     "or point CHROMIUM at a Chrome/Chromium binary")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed: `pip install -r requirements.txt`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def book_html() -> Path:
    """The built book, `_build/html`; skip (fail under CI) when it has not been built."""
    if not (BUILD / "index.html").is_file():
        skip_or_fail(f"the book is not built ({BUILD / 'index.html'} missing): run `jupyter-book build .` first")
    return BUILD


@pytest.fixture(scope="session")
def book_server(book_html: Path):
    """Serve the built book on 127.0.0.1 (a random free port) for the browser tests."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass
