"""What a received mail is besides a customer writing: an auto-reply, a bounce, a list mail, a
loop of our own; and what type an attachment really is."""

from __future__ import annotations

import io
import re
import zipfile

from .parse import ParsedEmail

_AUTO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"autoreply|undeliverable|undelivered mail|delivery status notification|"
    r"mail delivery (failed|system)|returned mail|delivery failure)",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)[@+]", re.I)


def automatic_reason(mail: ParsedEmail) -> str:
    """Why this mail must get no automatic answer ("" for a person writing): RFC 3834
    Auto-Submitted, Precedence bulk/junk/list, the common autoresponder headers, mailing lists,
    bounces (null return path, delivery reports, mailer daemons)."""
    h = mail.headers
    auto = h.get("auto-submitted", "").split(";")[0].strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if h.get("precedence", "").lower() in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {h['precedence'].lower()}"
    for name in ("x-autoreply", "x-autorespond"):
        if name in h:
            return f"{name} header"
    suppress = h.get("x-auto-response-suppress", "").lower()
    if any(v in suppress for v in ("all", "autoreply", "oof")):
        return "X-Auto-Response-Suppress"
    if "list-id" in h or "list-unsubscribe" in h:
        return "mailing list"
    if h.get("return-path", "").strip() == "<>":
        return "bounce (null return path)"
    if mail.content_type == "multipart/report" or "report-type=delivery-status" in h.get(
        "content-type", ""
    ).replace(" ", ""):
        return "bounce (delivery report)"
    if "x-failed-recipients" in h:
        return "bounce (X-Failed-Recipients)"
    if _DAEMON.match(mail.from_address):
        return f"automatic sender {mail.from_address}"
    if _AUTO_SUBJECT.match(mail.subject):
        return "auto-reply subject"
    return ""


def is_bounce(reason: str) -> bool:
    return reason.startswith("bounce") or reason.startswith("automatic sender mailer-daemon")


# --- attachment types, by content ------------------------------------------------------------
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "pdf"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"MZ", "executable"),
    (b"\x7fELF", "executable"),
    (b"\xca\xfe\xba\xbe", "executable"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "legacy-office"),
    (b"{\\rtf", "rtf"),
    (b"\x1f\x8b", "gzip"),
    (b"Rar!\x1a\x07", "rar"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
)
_HTML = re.compile(rb"^\s*(<!doctype\s+html|<html|<script|<svg|<\?xml)", re.IGNORECASE)


def attachment_type(data: bytes) -> str:
    """The type the bytes are (pdf, png, jpeg, gif, webp, docx, xlsx, zip, text, csv, html,
    executable, ...), whatever the attachment's name or declared type says."""
    head = data[:4096]
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return "damaged-zip"
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        return "zip"
    if _HTML.match(head):
        return "html"
    if b"\x00" in head:
        return "binary"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = head.decode("latin-1")
        except UnicodeDecodeError:
            return "binary"
    lines = [line for line in text.splitlines()[:5] if line.strip()]
    if len(lines) >= 2 and all(line.count(",") == lines[0].count(",") > 0 for line in lines):
        return "csv"
    return "text"
