"""The API's documentation page renders in a real browser (Debian's Chromium) under our
Content-Security-Policy, from this deployment's own static files."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_swagger_page_renders_the_schema_under_csp(chromium_path: str, live_server: Any) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    # Its own Playwright session, closed before the test ends: the live server's database
    # teardown must not run while Playwright holds an event loop in this thread.
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            _check_docs_page(browser, live_server)
        finally:
            browser.close()


def _check_docs_page(browser: Any, live_server: Any) -> None:
    page = browser.new_page()
    violations: list[str] = []
    outside: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.on(
        "request",
        lambda req: outside.append(req.url) if not req.url.startswith(live_server.url) else None,
    )
    try:
        page.goto(f"{live_server.url}/api/v1/docs/")
        page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
        assert "Smallbot Support API" in page.inner_text(".swagger-ui .info .title")
        page.wait_for_selector("text=/api/v1/conversations/", timeout=10_000)
        assert page.locator(".opblock").count() > 20  # the operations are listed
    finally:
        page.close()
    assert violations == []
    assert [u for u in outside if not u.startswith("data:")] == []
