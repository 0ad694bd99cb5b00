"""HTTP and output hardening: the Content-Security-Policy of our pages, and the link rule for
the bot's answers.

Threat model and the test proving each control: docs/security.md.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponseBase

from .text import WORD

# --- Content-Security-Policy ------------------------------------------------------------------
# Every page we serve (the demo page, /kb/<id>/ citation pages, the admin and the agent
# workspace) runs only our own scripts from /static/, loads nothing from other origins, and
# cannot be framed. Inline <style> blocks carry the per-request nonce ({{ request.csp_nonce }});
# there are no inline scripts or event-handler attributes. The widget on third-party sites runs
# under *their* policy: docs/security.md lists what it needs.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def content_security_policy(request: HttpRequest, nonce: str) -> str:
    """The policy for one HTML response; websockets may go back to this host only."""
    connect = ["'self'"]
    try:
        host = request.get_host()
    except DisallowedHost:
        host = ""
    if host:
        connect.append(f"wss://{host}")
        if not request.is_secure():
            connect.append(f"ws://{host}")
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            f"style-src 'self' 'nonce-{nonce}'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _secure(request: HttpRequest, response: HttpResponseBase, nonce: str) -> HttpResponseBase:
    content_type = response.get("Content-Type", "")
    if not content_type.startswith("text/html") or "Content-Security-Policy" in response:
        return response
    # Django's debug pages (DEBUG only) are built with inline scripts and styles.
    if settings.DEBUG and response.status_code >= 400:
        return response
    response["Content-Security-Policy"] = content_security_policy(request, nonce)
    response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    return response


class ContentSecurityPolicyMiddleware:
    """Adds Content-Security-Policy (and Permissions-Policy) to HTML responses; sets
    `request.csp_nonce` for the templates' inline <style> blocks. Sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        return _secure(request, self.get_response(request), nonce)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        return _secure(request, await get_response(request), nonce)


# --- Links in the bot's answers ---------------------------------------------------------------
# A fooled model can write any link. The widget already refuses every scheme but http(s) and
# opens links with rel="noopener noreferrer nofollow"; this rule goes further for the bot's
# text: it may link only to URLs its knowledge-base passages contain, so an injected
# "[Reset portal](https://evil.example)" is reduced to "Reset portal".

# A link target may hold one level of parentheses ("javascript:alert(1)", wiki URLs).
_TARGET = r"((?:[^()\s]|\([^()\s]*\))*)"
_TITLE = r"""(?:\s+(?:"[^"\n]*"|'[^'\n]*'))?"""
_MD_IMAGE = re.compile(r"!\[([^\[\]\n]{0,500})\]\(\s*<?" + _TARGET + r">?" + _TITLE + r"\s*\)")
_MD_LINK = re.compile(r"\[([^\[\]\n]{0,500})\]\(\s*<?" + _TARGET + r">?" + _TITLE + r"\s*\)")
_AUTOLINK = re.compile(r"<([A-Za-z][A-Za-z0-9+.-]{1,20}:[^<>\s]*)>")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>\n]{0,500})?/?>")
# Bare URLs, and the schemes a browser would execute or render even without "//".
_BARE_URL = re.compile(
    r"(?:\b(?:https?|ftp)://|\bwww\.)[^\s<>\"'`]+"
    r"|\b(?:javascript|vbscript|data|file|blob)\s*:[^\s<>\"'`]*",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?)]}'\"”’"


def _url_key(url: str) -> str:
    return url.strip().rstrip(_TRAILING).lower()


def source_urls(sources: Iterable[str]) -> frozenset[str]:
    """The http(s) URLs written in the given texts (the facts an answer was built from)."""
    found = set()
    for text in sources:
        for match in _BARE_URL.finditer(text):
            url = _url_key(match.group())
            if url.startswith(("http://", "https://", "www.")):
                found.add(url)
    return frozenset(found)


def answer_links_sanitize(text: str, *, sources: Iterable[str]) -> str:
    """Keep links and URLs of the bot's text only if the `sources` contain them.

    Markdown links to other URLs become their label, images their alt text, HTML tags go, and
    bare URLs that are not in the sources (or use a non-http scheme) are removed.
    """
    allowed = source_urls(sources)

    def ok(url: str) -> bool:
        return _url_key(url) in allowed

    def image(match: re.Match[str]) -> str:
        return match.group(1)

    def bare(match: re.Match[str]) -> str:
        url = match.group(0)
        if not url.lower().startswith(("http", "ftp", "www.")):
            return ""  # javascript:, data: ... never survive, parentheses and all
        core = url.rstrip(_TRAILING)
        return url if ok(core) else url[len(core) :]

    text = _MD_IMAGE.sub(image, text.replace("\x00", ""))
    # Allowed links are set aside while bare URLs are checked, so their targets survive.
    kept: list[str] = []

    def hold(match: re.Match[str]) -> str:
        if not ok(match.group(2)):
            return match.group(1)  # the label only
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = _MD_LINK.sub(hold, text)
    text = _AUTOLINK.sub(lambda m: m.group(1), text)
    text = _HTML_TAG.sub("", text)
    text = _BARE_URL.sub(bare, text)
    text = re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


def foreign_links(text: str, *, sources: Iterable[str]) -> list[str]:
    """What `answer_links_sanitize` would take out of `text`: images, raw HTML tags, and link
    targets or URLs the `sources` do not contain. Empty for text that is safe as it is.

    Meant for the answer pipeline's support check: a (partial) sentence with a foreign link is
    not supported, so it is held back while streaming and fails the groundedness gate.
    """
    allowed = source_urls(sources)
    found = [m.group(0) for m in _MD_IMAGE.finditer(text)]
    rest = _MD_IMAGE.sub("", text)
    found += [m.group(2) for m in _MD_LINK.finditer(rest) if _url_key(m.group(2)) not in allowed]
    rest = _AUTOLINK.sub(lambda m: m.group(1), _MD_LINK.sub(lambda m: m.group(1), rest))
    found += [m.group(0) for m in _HTML_TAG.finditer(rest)]
    for match in _BARE_URL.finditer(rest):
        url = match.group(0)
        if not url.lower().startswith(("http", "ftp", "www.")) or _url_key(url) not in allowed:
            found.append(url)
    return found


# --- Secrets of the system prompt ---------------------------------------------------------------
_WORD = WORD  # support.text: the same words the answer checks count
# Function words a system prompt shares with any answer; everything else it says is private.
_COMMON_WORDS = frozenset(
    """a an and are as at be been but by can cite do does for from has have how i if in is it
    its like may more most no not of on one only or our so than that the their them then there
    these they this those to two us use using was we were what when where which who will with
    you your""".split()  # noqa: SIM905
)


def prompt_private_words(*, system: str, sources: Iterable[str]) -> frozenset[str]:
    """Words of the system prompt that neither the `sources` (facts, question, history) nor
    common English give: what an answer must never contain."""
    allowed = {w.lower() for source in sources for w in _WORD.findall(source)}
    return frozenset({w.lower() for w in _WORD.findall(system)} - allowed - _COMMON_WORDS)


def words_in(text: str, words: frozenset[str]) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text)) if w in words}


def prompt_words_leaked(text: str, *, system: str, sources: Iterable[str]) -> set[str]:
    """Words of the system prompt in `text` that neither the `sources` (facts, question,
    history) nor common English give it: a secret such as an internal code or instruction
    wording the model repeats. A 5-word-run check misses one smuggled token; this does not."""
    return words_in(text, prompt_private_words(system=system, sources=sources))
