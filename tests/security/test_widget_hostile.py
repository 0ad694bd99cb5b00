"""The widget's renderer against hostile bot Markdown, in Debian's Chromium (issue #8, control 5).

Whatever the server sends as the bot's text (a fooled model, a planted document), the widget
builds DOM nodes only from an allow-list: paragraphs, lists, strong, code, line breaks and
links. No raw HTML, no scripts, no event handlers, no images, no request to any other origin;
links only http(s), opened with target=_blank and rel="noopener noreferrer nofollow"; citation
links only to the widget's own server. The customer's own text is shown as text.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from tests.widget.conftest import screenshot
from tests.widget.mock_server import MockServer

pytestmark = pytest.mark.browser

expect: Any = pytest.importorskip("playwright.sync_api").expect

EVIL = "https://evil.example"
HOSTILE_LINES = [
    "Hello [a](javascript:window.__xss=1) [b](JaVaScRiPt:window.__xss=2) [c]( javascript:x)",
    "[d](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX194c3M9Mzwvc2NyaXB0Pg==) [e](vbscript:x)",
    f"[f](//evil.example/protocol-relative) ![pixel]({EVIL}/pixel.png) [ok]({EVIL}/ok)",
    f'<img src="{EVIL}/img.png" onerror="window.__xss=4"> <script>window.__xss=5</script>',
    f'<iframe src="{EVIL}/frame"></iframe> <svg onload="window.__xss=6"></svg>',
    "<style>*{}</style> <template><script>window.__xss=14</script></template>",
    '<a href="javascript:window.__xss=7">raw link</a> <b onclick="window.__xss=8">bold</b>',
    '**<script>window.__xss=9</script>** `<img src=x onerror="window.__xss=10">`',
    f'{EVIL}/"onmouseover="window.__xss=11" and [g]({EVIL}/a"onclick="window.__xss=12)',
    "# <h1 onclick=x>heading</h1>",
    "- item <object data=x></object> [1] [2]",
    "1. <embed src=x> <link rel=stylesheet href=https://evil.example/x.css>",
]
HOSTILE_TEXT = "\n".join(HOSTILE_LINES)
CITATIONS = [
    {"n": 1, "document_id": 1, "chunk_id": 1, "title": "<b>Evil</b>", "url": "javascript:x()"},
    {"n": 2, "document_id": 2, "chunk_id": 2, "title": "Elsewhere", "url": f"{EVIL}/kb/2/"},
    {"n": 3, "document_id": 3, "chunk_id": 3, "title": "Router", "url": "/kb/3/#chunk-3"},
]
ALLOWED_TAGS = {"p", "ul", "ol", "li", "strong", "code", "a", "br"}

AUDIT = """() => {
  const root = document.getElementById('smallbot-support').shadowRoot;
  const tags = new Set(); const bad = []; const links = [];
  for (const box of root.querySelectorAll('.sb-msg-bot .sb-bubble, .sb-msg-bot .sb-sources')) {
    for (const n of box.querySelectorAll('*')) {
      if (box.classList.contains('sb-bubble')) tags.add(n.tagName.toLowerCase());
      if (n.tagName === 'A') links.push({href: n.href, target: n.target, rel: n.rel,
                                         text: n.textContent, cls: n.className});
    }
  }
  for (const n of [...root.querySelectorAll('*'), ...document.querySelectorAll('*')]) {
    for (const a of n.attributes) {
      if (/^on/i.test(a.name) || /^\\s*(javascript|data|vbscript):/i.test(a.value))
        bad.push(n.tagName + ' ' + a.name + '=' + a.value);
    }
  }
  const embedded = root.querySelectorAll(
    'img, iframe, script, object, embed, video, audio, source, link, style, svg image').length;
  const xss = window.__xss === undefined ? null : window.__xss;
  return {tags: [...tags], bad, links, embedded, xss};
}"""


def _open(page: Any, server: MockServer) -> Any:
    page.goto(server.url + "/")
    w = page.locator("#smallbot-support")
    w.get_by_role("button", name="Open Help chat").click()
    expect(w.get_by_role("dialog", name="Help chat")).to_be_visible()
    return w


def _audit(page: Any, server: MockServer, requests: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(AUDIT)
    assert set(result["tags"]) <= ALLOWED_TAGS, result["tags"]
    assert result["bad"] == [] and result["embedded"] == 0 and result["xss"] is None, result
    for link in result["links"]:
        assert urllib.parse.urlsplit(link["href"]).scheme in ("http", "https"), link
        assert link["target"] == "_blank" and link["rel"] == "noopener noreferrer nofollow", link
        if "sb-cite" in link["cls"] or link["text"].startswith("["):
            assert link["href"].startswith(server.url + "/kb/"), link  # citations: own server
    own = urllib.parse.urlsplit(server.url).netloc
    assert [u for u in requests if urllib.parse.urlsplit(u).netloc not in ("", own)] == []
    return result


def test_hostile_bot_markdown_streams_and_renders_only_allow_listed_nodes(
    page: Any, server: MockServer
) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    w = _open(page, server)

    # Streamed: the same renderer paints every delta.
    for seq, line in enumerate(HOSTILE_LINES):
        server.push({"type": "reply.delta", "reply_to": 4242, "seq": seq, "delta": line + "\n"})
    streaming = w.locator(".sb-streaming .sb-bubble")
    expect(streaming).to_contain_text("heading")
    expect(streaming).to_contain_text("<embed src=x>")
    _audit(page, server, requests)

    # Final: stored text and citations.
    final = {
        "id": 4243,
        "role": "bot",
        "text": HOSTILE_TEXT,
        "citations": CITATIONS,
        "author_name": "<img src=x onerror=window.__xss=13>",
        "client_id": None,
    }
    server.push({"type": "reply.done", "reply_to": 4242, "message": final})
    bubble = w.locator('.sb-msg-bot[data-id="4243"] .sb-bubble')
    expect(bubble).to_contain_text("raw link")
    result = _audit(page, server, requests)

    # What survives is text (and the one well-formed https link, hardened).
    expect(bubble).to_contain_text("<script>window.__xss=5</script>")
    expect(bubble).to_contain_text("[a](javascript:window.__xss=1)")
    expect(bubble).to_contain_text(f"![pixel]({EVIL}/pixel.png)")
    expect(bubble.locator("strong")).to_have_text(
        ["<script>window.__xss=9</script>", "<h1 onclick=x>heading</h1>"]
    )
    hrefs = {link["href"] for link in result["links"]}
    assert f"{EVIL}/pixel.png" not in hrefs  # an image is never even a link
    assert server.url + "/kb/3/#chunk-3" in hrefs  # the one citation to our own server
    assert f"{EVIL}/kb/2/" not in hrefs
    # Well-formed https links stay links (hardened above); which URLs an answer may link to
    # at all is decided on the server (support.security.answer_links_sanitize).
    assert f"{EVIL}/ok" in hrefs
    expect(w.locator('.sb-msg-bot[data-id="4243"] .sb-author')).to_have_text(
        "<img src=x onerror=window.__xss=13>"
    )
    screenshot(page, "security-hostile-markdown")


def test_customer_text_is_shown_exactly_as_typed(page: Any, server: MockServer) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    w = _open(page, server)
    typed = HOSTILE_LINES[3] + " **not bold** [x](https://evil.example)"
    box = w.get_by_role("textbox", name="Message")
    box.fill(typed)
    box.press("Enter")
    mine = w.locator(".sb-msg-customer .sb-bubble").first
    expect(mine).to_have_text(typed)
    assert mine.locator("*").count() == 0  # one text node, no elements
    assert page.evaluate("() => window.__xss === undefined")
    own = urllib.parse.urlsplit(server.url).netloc
    assert [u for u in requests if urllib.parse.urlsplit(u).netloc not in ("", own)] == []
