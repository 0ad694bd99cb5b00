"""Reading a raw RFC 822 message into what the channel needs, defensively.

Mail is hostile input: broken MIME, headers that make Python's parser raise, encoded words
that decode to line breaks or to a second address, HTML with scripts, attachments that lie
about their type. Everything here degrades instead of raising: an unreadable header is empty,
an unreadable part is skipped (and said so), and routing uses only the parsed address, never
a display name.
"""

from __future__ import annotations

import email
import hashlib
import logging
import re
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr

import nh3
from bs4 import BeautifulSoup

logger = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_MSGID = re.compile(r"<[^<>\s]{1,900}>")
_QUOTE_HEADER = re.compile(
    r"^\s*(On\s.{0,200}\swrote:|Am\s.{0,200}\sschrieb.{0,40}:|Le\s.{0,200}\sa écrit\s?:|"
    r"-{2,}\s*Original Message\s*-{2,}|From:\s.+)\s*$",
    re.IGNORECASE,
)
MAX_TEXT_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class RawAttachment:
    filename: str
    declared_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ParsedEmail:
    message_id: str
    in_reply_to: str
    references: tuple[str, ...]
    from_address: str  # lower-cased addr-spec, "" when there is no single usable sender
    from_name: str
    from_problem: str  # why the sender is unusable ("" when it is fine)
    recipients: tuple[str, ...]  # To, Cc, Delivered-To, X-Original-To (lower-cased)
    subject: str
    text: str  # the new text of the message, for the conversation
    html: str  # sanitised HTML, as sent (for the record)
    attachments: tuple[RawAttachment, ...]
    headers: dict[str, str] = field(default_factory=dict)  # lower-case name -> value
    content_type: str = "text/plain"
    defects: tuple[str, ...] = ()


def clean_header_text(value: str, limit: int = 998) -> str:
    """A decoded header as safe one-line text: no line breaks, controls or bidi overrides."""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:  # the modern parser raises on some malformed headers
        value = None
    if value is None:
        try:
            raw = msg.get_all(name, failobj=None) if hasattr(msg, "get_all") else None
            value = raw[0] if raw else ""
        except Exception:
            value = ""
    return str(value)


def _msgids(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m for m in _MSGID.findall(value)))


def message_id_of(msg: Message, raw: bytes) -> str:
    """The Message-ID, or one derived from the bytes (a retry of the same bytes matches)."""
    ids = _msgids(_header(msg, "Message-ID"))
    if ids:
        return ids[0]
    return f"<{hashlib.sha256(raw).hexdigest()}@missing-message-id.invalid>"


def _raw_values(msg: Message, *names: str) -> list[str]:
    """The header values as they arrived: encoded words still encoded, so a display name that
    decodes to an address ("=?utf-8?q?ceo=40example.com?=") stays a display name."""
    wanted = {n.lower() for n in names}
    try:
        return [str(v) for k, v in msg.raw_items() if k.lower() in wanted]
    except Exception:
        return []


def _addresses(msg: Message, *names: str) -> list[tuple[str, str]]:
    try:
        return [(n, a) for n, a in getaddresses(_raw_values(msg, *names)) if a]
    except Exception:
        return []


def _display_name(raw_name: str) -> str:
    try:
        return clean_header_text(str(make_header(decode_header(raw_name))), 200)
    except Exception:
        return clean_header_text(raw_name, 200)


def _sender(msg: Message) -> tuple[str, str, str]:
    """(address, display name, problem) of From, parsed from the undecoded header."""
    values = _raw_values(msg, "From")
    if len(values) != 1:
        return "", "", "the message has no From header" if not values else "several From headers"
    pairs = [(n, a) for n, a in getaddresses(values) if a]
    if len(pairs) != 1:
        return "", "", "From does not hold exactly one address"
    name, address = pairs[0]
    address = address.strip().lower()
    try:
        parsed = Address(addr_spec=address)
    except Exception:
        return "", "", f"From holds an invalid address {address[:80]!r}"
    if not parsed.username or "." not in parsed.domain or _CONTROL.search(address):
        return "", "", f"From holds an invalid address {address[:80]!r}"
    # parseaddr of the bare value must agree: "a@b.c <d@e.f>"-style tricks disagree.
    if parseaddr(values[0])[1].strip().lower() != address:
        return "", "", "From is ambiguous"
    return address, _display_name(name), ""


def _part_text(part: Message) -> str:
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
        if isinstance(content, str):
            return content
    except Exception:  # noqa: S110 (a bad charset or encoding: decoded by hand below)
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def html_sanitise(html: str) -> str:
    """HTML as it may be shown to agents: no scripts, styles, event handlers or remote images."""
    return nh3.clean(
        html,
        tags={
            "a",
            "b",
            "blockquote",
            "br",
            "code",
            "div",
            "em",
            "i",
            "li",
            "ol",
            "p",
            "pre",
            "span",
            "strong",
            "table",
            "tbody",
            "td",
            "th",
            "thead",
            "tr",
            "u",
            "ul",
        },
        attributes={"a": {"href"}},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def html_to_text(html: str) -> str:
    soup = BeautifulSoup(html_sanitise(html), "html.parser")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(["p", "div", "li", "tr", "blockquote"]):
        block.append("\n")
    return soup.get_text()


def new_text(text: str) -> str:
    """The text the customer wrote now: quoted earlier mail ("> ..." and what follows an
    "On ... wrote:" line) and a signature after "-- " are cut."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for line in lines:
        if line.rstrip() == "--" or line == "-- ":
            break
        if _QUOTE_HEADER.match(line) and kept:
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line)
    cleaned = "\n".join(kept).strip()
    cleaned = _CONTROL.sub(" ", cleaned.replace("\t", " "))
    return re.sub(r"\n{3,}", "\n\n", cleaned)[:MAX_TEXT_CHARS]


def _walk(msg: Message, defects: list[str]) -> tuple[str, str, list[RawAttachment]]:
    plain: list[str] = []
    html: list[str] = []
    attachments: list[RawAttachment] = []
    try:
        parts = list(msg.walk())
    except Exception as exc:
        defects.append(f"unreadable MIME structure: {type(exc).__name__}")
        parts = [msg]
    for part in parts[:500]:
        try:
            if part.is_multipart():
                continue
            ctype = part.get_content_type()
            disposition = (part.get_content_disposition() or "").lower()
            filename = part.get_filename()
        except Exception as exc:
            defects.append(f"unreadable part: {type(exc).__name__}")
            continue
        if disposition == "attachment" or (filename and ctype not in ("text/plain", "text/html")):
            try:
                payload = part.get_payload(decode=True)
                data = payload if isinstance(payload, bytes) else b""
            except Exception:
                data = b""
                defects.append("an attachment could not be decoded")
            attachments.append(
                RawAttachment(clean_header_text(str(filename or "attachment"), 255), ctype, data)
            )
        elif ctype == "text/plain":
            plain.append(_part_text(part))
        elif ctype == "text/html":
            html.append(_part_text(part))
        elif ctype in ("message/delivery-status", "message/rfc822"):
            continue
    return "\n".join(plain), "\n".join(html), attachments


def email_parse(raw: bytes) -> ParsedEmail:
    """Parse raw RFC 822 bytes; never raises for bad content (see the module docstring)."""
    defects: list[str] = []
    try:
        msg: Message = email.message_from_bytes(raw, policy=policy.default)
    except Exception as exc:
        defects.append(f"modern parser failed: {type(exc).__name__}")
        msg = email.message_from_bytes(raw, policy=policy.compat32)
    defects.extend(type(d).__name__ for d in getattr(msg, "defects", [])[:20])
    address, name, problem = _sender(msg)
    recipients = tuple(
        dict.fromkeys(
            a.strip().lower()
            for _, a in _addresses(msg, "To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")
        )
    )
    plain, html, attachments = _walk(msg, defects)
    body = plain if plain.strip() else html_to_text(html) if html else ""
    headers: dict[str, str] = {}
    for key in (
        "auto-submitted",
        "precedence",
        "x-autoreply",
        "x-autorespond",
        "x-auto-response-suppress",
        "list-id",
        "list-unsubscribe",
        "return-path",
        "x-failed-recipients",
        "content-type",
        "authentication-results",
    ):
        value = _header(msg, key)
        if value:
            headers[key] = clean_header_text(value)
    try:
        content_type = msg.get_content_type()
    except Exception:
        content_type = "text/plain"
    return ParsedEmail(
        message_id=message_id_of(msg, raw),
        in_reply_to=(_msgids(_header(msg, "In-Reply-To")) or ("",))[0],
        references=_msgids(_header(msg, "References"))[-50:],
        from_address=address,
        from_name=name,
        from_problem=problem,
        recipients=recipients,
        subject=clean_header_text(_header(msg, "Subject"), 300),
        text=new_text(body),
        html=html_sanitise(html)[:MAX_TEXT_CHARS] if html else "",
        attachments=tuple(attachments),
        headers=headers,
        content_type=content_type,
        defects=tuple(defects),
    )
