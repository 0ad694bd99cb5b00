"""The transcript's system lines in the widget, against the real server (embedded mode, Debian's
Chromium): queued, acknowledged once per run, claimed with the agent's name, handed back and
ended, each shown once as a line of its own (no author, no thumbs). An agent acts over the
REST API (the server of tests/widget/test_end_real.py). Screenshot: test-artifacts/lines.png.
"""

from __future__ import annotations

import re
import shutil
from typing import Any

import pytest

from tests.widget.test_end_real import ARTIFACTS, Api, product, wait_until, waiting  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is missing"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect: Any = sync_api.expect


def test_the_widget_shows_each_line_once(browser: Any, product: tuple[str, Api]) -> None:  # noqa: F811
    url, api = product
    context = browser.new_context(viewport={"width": 1100, "height": 820}, reduced_motion="reduce")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        _journey(page, url, api)
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "lines-failure.png"))
        raise
    finally:
        context.close()
    assert not errors, errors


def _journey(page: Any, url: str, api: Api) -> None:
    page.goto(url + "/")
    w = page.locator("#smallbot-support")
    w.get_by_role("button", name=re.compile(r"^Open .* chat$")).click()
    lines = w.locator(".sb-msg-system")

    def line(kind: str) -> Any:
        return w.locator(f'.sb-msg-system[data-kind="{kind}"]')

    w.get_by_role("button", name="Talk to a person").click()
    expect(line("queued")).to_have_text("Waiting for a person — you're in the queue.")
    cid = wait_until(page, lambda: waiting(api), "the escalation")[-1]

    box = w.get_by_role("textbox", name="Message")
    for text in ("Hello?", "My router blinks orange"):
        box.fill(text)
        box.press("Enter")
        expect(w.locator(".sb-msg-customer[data-id]").last).to_have_text(text)
    expect(line("ack")).to_have_count(1)  # one per run of queued messages
    expect(line("ack")).to_have_text("Thanks — a person will see this when they join.")

    api.call("POST", f"/escalations/{cid}/claim/")
    expect(line("claimed")).to_have_text("You're now talking to Sam.")
    api.call("POST", f"/conversations/{cid}/messages/", {"role": "agent", "text": "Try again?"})
    expect(w.locator(".sb-msg-agent")).to_contain_text("Try again?")
    api.call("POST", f"/conversations/{cid}/hand-back/")
    expect(line("handed_back")).to_have_text("Sam handed you back to the assistant.")
    api.call("POST", f"/conversations/{cid}/close/")
    expect(line("ended")).to_have_text("This conversation has ended.")

    # Each once, in the order they happened; lines carry no author and no feedback buttons.
    kinds = [lines.nth(i).get_attribute("data-kind") for i in range(lines.count())]
    assert kinds == ["queued", "ack", "claimed", "handed_back", "ended"]
    expect(lines.locator(".sb-author")).to_have_count(0)
    expect(lines.locator(".sb-feedback")).to_have_count(0)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "lines.png"))
