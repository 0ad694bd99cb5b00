"""The report page in Debian's Chromium (Playwright, no browser download): it renders under the
page's Content-Security-Policy with its tiles, charts and tables, and without any script error.

The screenshot goes to test-artifacts/reports.png; with UPDATE_DOCS_SCREENSHOTS=1 it also
replaces docs/img/reports.png (the one docs/reports.md shows).
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client

from support import roles
from support.models import Conversation, Message
from tests.conftest import CHROMIUM_ARGS
from tests.factories import UserFactory
from tests.reports.browser import admin_page, keep_screenshot
from tests.reports.scenario import Builder, at, build_day

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is missing"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect: Any = sync_api.expect


def build_fortnight() -> None:
    """Day D of scenario.py, plus two weeks before it with a varying mix (for the charts)."""
    build_day()
    b = Builder()
    for day in range(1, 10):
        for i in range(3 + (day * 7) % 6):
            start = at(day, 8 + (i * 3 + day) % 12, (i * 11) % 60)
            conv = b.conversation(f"d{day}-{i}", start, channel=Conversation.Channel.WIDGET)
            q = b.customer(conv, start)
            declined = (i + day) % 5 == 0
            b.answer(
                conv,
                q,
                start + timedelta(seconds=2 + i % 4),
                action=Message.Action.ESCALATE if declined else Message.Action.ANSWER,
                reason="low_confidence" if declined else "grounded",
                ttft_ms=400 + 90 * (i % 5),
                total_ms=1100 + 250 * (i % 4),
                cpu_ms=900 + 300 * (i % 3),
                feedback=("up" if i % 3 == 0 else "down" if i % 7 == 1 else None),
            )
            if declined:
                b.escalation(conv, start + timedelta(seconds=30), ["low_confidence"])


def test_the_report_page_renders_in_chromium(
    chromium_path: str, live_server: Any, settings: Any
) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    build_fortnight()
    client = Client()
    client.force_login(UserFactory(groups=[roles.SUPPORT_MANAGERS]))
    session = client.cookies["sessionid"].value
    # Playwright's sync API runs an event loop in this thread: every database call is above.
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            _check_page(browser, live_server.url, session)
        finally:
            browser.close()


def _check_page(browser: Any, url: str, session: str) -> None:
    # A stylesheet or inline style blocked by the Content-Security-Policy shows as a problem.
    with admin_page(browser, url, session, height=1500) as (page, _problems):
        page.goto(f"{url}/admin/support/reportday/?start=2026-03-01&end=2026-03-12")
        expect(page.locator(".rp-tile")).to_have_count(12)
        expect(page.locator(".rp-tile").first).to_contain_text("Conversations")
        charts = page.locator("svg.report-chart")
        assert charts.count() >= 8
        # Drawn, not empty: the per-day chart has one line per series, with a visible size.
        days = page.locator('[data-report-table="days"] svg.report-chart')
        expect(days.locator("polyline")).to_have_count(5)
        box = days.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        expect(page.locator('[data-report-table="days"] tbody tr')).to_have_count(12)
        keep_screenshot(page, "reports")
        # The CSV link is the same view's export.
        href = page.locator('[data-report-table="reasons"] caption a').get_attribute("href")
        assert href is not None and href.startswith("/admin/support/reportday/reasons.csv?")
