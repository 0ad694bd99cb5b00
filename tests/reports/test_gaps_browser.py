"""The knowledge-gaps page in Debian's Chromium (Playwright, no browser download): the ranked
topics render under the page's Content-Security-Policy without any script error, and "Draft an
article" leads to the draft's edit page with the proposal in its form.

The screenshot goes to test-artifacts/gaps.png; with UPDATE_DOCS_SCREENSHOTS=1 it also replaces
docs/img/gaps.png (the one docs/reports.md shows).
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from django.test import Client

from support import backends, roles
from support.models import GapRun
from support.reports.gaps import gaps_build
from tests.conftest import CHROMIUM_ARGS
from tests.factories import UserFactory
from tests.fakes import FakeChatModel
from tests.reports.browser import admin_page, keep_screenshot
from tests.reports.test_gaps import NOW, START, TopicEmbedder, gaps_data  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is missing"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect: Any = sync_api.expect


def test_the_gaps_page_renders_in_chromium(
    chromium_path: str,
    live_server: Any,
    gaps_data: None,  # noqa: F811
) -> None:
    report = gaps_build(start=START, end=NOW, embedder=TopicEmbedder())
    GapRun.objects.create(
        start=START,
        end=NOW,
        state=GapRun.State.DONE,
        topics=[t.as_dict() for t in report.topics],
        questions=report.questions,
        previous_questions=report.previous_questions,
        distance_threshold=report.distance_threshold,
        embedder=report.embedder,
        finished_at=NOW,
    )
    backends.set_backend("chat_model", FakeChatModel("Yes: you can get a refund within 90 days."))
    client = Client()
    client.force_login(UserFactory(groups=[roles.SUPPORT_MANAGERS]))
    session = client.cookies["sessionid"].value
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
            )
            try:
                _check_page(browser, live_server.url, session)
            finally:
                browser.close()
    finally:
        backends.reset_backends()


def _check_page(browser: Any, url: str, session: str) -> None:
    with admin_page(browser, url, session, height=1100) as (page, _problems):
        page.goto(f"{url}/admin/support/gaprun/")
        topics = page.locator("section.kg-topic")
        expect(topics).to_have_count(4)
        expect(topics.first.locator("h2")).to_contain_text("password")
        expect(topics.nth(1)).to_contain_text("Yes, within 90 days.")
        keep_screenshot(page, "gaps")
        topics.nth(1).get_by_role("button", name="Draft an article").click()
        expect(page.locator("textarea[name=body]")).to_have_value(
            "Yes: you can get a refund within 90 days."
        )
        expect(page.locator("body")).to_contain_text("Proposed by the chat model")
