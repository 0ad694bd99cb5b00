"""Taking in a customer's e-mail: from the inbound endpoint, `manage.py mail_inbound` (a relay
such as Postfix piping to it) or the IMAP poller. One function, `email_receive`, for all three:
idempotent on Message-ID, threaded into its conversation, never raising for bad content.

Threading, in order: a valid reply address (`support+c<id><mac>@...`) among the recipients;
else In-Reply-To / References naming a mail of a conversation. A thread is joined only when
the sender is that conversation's customer: someone else replying (a forwarded mail, a
forged From) starts a conversation of their own instead. A resolved conversation is not
reopened either: the reply starts a new one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from uuid import UUID

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q

from .. import conversations
from ..conf import get_support_settings
from ..exceptions import SupportError
from ..models import Conversation, EmailAttachment, EmailMessage
from . import addresses
from .detect import attachment_type, automatic_reason, is_bounce
from .parse import ParsedEmail, email_parse, message_id_of

logger = logging.getLogger(__name__)

Status = EmailMessage.Status


@dataclass(frozen=True, slots=True)
class Received:
    email_id: int
    status: str
    message_id: str
    conversation_id: UUID | None
    reason: str
    duplicate: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "email_id": self.email_id,
            "status": self.status,
            "message_id": self.message_id,
            "conversation_id": self.conversation_id.hex if self.conversation_id else None,
            "reason": self.reason,
            "duplicate": self.duplicate,
        }


def _received(mail: EmailMessage, duplicate: bool) -> Received:
    return Received(
        mail.pk, mail.status, mail.message_id, mail.conversation_id, mail.reason, duplicate
    )


def _record(
    *,
    message_id: str,
    status: str,
    reason: str,
    raw: bytes | None,
    source: str,
    parsed: ParsedEmail | None = None,
    conversation: Conversation | None = None,
) -> EmailMessage:
    mail = EmailMessage(
        direction=EmailMessage.Direction.INBOUND,
        status=status,
        reason=reason[:2000],
        conversation=conversation,
        message_id=message_id[:998],
        source=source,
    )
    if parsed is not None:
        mail.in_reply_to = parsed.in_reply_to[:998]
        mail.references = " ".join(parsed.references)
        mail.from_address = parsed.from_address[:320]
        mail.to_address = ", ".join(parsed.recipients)[:320]
        mail.subject = parsed.subject[:998]
    if raw is not None:
        mail.raw.save("message.eml", ContentFile(raw), save=False)
    mail.save()
    return mail


def _thread(parsed: ParsedEmail) -> tuple[Conversation | None, str]:
    """The conversation this mail continues, or None with a note on why it starts anew."""
    conv_id = addresses.conversation_from_addresses(parsed.recipients)
    via = "reply address"
    if conv_id is None:
        ids = [i for i in (parsed.in_reply_to, *reversed(parsed.references)) if i]
        known = (
            EmailMessage.objects.filter(message_id__in=ids, conversation__isnull=False)
            .values_list("message_id", "conversation_id")
            .first()
            if ids
            else None
        )
        conv_id = known[1] if known else None
        via = "In-Reply-To/References"
    if conv_id is None:
        return None, ""
    conv = Conversation.objects.filter(pk=conv_id, channel=Conversation.Channel.EMAIL).first()
    if conv is None:
        return None, ""
    if conv.customer_email.lower() != parsed.from_address:
        return None, (
            f"threads to conversation {conv.pk.hex[:8]} by {via}, but {parsed.from_address} is "
            "not its customer: started a new conversation"
        )
    if conv.status == Conversation.Status.RESOLVED:
        return None, f"conversation {conv.pk.hex[:8]} is resolved: started a new one"
    return conv, ""


def _attachments_store(mail: EmailMessage, parsed: ParsedEmail) -> list[str]:
    """Store the allowed attachments; describe each (kept or not) for the transcript."""
    conf = get_support_settings()
    notes = []
    for att in parsed.attachments[:50]:
        kind = attachment_type(att.data)
        size = len(att.data)
        row = EmailAttachment(
            email=mail,
            filename=att.filename[:255] or "attachment",
            declared_type=att.declared_type[:100],
            detected_type=kind,
            size_bytes=size,
            sha256=hashlib.sha256(att.data).hexdigest(),
        )
        if size > conf.email_max_attachment_bytes:
            row.status = EmailAttachment.Status.REJECTED
            row.reason = f"larger than {conf.email_max_attachment_bytes} bytes"
        elif kind not in conf.email_attachment_types:
            row.status = EmailAttachment.Status.REJECTED
            row.reason = f"type {kind} is not accepted"
        else:
            row.status = EmailAttachment.Status.STORED
            row.file.save("attachment", ContentFile(att.data), save=False)
        row.save()
        kept = "" if row.status == EmailAttachment.Status.STORED else f", not kept: {row.reason}"
        notes.append(f"{row.filename} ({kind}, {size // 1024} kB{kept})")
    return notes


def _text_for_chat(parsed: ParsedEmail, notes: list[str]) -> str:
    conf = get_support_settings()
    text = parsed.text
    if not text and parsed.subject:
        text = parsed.subject
    if notes:
        text = f"{text}\n\n[Attachments: {'; '.join(notes)}]".strip()
    if len(text) > conf.max_message_chars:
        text = (
            text[: conf.max_message_chars - 40].rstrip()
            + " […] (shortened; full text in the e-mail)"
        )
    return text or "(empty e-mail)"


def email_receive(*, raw: bytes, source: str) -> Received:
    """Take in one raw e-mail; the same Message-ID twice is taken once (`duplicate`)."""
    conf = get_support_settings()
    if len(raw) > conf.email_max_bytes:
        headers = message_from_bytes(raw[:65536].split(b"\r\n\r\n", 1)[0], policy=policy.compat32)
        message_id = message_id_of(headers, raw)
        existing = EmailMessage.objects.filter(message_id=message_id).first()
        if existing is not None:
            return _received(existing, True)
        mail = _record(
            message_id=message_id,
            status=Status.REJECTED,
            reason=f"message of {len(raw)} bytes is over SUPPORT_EMAIL_MAX_BYTES "
            f"({conf.email_max_bytes})",
            raw=None,
            source=source,
        )
        return _received(mail, False)
    parsed = email_parse(raw)
    existing = EmailMessage.objects.filter(message_id=parsed.message_id).first()
    if existing is not None:
        return _received(existing, True)
    try:
        return _receive(parsed, raw, source)
    except IntegrityError:  # the same mail through two ways at once (IMAP and a relay)
        existing = EmailMessage.objects.filter(message_id=parsed.message_id).first()
        if existing is None:
            raise
        return _received(existing, True)


def _receive(parsed: ParsedEmail, raw: bytes, source: str) -> Received:
    automatic = automatic_reason(parsed)
    if automatic:
        with transaction.atomic():
            if is_bounce(automatic):
                _bounce_note(parsed, raw, automatic)
            mail = _record(
                message_id=parsed.message_id,
                status=Status.IGNORED,
                reason=f"automatic mail, not answered: {automatic}",
                raw=raw,
                source=source,
                parsed=parsed,
            )
        return _received(mail, False)
    problem = parsed.from_problem
    if not problem and addresses.is_own_address(parsed.from_address):
        problem = f"From is our own address {parsed.from_address} (a loop or a forgery)"
    if problem:
        mail = _record(
            message_id=parsed.message_id,
            status=Status.REJECTED,
            reason=f"no usable sender: {problem}",
            raw=raw,
            source=source,
            parsed=parsed,
        )
        return _received(mail, False)
    with transaction.atomic():
        conv, note = _thread(parsed)
        if conv is None:
            conv = conversations.conversation_start(
                channel=Conversation.Channel.EMAIL,
                customer_name=parsed.from_name,
                customer_email=parsed.from_address,
            )
        mail = _record(
            message_id=parsed.message_id,
            status=Status.ACCEPTED,
            reason=note,
            raw=raw,
            source=source,
            parsed=parsed,
            conversation=conv,
        )
        notes = _attachments_store(mail, parsed)
        client_id = "mail:" + hashlib.sha256(parsed.message_id.encode()).hexdigest()[:40]
        try:
            posted = conversations.message_post(
                conversation_id=conv.pk, text=_text_for_chat(parsed, notes), client_id=client_id
            )
        except SupportError as exc:
            # Stored, but not a chat message (e.g. the text is refused): an agent sees why.
            mail.status = Status.REJECTED
            mail.reason = f"not posted: {exc.message}"
            mail.save(update_fields=["status", "reason"])
            return _received(mail, False)
        mail.chat_message = posted.message
        mail.save(update_fields=["chat_message"])
    return _received(mail, False)


def _bounce_note(parsed: ParsedEmail, raw: bytes, reason: str) -> None:
    """A bounce naming one of our mails marks that mail BOUNCED (an agent sees it failed).
    Delivery reports quote the failed mail's headers in a part of their own: its Message-ID
    is found there."""
    quoted = re.findall(rb"(?im)^message-id:\s*(<[^<>\s]{1,900}>)", raw[:1_000_000])
    ids = [i for i in (parsed.in_reply_to, *parsed.references) if i]
    ids += [q.decode("ascii", "replace") for q in quoted]
    if not ids:
        return
    EmailMessage.objects.filter(
        Q(message_id__in=ids), direction=EmailMessage.Direction.OUTBOUND
    ).update(status=Status.BOUNCED, reason=f"bounced: {reason}")
