"""Conversation services: start/resume, customer messages, feedback, handoff, the end rating."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import events, jobs, webhooks
from .answered import answers_over_ceiling
from .conf import get_support_settings
from .exceptions import ConversationClosed, ConversationNotFound, InvalidMessage, SupportError
from .handoff.escalation import (
    CUSTOMER_REQUEST,
    CheckStage,
    busy_decision,
    conversation_escalate,
    escalation_apply,
    escalation_check,
    status_payload,
)
from .handoff.transcript import ACK_TEXT, LineKind, ack_due, transcript_line_post
from .limits import message_rate_check
from .models import Conversation, Feedback, Message
from .selectors import conversation_lock
from .streaming import stream_state_get

TOKEN_SALT = "support.conversation"  # noqa: S105 (a signing namespace, not a secret)
HISTORY_LIMIT = 200
# The optional comment of the end-of-chat rating; longer ones are refused, not cut.
RATING_COMMENT_MAX_CHARS = 1000
# NUL and C0/C1 controls other than tab/newline (CR is read as a line break first), DEL, and
# unpaired surrogates: rejected before storage.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class InvalidToken(SupportError):
    code = "token_invalid"


class InvalidRating(SupportError):
    code = "invalid_rating"


class NotResolved(SupportError):
    code = "not_resolved"


def conversation_token(conversation_id: UUID) -> str:
    """Signed, timestamped resume token: cannot be forged or pointed at another conversation."""
    return signing.dumps({"c": conversation_id.hex}, salt=TOKEN_SALT, compress=True)


def conversation_from_token(token: str) -> Conversation:
    """The conversation a token belongs to; InvalidToken when forged, expired or gone."""
    max_age = get_support_settings().token_max_age_s
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=max_age)
        conversation_id = UUID(hex=data["c"])
    except signing.SignatureExpired as exc:
        raise InvalidToken("Your earlier conversation has expired; this is a new one.") from exc
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken("That conversation link is not valid; this is a new one.") from exc
    conv = Conversation.objects.filter(pk=conversation_id).first()
    if conv is None:
        raise InvalidToken("That conversation no longer exists; this is a new one.")
    return conv


def conversation_start(
    *,
    channel: str = Conversation.Channel.WIDGET,
    origin: str = "",
    customer_name: str = "",
    customer_email: str = "",
    language: str = "",
) -> Conversation:
    """Create a new conversation with the bot."""
    with transaction.atomic():
        conv = Conversation.objects.create(
            channel=channel,
            origin=origin[:300],
            customer_name=customer_name[:200],
            customer_email=customer_email[:254],
            language=language[:16],
        )
        webhooks.conversation_event("conversation.created", conv)
    return conv


@dataclass(frozen=True, slots=True)
class Welcome:
    conversation: Conversation
    token: str
    resumed: bool
    error: SupportError | None
    frame: dict[str, Any]


def conversation_open(
    *,
    token: str | None,
    origin: str = "",
    customer_name: str = "",
    customer_email: str = "",
    language: str = "",
) -> Welcome:
    """Resume the token's conversation, or start a fresh one (with the reason when refused)."""
    error: SupportError | None = None
    conv: Conversation | None = None
    if token:
        try:
            conv = conversation_from_token(token)
        except InvalidToken as exc:
            error = exc
    resumed = conv is not None
    if conv is None:
        conv = conversation_start(
            origin=origin,
            customer_name=customer_name,
            customer_email=customer_email,
            language=language,
        )
    new_token = conversation_token(conv.pk)
    return Welcome(conv, new_token, resumed, error, welcome_frame(conv, new_token, resumed))


def welcome_frame(conversation: Conversation, token: str, resumed: bool) -> dict[str, Any]:
    history = list(
        conversation.messages.filter(internal=False)
        .select_related("author__agent_profile", "feedback")
        .order_by("-created_at", "-id")[:HISTORY_LIMIT]
    )
    history.reverse()
    status = status_payload(conversation)
    return {
        "type": "welcome",
        "token": token,
        "conversation_id": conversation.pk.hex,
        "status": conversation.status,
        "status_text": status["text"],
        "history": [events.message_payload(m) for m in history],
        "streaming": stream_state_get(conversation_id=conversation.pk),
        "queue_position": status["queue_position"],
        "wait_minutes": status["wait_minutes"],
        "agent_name": status["agent_name"],
        "resumed": resumed,
        "max_message_chars": get_support_settings().max_message_chars,
        # The end-of-chat rating (1-5) once given: the widget shows its thanks, not the question.
        "rating": conversation.rating,
        # Outside business hours: when people are back, and whether to ask for an email.
        **{k: status[k] for k in ("out_of_hours", "back_at", "ask_email") if k in status},
    }


def clean_customer_text(text: str) -> str:
    """The message text as stored: line breaks normalised, trimmed; InvalidMessage when it
    holds control characters or invalid Unicode, is empty or is too long."""
    conf = get_support_settings()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL.search(text):
        raise InvalidMessage(
            "The message 'text' cannot contain control characters.", code="bad_frame"
        )
    if _SURROGATE.search(text):
        raise InvalidMessage(
            "The message 'text' is not valid Unicode (unpaired surrogate).", code="bad_frame"
        )
    text = text.strip()
    if not text:
        raise InvalidMessage("The message is empty.", code="bad_frame")
    if len(text) > conf.max_message_chars:
        raise InvalidMessage(
            f"Messages can be at most {conf.max_message_chars} characters long "
            f"(this one has {len(text)}).",
            code="message_too_long",
        )
    return text


@dataclass(frozen=True, slots=True)
class PostResult:
    message: Message
    created: bool


def message_post(*, conversation_id: UUID, text: str, client_id: str) -> PostResult:
    """Store a customer message (idempotent on client_id) and decide what happens next.

    On commit: the message is broadcast; then either an escalation (the customer asked for a
    person, or SUPPORT_MAX_PENDING_ANSWERS questions already wait for the bot) or a debounced
    answer task. While queued or with an agent, the bot stays silent; the first message of a
    run sent while queued is acknowledged (an ACK line, in this transaction).
    """
    text = clean_customer_text(text)
    if not client_id or len(client_id) > 64:
        raise InvalidMessage("client_id must be 1 to 64 characters.", code="bad_frame")
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        existing = conv.messages.filter(client_id=client_id).first()
        if existing is not None:
            return PostResult(existing, created=False)
        if conv.status == Conversation.Status.RESOLVED:
            raise ConversationClosed(
                "This conversation is resolved. Start a new one to ask something else."
            )
        try:
            with transaction.atomic():
                msg = Message.objects.create(
                    conversation=conv, role=Message.Role.CUSTOMER, text=text, client_id=client_id
                )
        except IntegrityError:  # a concurrent resend won the race
            return PostResult(conv.messages.get(client_id=client_id), created=False)
        conv.last_message_at = msg.created_at
        conv.save(update_fields=["last_message_at", "updated_at"])
        webhooks.message_event(msg)
        group = events.conversation_group(conv.pk)
        events.group_send_on_commit(group, events.message_created(msg))
        events.group_send_on_commit(events.AGENTS_GROUP, events.message_created(msg))
        # The rules only here (no embedding model in the web process); the worker runs the
        # rules that need it before answering (CheckStage).
        if conv.status == Conversation.Status.BOT:
            decision = escalation_check(message_id=msg.pk, stage=CheckStage.RECEIVED)
            if not decision.escalate and answers_over_ceiling():
                # Too many questions wait for the bot already: a person instead of a pile-up.
                decision = busy_decision()
            if decision.escalate:
                escalation_apply(
                    conversation_id=conv.pk, decision=decision, trigger_message_id=msg.pk
                )
            else:
                _queue_answer(msg.pk)
        elif ack_due(conversation=conv, message=msg):
            transcript_line_post(conversation=conv, kind=LineKind.ACK, text=ACK_TEXT)
    return PostResult(msg, created=True)


def _queue_answer(message_id: int) -> None:
    jobs.reply_generate_enqueue(message_id=message_id, countdown=get_support_settings().debounce_s)


def customer_message_receive(
    *, conversation_id: UUID, text: str, client_id: str, ip: str
) -> PostResult:
    """A customer message from a socket: counted against the IP's and the conversation's rate
    limits (RateLimited), then `message_post`."""
    message_rate_check(ip=ip, conversation_id=conversation_id)
    return message_post(conversation_id=conversation_id, text=text, client_id=client_id)


def handoff_request(*, conversation_id: UUID) -> dict[str, Any]:
    """The customer pressed "Talk to a person": queue the conversation; returns the status."""
    conv = Conversation.objects.filter(pk=conversation_id).first()
    if conv is None:
        raise ConversationNotFound("This conversation does not exist.")
    if conv.status == Conversation.Status.RESOLVED:
        raise ConversationClosed("This conversation is resolved. Start a new one.")
    if conv.status == Conversation.Status.BOT:
        last = conv.messages.filter(role=Message.Role.CUSTOMER).order_by("-created_at").first()
        conversation_escalate(
            conversation_id=conv.pk,
            reasons=(CUSTOMER_REQUEST,),
            trigger_message_id=last.pk if last else None,
        )
        conv.refresh_from_db()
    return status_payload(conv)


def feedback_set(
    *, conversation_id: UUID, message_id: int, value: str, comment: str = ""
) -> Feedback:
    """Thumbs up/down on a bot answer of this conversation (replaces an earlier value); a
    decline cannot be rated (`not_an_answer`)."""
    if value not in Feedback.Value.values:
        raise InvalidMessage("value must be 'up' or 'down'.", code="bad_frame")
    msg = Message.objects.filter(
        pk=message_id, conversation_id=conversation_id, role=Message.Role.BOT
    ).first()
    if msg is None:
        raise SupportError("No such answer in this conversation.", code="not_found")
    if events.is_decline(msg):
        # A decline offers a rephrase or a person: there is no answer to rate (the widget shows
        # no thumbs on it either).
        raise SupportError(
            "That message is not an answer, so it cannot be rated.", code="not_an_answer"
        )
    with transaction.atomic():
        feedback, _ = Feedback.objects.update_or_create(
            message=msg, defaults={"value": value, "comment": comment[:2000]}
        )
        webhooks.feedback_event(feedback)
        # A helpful answer becomes an example; a changed mind withdraws it (support.learning).
        if get_support_settings().learn_from_conversations:
            jobs.example_from_feedback_enqueue(message_id=msg.pk)
    return feedback


def customer_email_set(*, conversation_id: UUID, email: str) -> Conversation:
    """Keep the customer's email so an agent can follow up."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    email = email.strip()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidMessage("That email address does not look right.", code="bad_frame") from exc
    updated = Conversation.objects.filter(pk=conversation_id).update(
        customer_email=email, updated_at=timezone.now()
    )
    if not updated:
        raise ConversationNotFound("This conversation does not exist.")
    return Conversation.objects.get(pk=conversation_id)


def conversation_rate(*, conversation_id: UUID, rating: int, comment: str = "") -> Conversation:
    """The customer's 1-5 satisfaction rating of an ended (resolved) conversation, with an
    optional comment (at most RATING_COMMENT_MAX_CHARS); rating again replaces the earlier
    rating, comment and `rated_at`. InvalidRating for a bad value, NotResolved before the end."""
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidRating("The rating must be a whole number from 1 to 5.")
    comment = comment.replace("\r\n", "\n").replace("\r", "\n").strip()
    if _CONTROL.search(comment) or _SURROGATE.search(comment):
        raise InvalidRating("The comment cannot contain control characters.")
    if len(comment) > RATING_COMMENT_MAX_CHARS:
        raise InvalidRating(
            f"The comment can be at most {RATING_COMMENT_MAX_CHARS} characters long "
            f"(this one has {len(comment)})."
        )
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        if conv.status != Conversation.Status.RESOLVED:
            raise NotResolved("A conversation can be rated once it has ended.")
        conv.rating = rating
        conv.rating_comment = comment
        conv.rated_at = timezone.now()
        conv.save(update_fields=["rating", "rating_comment", "rated_at", "updated_at"])
    return conv
