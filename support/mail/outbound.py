"""Sending on the e-mail channel: the bot's answers, agents' replies and the hand-over notice
go to the customer as mail threaded under theirs.

The outbox (support.webhooks.outbox) hands every event to `event_consume` inside the
transaction of the change, so the mail is queued (an EmailMessage row, QUEUED) in the same
transaction that stores the answer, and sent by a task after the commit; `mail_outbox_sweep`
sends whatever is still queued after a lost task or a failed attempt. Automatic mail carries
`Auto-Submitted: auto-replied` (RFC 3834) and, per address, at most
SUPPORT_EMAIL_REPLIES_PER_HOUR go out: no endless loop with an autoresponder.
"""

from __future__ import annotations

import logging
import random
import smtplib
from datetime import timedelta
from email.utils import make_msgid
from typing import Any

from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from .. import jobs
from ..conf import get_support_settings
from ..events import citations_with_urls, display_name
from ..models import Conversation, EmailMessage, Message, WebhookEvent
from . import addresses

logger = logging.getLogger(__name__)

Status = EmailMessage.Status
MAX_SEND_ATTEMPTS = 8
SWEEP_GRACE_S = 60
ESCALATED_TEXT = (
    "Thank you for your message. A person from our team will reply to this e-mail as soon as "
    "possible."
)


def event_consume(event: WebhookEvent) -> EmailMessage | None:
    """The e-mail channel's reading of an outbox event (inside its transaction)."""
    if event.conversation_id is None:
        return None
    if event.type == "message.created":
        message = event.payload["data"]["message"]
        if message["role"] not in (Message.Role.BOT, Message.Role.AGENT):
            return None
        conv = Conversation.objects.filter(
            pk=event.conversation_id, channel=Conversation.Channel.EMAIL
        ).first()
        if conv is None:
            return None
        msg = Message.objects.select_related("author").get(pk=message["id"])
        return reply_queue(conversation=conv, message=msg)
    if event.type == "conversation.escalated":
        conv = Conversation.objects.filter(
            pk=event.conversation_id, channel=Conversation.Channel.EMAIL
        ).first()
        if conv is None:
            return None
        return reply_queue(conversation=conv, message=None, text=ESCALATED_TEXT)
    return None


def _thread_of(conv: Conversation) -> tuple[str, str, str]:
    """(In-Reply-To, References, Subject) for the next mail on the conversation."""
    mails = list(
        conv.emails.order_by("created_at", "pk").values_list("message_id", "subject", "direction")
    )
    if not mails:
        return "", "", "Your question"
    inbound = [m for m in mails if m[2] == EmailMessage.Direction.INBOUND]
    latest = (inbound or mails)[-1]
    refs = " ".join(m[0] for m in mails[-20:])
    subject = (inbound[0][1] if inbound else mails[0][1]) or "Your question"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    return latest[0], refs, subject


def _automatic_over_limit(to: str) -> bool:
    recent = EmailMessage.objects.filter(
        direction=EmailMessage.Direction.OUTBOUND,
        to_address=to,
        source="bot",
        created_at__gte=timezone.now() - timedelta(hours=1),
        status__in=(Status.QUEUED, Status.SENT),
    )
    return recent.count() >= get_support_settings().email_replies_per_hour


def reply_queue(
    *, conversation: Conversation, message: Message | None, text: str = ""
) -> EmailMessage | None:
    """Queue a mail to the customer: a stored message (bot or agent), or a notice `text`."""
    to = conversation.customer_email.strip().lower()
    if not to or not addresses.support_address():
        return None
    automatic = message is None or message.role == Message.Role.BOT
    in_reply_to, references, subject = _thread_of(conversation)
    domain = addresses.support_address().partition("@")[2]
    mail = EmailMessage(
        direction=EmailMessage.Direction.OUTBOUND,
        status=Status.QUEUED,
        conversation=conversation,
        chat_message=message,
        message_id=make_msgid(domain=domain),
        in_reply_to=in_reply_to,
        references=references,
        from_address=addresses.support_address(),
        to_address=to,
        subject=subject[:998],
        reason="" if message is not None else text[:2000],
        source="bot" if automatic else "agent",
        # The task queued on commit sends it; the sweep only after this (a lost task).
        next_attempt_at=timezone.now() + timedelta(seconds=SWEEP_GRACE_S),
    )
    if automatic and _automatic_over_limit(to):
        mail.status = Status.FAILED
        mail.reason = (
            f"not sent: more than {get_support_settings().email_replies_per_hour} automatic "
            f"mails to {to} within an hour (a loop?)"
        )
        mail.save()
        logger.warning("E-mail to %s not sent: automatic reply limit reached", to)
        return mail
    mail.save()
    jobs.mail_send_enqueue(email_id=mail.pk)
    return mail


def _context(mail: EmailMessage) -> dict[str, Any]:
    conf = get_support_settings()
    msg = mail.chat_message
    citations = [
        {
            "n": c.get("n"),
            "title": c.get("heading") or c.get("title") or "Source",
            "url": conf.public_url + c["url"],  # absolute: the mail is read elsewhere
        }
        for c in (citations_with_urls(msg.citations or []) if msg is not None else [])
    ]
    author = msg.author if msg is not None else None
    quoted = ""
    if mail.conversation_id:
        quoted = (
            Message.objects.filter(
                conversation_id=mail.conversation_id, role=Message.Role.CUSTOMER, internal=False
            )
            .order_by("-created_at", "-pk")
            .values_list("text", flat=True)
            .first()
            or ""
        )
    return {
        "company_name": conf.company_name,
        "text": msg.text if msg is not None else mail.reason,
        "citations": citations,
        "agent_name": display_name(author) if author else None,
        "is_bot": msg is None or msg.role == Message.Role.BOT,
        "quoted": quoted,
        "quoted_block": "\n".join(f"> {line}" for line in quoted[:800].splitlines()),
    }


def _build(mail: EmailMessage) -> EmailMultiAlternatives:
    conf = get_support_settings()
    context = _context(mail)
    headers = {"Message-ID": mail.message_id}
    if mail.in_reply_to:
        headers["In-Reply-To"] = mail.in_reply_to
    if mail.references:
        headers["References"] = mail.references
    if context["is_bot"]:
        # RFC 3834: a machine wrote this; autoresponders must not answer it.
        headers["Auto-Submitted"] = "auto-replied"
        headers["X-Auto-Response-Suppress"] = "All"
    message = EmailMultiAlternatives(
        subject=mail.subject,
        body=render_to_string("support/email/channel_reply.txt", context),
        from_email=f"{conf.company_name} <{mail.from_address}>",
        to=[mail.to_address],
        reply_to=[addresses.reply_address(mail.conversation_id)] if mail.conversation_id else None,
        headers=headers,
    )
    message.attach_alternative(
        render_to_string("support/email/channel_reply.html", context), "text/html"
    )
    return message


def _permanent(exc: Exception) -> bool:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(500 <= c < 600 for c in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


def email_send(*, email_id: int) -> str:
    """Send a queued mail through EMAIL_BACKEND; returns its status. Transient SMTP failures
    wait for the sweep (backoff); a permanent refusal (5xx) or MAX_SEND_ATTEMPTS fails it."""
    with transaction.atomic():
        mail = (
            EmailMessage.objects.select_for_update(of=("self",))
            .select_related("chat_message__author")
            .filter(pk=email_id)
            .first()
        )
        if mail is None or mail.status != Status.QUEUED:
            return mail.status if mail else "missing"
        if mail.attempts and mail.next_attempt_at and mail.next_attempt_at > timezone.now():
            return "busy"  # another worker's attempt, or not due yet
        mail.attempts += 1
        # A worker that dies while sending: the sweep picks the mail up after this.
        mail.next_attempt_at = timezone.now() + timedelta(minutes=5)
        mail.save(update_fields=["attempts", "next_attempt_at"])
    try:
        message = _build(mail)
        with get_connection() as connection:
            connection.send_messages([message])
    except Exception as exc:
        final = _permanent(exc) or mail.attempts >= MAX_SEND_ATTEMPTS
        logger.warning(
            "Sending e-mail %s failed (%s): %s", mail.pk, "final" if final else "will retry", exc
        )
        wait = min(3600.0, 30.0 * 2 ** (mail.attempts - 1)) * random.uniform(0.5, 1.0)  # noqa: S311
        EmailMessage.objects.filter(pk=mail.pk).update(
            status=Status.FAILED if final else Status.QUEUED,
            reason=f"attempt {mail.attempts}: {type(exc).__name__}: {exc}"[:2000],
            next_attempt_at=timezone.now() + timedelta(seconds=wait),
        )
        return Status.FAILED if final else Status.QUEUED
    EmailMessage.objects.filter(pk=mail.pk).update(
        status=Status.SENT, sent_at=timezone.now(), next_attempt_at=None
    )
    return Status.SENT


def mail_outbox_sweep() -> int:
    """Queue every mail still waiting to be sent whose time has come; returns how many."""
    ids = list(
        EmailMessage.objects.filter(
            direction=EmailMessage.Direction.OUTBOUND,
            status=Status.QUEUED,
            next_attempt_at__lte=timezone.now(),
        ).values_list("pk", flat=True)[:200]
    )
    with transaction.atomic():
        for pk in ids:
            jobs.mail_send_enqueue(email_id=pk)
    return len(ids)
