"""The knowledge-gaps page in Debian's Chromium (Playwright, no browser download): the ranked
topics render under the page's Content-Security-Policy without any script error, and "Draft an
article" leads to the draft's edit page with the proposal in its form.

The screenshot goes to test-artifacts/gaps.png; with UPDATE_DOCS_SCREENSHOTS=1 it also replaces
docs/img/gaps.png (the one docs/reports.md shows).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest
from django.test import Client

from support import backends, roles
from support.models import GapRun
from support.reports.gaps import gaps_build
from tests.conftest import CHROMIUM_ARGS, REPO_ROOT
from tests.factories import UserFactory
from tests.fakes import FakeChatModel
from tests.reports.test_gaps import NOW, START, TopicEmbedder, gaps_data  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is missing"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect: Any = sync_api.expect

ARTIFACTS = REPO_ROOT / "test-artifacts"
DOCS_IMAGE = REPO_ROOT / "docs" / "img" / "gaps.png"


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
    context = browser.new_context(viewport={"width": 1360, "height": 1100})
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
        page.goto(f"{url}/admin/support/gaprun/")
        topics = page.locator("section.kg-topic")
        expect(topics).to_have_count(4)
        expect(topics.first.locator("h2")).to_contain_text("password")
        expect(topics.nth(1)).to_contain_text("Yes, within 90 days.")
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "gaps.png"
        page.screenshot(path=str(shot), full_page=False)
        if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
            DOCS_IMAGE.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, DOCS_IMAGE)
        topics.nth(1).get_by_role("button", name="Draft an article").click()
        expect(page.locator("textarea[name=body]")).to_have_value(
            "Yes: you can get a refund within 90 days."
        )
        expect(page.locator("body")).to_contain_text("Proposed by the chat model")
    finally:
        context.close()
    assert problems == []
