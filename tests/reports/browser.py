"""What the report pages' browser tests share: a logged-in admin page that records every
script error, failed load and console error, and the screenshot kept for the docs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import REPO_ROOT

ARTIFACTS = REPO_ROOT / "test-artifacts"


@contextmanager
def admin_page(
    browser: Any, url: str, session: str, *, height: int
) -> Iterator[tuple[Any, list[str]]]:
    """A page logged in with `session`, and the problems it met (asserted empty on a clean exit).

    Every stylesheet and script the page loads must load (the browser's own favicon request
    aside), and none may be refused by the Content-Security-Policy."""
    context = browser.new_context(viewport={"width": 1360, "height": height})
    context.add_cookies([{"name": "sessionid", "value": session, "url": url}])
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    try:
        yield page, problems
    finally:
        context.close()
    assert problems == []


def keep_screenshot(page: Any, name: str) -> Path:
    """test-artifacts/<name>.png; with UPDATE_DOCS_SCREENSHOTS=1 also docs/img/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(shot), full_page=False)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        docs_image = REPO_ROOT / "docs" / "img" / f"{name}.png"
        docs_image.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, docs_image)
    return shot
