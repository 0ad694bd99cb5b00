"""Fixtures for the widget's browser tests: the mock chat server and Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.widget.mock_server import MockServer

ARTIFACTS = REPO_ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    mock = MockServer(REPO_ROOT)
    mock.start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture
def new_page(browser: Any, server: MockServer) -> Iterator[Any]:
    """Factory for pages in fresh browser contexts (own localStorage); fails on page errors."""
    server.reset()
    contexts: list[Any] = []
    errors: list[str] = []

    def make(width: int = 1280, height: int = 800, reduced_motion: bool = True) -> Any:
        context = browser.new_context(
            viewport={"width": width, "height": height},
            reduced_motion="reduce" if reduced_motion else "no-preference",
        )
        context.set_default_timeout(5000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()
    server.reset()
    assert not errors, errors


@pytest.fixture
def page(new_page: Any) -> Any:
    return new_page()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"widget-{name}.png"
    page.screenshot(path=str(path))
    return path
