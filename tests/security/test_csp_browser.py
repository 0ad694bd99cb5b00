"""Every page works in Debian's Chromium under its Content-Security-Policy (issue #8, control 7).

The real server runs as `make run` runs it (`manage.py serve` with its own SUPPORT_DATA_DIR),
with an admin who is also a support agent, a queued conversation and a ready document created
before it starts. The browser visits the demo page (the widget connects and answers), a /kb/
citation page, the admin login, and the admin and agent-workspace pages (the workspace's live
socket connects); Chromium must report no policy violation and no script error anywhere.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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

USER, PASSWORD = "morgan", "Admin-pw-for-csp-test-4"
SETUP = f"""
from django.contrib.auth.models import Group, User
from support import roles
from support.conversations import conversation_start
from support.handoff.escalation import CUSTOMER_REQUEST, conversation_escalate
from support.models import Chunk, KnowledgeDocument
roles.roles_ensure()
user = User.objects.create_superuser({USER!r}, "morgan@example.com", {PASSWORD!r})
user.groups.add(Group.objects.get(name=roles.SUPPORT_AGENTS))
conv = conversation_start(customer_name="Jordan <b>")
msg = conv.messages.create(role="customer", text="I need a person <script>x()</script>",
                           client_id="q1")
conversation_escalate(conversation_id=conv.pk, reasons=(CUSTOMER_REQUEST,),
                      trigger_message_id=msg.pk)
doc = KnowledgeDocument.objects.create(title="Router guide", original_filename="router.md",
    checksum="0" * 64, status="ready", chunk_count=1, file="documents/none.md")
Chunk.objects.create(document=doc, order=0, text="Hold the reset button.", heading_path=["Reset"])
print("IDS", conv.pk, doc.pk)
"""


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[str, str, int]]:
    """(base URL, conversation id, document id) of a running server."""
    tmp = Path(tempfile.mkdtemp(prefix="support-csp-"))
    env = product_env(tmp / "var")
    log = tmp / "server.log"
    product: LiveProduct | None = None
    try:
        manage_step(["migrate", "--noinput"], env, log)
        manage_step(["shell", "-c", SETUP], env, log)
        ids = re.search(r"IDS (\S+) (\d+)", log.read_text(errors="replace"))
        assert ids is not None
        product = serve_start(tmp / "var", env, log)
        wait_ready(product)
        yield product.url, ids.group(1), int(ids.group(2))
    finally:
        if product is not None:
            serve_stop(product)
        shutil.rmtree(tmp, ignore_errors=True)


# Reported by the page itself, so a violation in any frame or worker is seen too.
LISTEN = """
document.addEventListener('securitypolicyviolation', (e) => {
  console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI);
});
"""


def test_pages_work_under_their_content_security_policy(
    browser: Any, live: tuple[str, str, int]
) -> None:
    url, conversation_id, document_id = live
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    context.add_init_script(LISTEN)
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(f"error: {exc}"))
    page.on(
        "console",
        lambda m: (
            problems.append(m.text)
            if "Content Security Policy" in m.text or "CSP violation" in m.text
            else None
        ),
    )
    headers: dict[str, str] = {}
    page.on(
        "response",
        lambda r: (
            headers.setdefault(r.url, r.headers.get("content-security-policy", ""))
            if r.request.resource_type == "document"
            else None
        ),
    )
    try:
        # The demo page: the widget loads, styles itself and connects over the websocket.
        page.goto(url + "/")
        widget = page.locator("#smallbot-support")
        widget.get_by_role("button", name=re.compile(r"^Open .* chat$")).click()
        expect(widget.locator(".sb-status-text")).to_have_text("Usually replies in a few seconds")
        assert widget.evaluate("h => getComputedStyle(h.shadowRoot.querySelector('.sb-panel'))"
                               ".position") == "fixed"  # fmt: skip

        # A citation page.
        page.goto(f"{url}/kb/{document_id}/")
        expect(page.get_by_text("Hold the reset button.")).to_be_visible()
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background != "rgba(0, 0, 0, 0)"  # the page's nonced <style> applied

        # The admin: log in, the index, the workspace (live socket), knowledge pages.
        page.goto(url + "/admin/")
        page.fill("#id_username", USER)
        page.fill("#id_password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.locator("[data-agent-badge]")).to_have_text("1")
        page.goto(url + "/admin/support/escalationqueue/")
        expect(page.locator("[data-agent-live]")).to_have_text("Live")
        page.goto(f"{url}/admin/support/escalationqueue/{conversation_id}/")
        expect(page.locator("[data-agent-live]")).to_have_text("Live")
        expect(page.locator(".sa-msg-customer .sa-msg-text")).to_have_text(
            "I need a person <script>x()</script>"
        )
        for path in (
            "/admin/support/knowledgedocument/",
            "/admin/support/knowledgedocument/upload/",
            "/admin/support/conversation/",
            f"/admin/support/conversation/{conversation_id}/change/",
            "/admin/auth/user/add/",
        ):
            page.goto(url + path)
            expect(page.locator("#content")).to_be_visible()
        page.wait_for_timeout(300)
    finally:
        context.close()
    assert problems == [], problems
    documents = {u: h for u, h in headers.items() if "/static/" not in u}
    assert documents and all("frame-ancestors 'none'" in h for h in documents.values()), documents


# Replaces window.WebSocket before agent.js runs, so the test can push frames as the server
# would (the same approach as tests/agents/test_agent_browser.py).
FAKE_SOCKET = """
window.WebSocket = function (url) {
  var self = this;
  self.url = url; self.readyState = 0;
  self.send = function () {};
  self.close = function () {};
  window.__agentSocket = self;
  setTimeout(function () { self.readyState = 1; self.onopen && self.onopen(); }, 0);
};
window.__push = function (frame) { window.__agentSocket.onmessage({data: JSON.stringify(frame)}); };
"""
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
EVIL_CITATIONS = [
    {"n": 1, "title": HOSTILE, "heading": HOSTILE, "url": "//evil.example/kb/"},
    {"n": 2, "title": "b", "url": "/\\evil.example/kb/"},
    {"n": 3, "title": "c", "url": "javascript:window.__xss=3"},
    {"n": 4, "title": "d", "url": "https://evil.example/kb/"},
    {"n": 5, "title": "Router guide", "url": "/kb/1/#chunk-1"},
]
AUDIT_PAGE = """() => {
  const bad = [];
  for (const n of document.querySelectorAll('*')) for (const a of n.attributes)
    if (/^on/i.test(a.name) || /^\\s*javascript:/i.test(a.value))
      bad.push(n.tagName + ' ' + a.name);
  const inserted = document.querySelectorAll('.sa-transcript img, .sa-transcript script, '
    + '[data-suggestion] img, [data-suggestion] script').length;
  const links = [...document.querySelectorAll('.sa-citations a')].map(a => a.getAttribute('href'));
  return {bad, inserted, links, xss: window.__xss === undefined ? null : window.__xss};
}"""


def test_live_agent_updates_show_customer_text_as_text_and_only_local_links(
    browser: Any, live: tuple[str, str, int]
) -> None:
    url, conversation_id, _ = live
    hex_id = conversation_id.replace("-", "")
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(15_000)
    context.add_init_script(FAKE_SOCKET)
    page = context.new_page()
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        page.goto(url + "/admin/login/")
        page.fill("#id_username", USER)
        page.fill("#id_password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{url}/admin/support/escalationqueue/{conversation_id}/")
        page.locator(".sa-actions").get_by_role("button", name="Claim").click()
        expect(page.locator("#sa-reply-text")).to_be_visible()  # replying (and suggestions) on
        expect(page.locator("[data-agent-live]")).to_have_text("Live")
        at = "2026-01-01T10:00:00Z"
        for n, (role, extra) in enumerate(
            [("customer", {}), ("bot", {"citations": EVIL_CITATIONS, "action": HOSTILE})]
        ):
            message = {"id": 9000 + n, "role": role, "text": HOSTILE, "created_at": at, **extra}
            frame = {"type": "message", "conversation_id": hex_id, "message": message}
            page.evaluate("f => window.__push(f)", frame)
        page.evaluate(
            "f => window.__push(f)",
            {"type": "suggestion", "conversation_id": hex_id, "ok": True, "text": HOSTILE,
             "note": HOSTILE, "citations": EVIL_CITATIONS},
        )  # fmt: skip
        texts = page.locator(".sa-msg-text")
        expect(texts.last).to_have_text(HOSTILE)
        expect(page.locator("[data-suggestion-text]")).to_have_text(HOSTILE)
        result = page.evaluate(AUDIT_PAGE)
    finally:
        context.close()
    assert problems == [], problems
    assert result["bad"] == [] and result["inserted"] == 0 and result["xss"] is None, result
    # Only the same-site path survives as a link, in the bot message and in the suggestion.
    assert [h for h in result["links"] if h is not None and not h.startswith("/kb/")] == []
    assert result["links"].count("/kb/1/#chunk-1") == 2
