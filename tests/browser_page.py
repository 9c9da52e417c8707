"""Headless Chromium pages for the studio's end-to-end tests (Playwright).

The tests are skipped only where Chromium (``/usr/bin/chromium``, Debian's ``chromium`` package) or
Playwright is not installed. A page collects what went wrong in the browser (page errors, console
errors, failed requests) in ``page.problems``, so a test can assert that nothing did.
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from spadekit.studio.server import CHROMIUM_ARGS

CHROMIUM = Path("/usr/bin/chromium")

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and shutil.which("chromium") is None,
    reason="Chromium is not installed (Debian: apt-get install chromium); the browser test needs it",
)


@contextmanager
def browser_page(url: str, **context_options: Any) -> Iterator[Any]:
    """A fresh headless Chromium page at ``url``; ``context_options`` go to ``browser.new_context``
    (viewport, touch, ...)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
    executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium"))
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP forbids.
            context = browser.new_context(bypass_csp=True, **context_options)
            page = context.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
            page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
            page.problems = problems
            page.goto(url)
            yield page
        finally:
            browser.close()
