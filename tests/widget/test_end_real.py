"""The end of a conversation against the real server (embedded mode, as `make run` starts it), in
Debian's Chromium: no knowledge base and no model call (the customer only talks to a person).

An agent (over the REST API, with an agent token made before the server starts) claims,
replies and resolves; the widget shows the end, the customer rates it and the rating is stored
(read back over the API); "Start a new conversation" starts a new one, whose first message
reaches the new conversation. Screenshots go to test-artifacts/end-*.png.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import (
    LiveProduct,
    manage_step,
    product_env,
    serve_start,
    serve_stop,
    wait_ready,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is missing"),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect: Any = sync_api.expect

ARTIFACTS = REPO_ROOT / "test-artifacts"
SETUP = """
from django.contrib.auth.models import Group, User
from support import roles
from support.api.tokens import token_create
roles.roles_ensure()
user = User.objects.create_user("sam", "sam@example.com", "Agent-pw-for-end-test-3",
                                first_name="Sam", is_staff=True)
user.groups.add(Group.objects.get(name=roles.SUPPORT_AGENTS))
print("TOKEN", token_create(user=user, name="end test", scopes=["read", "agent"]).plaintext)
"""


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url + "/api/v1", token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=15) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def product() -> Iterator[tuple[str, Api]]:
    tmp = Path(tempfile.mkdtemp(prefix="support-end-e2e-"))
    env = product_env(tmp / "var")
    log = tmp / "server.log"
    live: LiveProduct | None = None
    try:
        manage_step(["migrate", "--noinput"], env, log)
        manage_step(["shell", "-c", SETUP], env, log)
        token = re.search(r"TOKEN (\S+)", log.read_text(errors="replace"))
        assert token is not None
        live = serve_start(tmp / "var", env, log)
        wait_ready(live)
        yield live.url, Api(live.url, token.group(1))
    finally:
        if live is not None:
            serve_stop(live)
        if log.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copyfile(log, ARTIFACTS / "end-e2e-server.log")
        shutil.rmtree(tmp, ignore_errors=True)


def waiting(api: Api) -> list[str]:
    return [item["conversation_id"] for item in api.call("GET", "/escalations/")["waiting"]]


def wait_until(page: Any, predicate: Any, what: str, timeout_s: float = 15) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(100)


def test_resolve_rate_and_start_again_against_the_real_server(
    browser: Any, product: tuple[str, Api]
) -> None:
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
        page.screenshot(path=str(ARTIFACTS / "end-failure.png"))
        raise
    finally:
        context.close()
    assert not errors, errors


def _journey(page: Any, url: str, api: Api) -> None:
    page.goto(url + "/")
    w = page.locator("#smallbot-support")
    w.get_by_role("button", name=re.compile(r"^Open .* chat$")).click()
    expect(w.locator(".sb-status-text")).to_have_text("Usually replies in a few seconds")
    w.get_by_role("button", name="Talk to a person").click()
    expect(w.locator(".sb-dot")).to_have_attribute("data-state", "queued")
    [cid] = wait_until(page, lambda: waiting(api), "the escalation")

    # --- an agent claims, replies and resolves (over the API) --------------------------------
    api.call("POST", f"/escalations/{cid}/claim/")
    expect(w.locator(".sb-status-text")).to_contain_text("Sam")
    api.call("POST", f"/conversations/{cid}/messages/", {"role": "agent", "text": "All fixed."})
    expect(w.locator(".sb-msg-agent")).to_contain_text("All fixed.")
    box = w.get_by_role("textbox", name="Message")
    box.fill("Great, thanks")
    box.press("Enter")
    expect(w.locator(".sb-msg-customer[data-id]")).to_have_text("Great, thanks")
    closed = api.call("POST", f"/conversations/{cid}/close/")
    assert closed["status"] == "resolved" and closed["rating"] is None

    # --- the widget shows the end: no message box, one "ended" sentence ----------------------
    expect(w.locator(".sb-dot")).to_have_attribute("data-state", "resolved")
    expect(w.locator(".sb-composer")).to_be_hidden()
    expect(w.locator(".sb-input")).to_be_disabled()
    expect(w.get_by_role("button", name="Talk to a person")).to_have_count(0)
    ended = w.get_by_text("This conversation has ended.").locator("visible=true")
    expect(ended).to_have_count(1)
    # It is the server's transcript line (conversation_resolve); the panel does not repeat it.
    expect(w.locator('.sb-msg-system[data-kind="ended"]')).to_have_text(
        "This conversation has ended."
    )
    expect(w.locator(".sb-ended-text")).to_be_hidden()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "end-ended.png"))

    # --- the rating is stored ----------------------------------------------------------------
    w.get_by_role("button", name="5 stars").click()
    w.get_by_role("textbox", name="Anything to add? (optional)").fill("Sam was quick")
    w.get_by_role("button", name="Send rating").click()
    expect(w.locator(".sb-rate-thanks")).to_have_text(
        "Thanks for rating this conversation 5 out of 5."
    )
    stored = api.call("GET", f"/conversations/{cid}/")
    assert (stored["rating"], stored["rating_comment"]) == (5, "Sam was quick")
    assert stored["rated_at"]
    page.screenshot(path=str(ARTIFACTS / "end-rated.png"))

    # --- a new conversation really starts ------------------------------------------------------
    w.get_by_role("button", name="Start a new conversation").click()
    expect(box).to_be_enabled()
    expect(w.locator(".sb-status-text")).to_have_text("Usually replies in a few seconds")
    expect(w.locator(".sb-msg-customer")).to_have_count(0)
    box.fill("I want to talk to a person please")
    box.press("Enter")
    expect(w.locator(".sb-msg-customer[data-id]")).to_have_text("I want to talk to a person please")
    [new_cid] = wait_until(page, lambda: waiting(api), "the new conversation's escalation")
    assert new_cid != cid
    texts = [m["text"] for m in api.call("GET", f"/conversations/{new_cid}/messages/")["results"]]
    assert "I want to talk to a person please" in texts
    old = api.call("GET", f"/conversations/{cid}/")
    assert (old["status"], old["rating"]) == ("resolved", 5)
    old_texts = [m["text"] for m in api.call("GET", f"/conversations/{cid}/messages/")["results"]]
    assert "I want to talk to a person please" not in old_texts
