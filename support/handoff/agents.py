"""The agent side of escalations: the queue, claiming, replies, notes, resolving, handing back.

Services write (each in one transaction that locks the conversation row first, so two agents
acting at once are serialised) and broadcast on commit; selectors read for the workspace.
Admin views and the agents' websocket consumer are thin adapters over these functions.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import OuterRef, Q, Subquery
from django.template.loader import render_to_string
from django.utils import timezone

from .. import events, jobs, webhooks
from ..answered import answered_upto, next_question_id
from ..conf import get_support_settings
from ..exceptions import (
    AlreadyClaimed,
    ConversationNotFound,
    EmailNotSent,
    InvalidMessage,
    NotAnAgent,
    NotAssigned,
    NotQueued,
    SupportError,
)
from ..models import CannedResponse, Conversation, Escalation, Message, ReplyEmail
from ..selectors import conversation_lock
from ..streaming import cancel_request
from .escalation import queued_status_payload, status_payload
from .hours import BusinessHours, business_hours_status
from .transcript import (
    ENDED_TEXT,
    LineKind,
    claimed_text,
    handed_back_text,
    transcript_line_post,
)

logger = logging.getLogger(__name__)

AGENT_PERMISSION = "support.work_escalations"
LIVE_STATES = (Escalation.State.OPEN, Escalation.State.CLAIMED)
# Agents may write longer than customers (instructions, pasted steps), within reason.
MAX_AGENT_TEXT = 8000
HAND_BACK_TEXT = "You are chatting with our assistant again. Ask for a person at any time."
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


# --- who is an agent ------------------------------------------------------------------------
def is_support_agent(user: Any) -> bool:
    """Active staff with the workspace permission (the "Support agents" group, or superusers)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and getattr(user, "is_staff", False)
        and user.has_perm(AGENT_PERMISSION)
    )


def agent_display_name(user: Any) -> str:
    return events.display_name(user)


def support_agents_list() -> list[Any]:
    """Everyone a conversation can be assigned to, by name."""
    app_label, codename = AGENT_PERMISSION.split(".")
    perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
    users = get_user_model().objects.filter(is_active=True, is_staff=True)
    condition = Q(is_superuser=True)
    if perm is not None:
        condition |= Q(groups__permissions=perm) | Q(user_permissions=perm)
    return sorted(users.filter(condition).distinct(), key=agent_display_name)


# --- reads: the queue -----------------------------------------------------------------------
def _reason_label(value: str) -> str:
    try:
        return str(Escalation.Reason(value).label)
    except ValueError:
        return value.replace("_", " ")


def _wait_text(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours // 24} days"


@dataclass(frozen=True, slots=True)
class QueueItem:
    conversation_id: UUID
    escalation_id: int
    state: str
    reasons: tuple[str, ...]  # labels
    created_at: datetime
    wait_seconds: int
    customer_name: str
    customer_email: str
    first_question: str
    language: str
    claimed_by: str | None

    @property
    def wait_text(self) -> str:
        return _wait_text(self.wait_seconds)

    def as_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id.hex,
            "escalation_id": self.escalation_id,
            "state": self.state,
            "reasons": list(self.reasons),
            "created_at": self.created_at.isoformat(),
            "wait_seconds": self.wait_seconds,
            "wait_text": self.wait_text,
            "customer_name": self.customer_name,
            "customer_email": self.customer_email,
            "first_question": self.first_question,
            "language": self.language,
            "claimed_by": self.claimed_by,
        }


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    waiting: tuple[QueueItem, ...]  # open escalations, oldest first
    active: tuple[QueueItem, ...]  # claimed, oldest first

    @property
    def count(self) -> int:
        return len(self.waiting)

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "waiting": [i.as_dict() for i in self.waiting],
            "active": [i.as_dict() for i in self.active],
        }


def escalation_queue_count() -> int:
    """How many conversations wait for a person (the badge)."""
    return Escalation.objects.filter(state=Escalation.State.OPEN).count()


def escalation_queue_list(*, now: datetime | None = None, limit: int = 200) -> QueueSnapshot:
    """Waiting and claimed escalations, oldest first, with what an agent needs to pick one."""
    now = now or timezone.now()
    first_question = (
        Message.objects.filter(
            conversation=OuterRef("conversation"), role=Message.Role.CUSTOMER, internal=False
        )
        .order_by("created_at", "pk")
        .values("text")[:1]
    )
    rows = (
        Escalation.objects.filter(state__in=LIVE_STATES)
        .select_related("conversation", "claimed_by")
        .annotate(first_question=Subquery(first_question))
        .order_by("created_at", "pk")[:limit]
    )
    items: dict[str, list[QueueItem]] = {"open": [], "claimed": []}
    for esc in rows:
        conv = esc.conversation
        items[esc.state].append(
            QueueItem(
                conversation_id=conv.pk,
                escalation_id=esc.pk,
                state=esc.state,
                reasons=tuple(_reason_label(r) for r in esc.reasons),
                created_at=esc.created_at,
                wait_seconds=max(0, int((now - esc.created_at).total_seconds())),
                customer_name=conv.customer_name,
                customer_email=conv.customer_email,
                first_question=(getattr(esc, "first_question", None) or "")[:300],
                language=conv.language,
                claimed_by=agent_display_name(esc.claimed_by) if esc.claimed_by else None,
            )
        )
    return QueueSnapshot(tuple(items["open"]), tuple(items["claimed"]))


# --- reads: one conversation -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TranscriptItem:
    message: Message
    author_name: str | None
    feedback: str | None
    feedback_comment: str
    citations: tuple[dict[str, Any], ...]
    retrieved: tuple[dict[str, Any], ...]
    emailed_to: str | None


@dataclass(frozen=True, slots=True)
class CannedText:
    id: int
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Workspace:
    conversation: Conversation
    escalation: Escalation | None  # the live one, else the latest
    reasons: tuple[str, ...]
    transcript: tuple[TranscriptItem, ...]
    assigned_to_me: bool
    assigned_name: str | None
    canned: tuple[CannedText, ...]
    agents: tuple[tuple[int, str], ...]
    hours: BusinessHours
    actions: frozenset[str] = field(default_factory=frozenset)


def _fill(text: str, values: dict[str, str]) -> str:
    # Only known {name} placeholders; anything else (braces in prose) stays as written.
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def canned_responses_render(*, conversation: Conversation, agent: Any) -> tuple[CannedText, ...]:
    """The enabled canned responses with {customer_name}, {agent_name}, {company_name} filled."""
    values = {
        "customer_name": conversation.customer_name or "there",
        "agent_name": agent_display_name(agent),
        "company_name": get_support_settings().company_name,
    }
    return tuple(
        CannedText(c.pk, c.title, _fill(c.text, values))
        for c in CannedResponse.objects.filter(enabled=True)
    )


def _actions(conv: Conversation, esc: Escalation | None, agent: Any) -> frozenset[str]:
    mine = conv.assigned_agent_id == agent.pk or bool(getattr(agent, "is_superuser", False))
    actions = {"note"}
    if conv.status == Conversation.Status.QUEUED:
        actions |= {"claim", "assign", "resolve", "hand_back"}
    elif conv.status == Conversation.Status.AGENT and mine:
        actions |= {"reply", "release", "assign", "resolve", "hand_back", "suggest"}
    return frozenset(actions)


def conversation_workspace_get(*, conversation_id: UUID, agent: Any) -> Workspace:
    """Everything the agent's conversation page shows, internal notes included."""
    conv = Conversation.objects.select_related("assigned_agent").filter(pk=conversation_id).first()
    if conv is None:
        raise ConversationNotFound("This conversation does not exist.")
    escalations = list(conv.escalations.order_by("-created_at", "-pk"))
    live = next((e for e in escalations if e.state in LIVE_STATES), None)
    esc = live or (escalations[0] if escalations else None)
    messages = conv.messages.select_related(
        "author__agent_profile", "feedback", "reply_email"
    ).order_by("created_at", "pk")
    transcript = []
    for m in messages:
        fb = getattr(m, "feedback", None) if m.role == Message.Role.BOT else None
        mail = getattr(m, "reply_email", None)
        transcript.append(
            TranscriptItem(
                message=m,
                author_name=agent_display_name(m.author) if m.author else None,
                feedback=fb.value if fb else None,
                feedback_comment=fb.comment if fb else "",
                citations=tuple(events.citations_with_urls(m.citations or [])),
                retrieved=tuple(m.retrieved or ()),
                emailed_to=mail.to if mail else None,
            )
        )
    agent_name = agent_display_name(conv.assigned_agent) if conv.assigned_agent else None
    return Workspace(
        conversation=conv,
        escalation=esc,
        reasons=tuple(_reason_label(r) for r in (esc.reasons if esc else [])),
        transcript=tuple(transcript),
        assigned_to_me=conv.assigned_agent_id == agent.pk,
        assigned_name=agent_name,
        canned=canned_responses_render(conversation=conv, agent=agent),
        agents=tuple((u.pk, agent_display_name(u)) for u in support_agents_list()),
        hours=business_hours_status(),
        actions=_actions(conv, esc, agent),
    )


# --- writes ---------------------------------------------------------------------------------
def _live_escalation(conv: Conversation) -> Escalation | None:
    return (
        Escalation.objects.select_for_update(of=("self",))
        .filter(conversation=conv, state__in=LIVE_STATES)
        .select_related("claimed_by")
        .first()
    )


def _may_act(conv: Conversation, agent: Any) -> bool:
    return conv.assigned_agent_id == agent.pk or bool(getattr(agent, "is_superuser", False))


def _require_holder(conv: Conversation, agent: Any) -> None:
    """With an agent, only that agent (or a superuser) may act on the conversation."""
    if conv.status == Conversation.Status.AGENT and not _may_act(conv, agent):
        holder = agent_display_name(conv.assigned_agent) if conv.assigned_agent else "another agent"
        raise NotAssigned(f"{holder} has this conversation.")


def _clean_agent_text(text: str) -> str:
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidMessage("The message is empty.", code="bad_frame")
    if len(text) > MAX_AGENT_TEXT:
        raise InvalidMessage(f"Messages can be at most {MAX_AGENT_TEXT} characters long.")
    return text


def _log(conv: Conversation, agent: Any, text: str) -> None:
    """An internal system line in the transcript (who claimed, released, resolved...)."""
    entry = Message.objects.create(
        conversation=conv, role=Message.Role.SYSTEM, text=text, internal=True, author=agent
    )
    events.group_send_on_commit(events.AGENTS_GROUP, events.message_created(entry))


def _announce(conv: Conversation, customer_status: dict[str, Any] | None) -> None:
    """On commit: the customer's status line, the agents' queue, the waiting customers' places."""
    if customer_status is not None:
        events.group_send_on_commit(
            events.conversation_group(conv.pk), events.status_changed(customer_status)
        )
    events.group_send_on_commit(
        events.AGENTS_GROUP, events.queue_changed(conversation_id=conv.pk, status=conv.status)
    )
    transaction.on_commit(queue_positions_announce)


def queue_positions_announce(*, limit: int = 100) -> int:
    """Tell every waiting customer their (new) place in the queue; returns how many were told."""
    waiting = Escalation.objects.filter(state=Escalation.State.OPEN).order_by("created_at")[:limit]
    count = 0
    for esc in waiting:
        events.group_send(
            events.conversation_group(esc.conversation_id),
            events.status_changed(queued_status_payload(esc)),
        )
        count += 1
    return count


def escalation_claim(*, conversation_id: UUID, agent: Any) -> Escalation:
    """Take a waiting conversation; exactly one of two agents claiming at once wins.

    The row lock on the conversation serialises claims: the loser reads the winner's claim
    after the lock is released and gets AlreadyClaimed. The customer sees the agent's name.
    """
    if not is_support_agent(agent):
        raise NotAnAgent("Only support agents can claim conversations.")
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        esc = _live_escalation(conv)
        if esc is None:
            raise NotQueued("This conversation is not waiting for a person.")
        if esc.state == Escalation.State.CLAIMED:
            if esc.claimed_by_id == agent.pk:
                return esc
            holder = agent_display_name(esc.claimed_by) if esc.claimed_by else "Another agent"
            raise AlreadyClaimed(f"{holder} already claimed this conversation.")
        _claim_for(
            conv, esc, agent, by=agent, log=f"{agent_display_name(agent)} claimed the conversation."
        )
    return esc


def _claim_for(conv: Conversation, esc: Escalation, holder: Any, *, by: Any, log: str) -> None:
    """`holder` has the conversation now (claimed, or assigned `by` another agent); under the
    conversation's lock. The customer sees the holder's name (a CLAIMED line and the status)."""
    esc.state = Escalation.State.CLAIMED
    esc.claimed_by = holder
    esc.claimed_at = esc.claimed_at or timezone.now()
    esc.save(update_fields=["state", "claimed_by", "claimed_at"])
    conv.status = Conversation.Status.AGENT
    conv.assigned_agent = holder
    conv.save(update_fields=["status", "assigned_agent", "updated_at"])
    webhooks.conversation_event("conversation.claimed", conv)
    _log(conv, by, log)
    name = agent_display_name(holder)
    transcript_line_post(
        conversation=conv, kind=LineKind.CLAIMED, text=claimed_text(name), author=holder
    )
    _announce(conv, status_payload(conv))


def escalation_release(*, conversation_id: UUID, agent: Any) -> Escalation:
    """Put a claimed conversation back in the queue, at its original place."""
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        esc = _live_escalation(conv)
        if esc is None or esc.state != Escalation.State.CLAIMED:
            raise NotQueued("This conversation is not claimed.")
        _require_holder(conv, agent)
        esc.state = Escalation.State.OPEN
        esc.claimed_by = None
        esc.save(update_fields=["state", "claimed_by"])
        conv.status = Conversation.Status.QUEUED
        conv.assigned_agent = None
        conv.save(update_fields=["status", "assigned_agent", "updated_at"])
        _log(conv, agent, f"{agent_display_name(agent)} put the conversation back in the queue.")
        _announce(conv, None)  # the waiting customers (this one included) get their place
    return esc


def escalation_assign(*, conversation_id: UUID, agent: Any, to_agent_id: int) -> Escalation:
    """Give a waiting conversation, or one the agent holds, to another agent."""
    target = get_user_model().objects.filter(pk=to_agent_id).first()
    if target is None or not is_support_agent(target):
        raise NotAnAgent("Conversations can only be assigned to support agents.")
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        esc = _live_escalation(conv)
        if esc is None:
            raise NotQueued("This conversation is not waiting for a person.")
        _require_holder(conv, agent)
        if esc.claimed_by_id == target.pk:
            return esc
        _claim_for(
            conv,
            esc,
            target,
            by=agent,
            log=f"{agent_display_name(agent)} assigned the conversation to "
            f"{agent_display_name(target)}.",
        )
    return esc


def agent_reply_post(
    *, conversation_id: UUID, agent: Any, text: str, send_email: bool = False
) -> Message:
    """A reply from the agent holding the conversation: live in the customer's widget, and by
    email too when asked (raises EmailNotSent after storing if the email fails)."""
    text = _clean_agent_text(text)
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        if conv.status != Conversation.Status.AGENT or not _may_act(conv, agent):
            raise NotAssigned("Claim the conversation before replying.")
        send_email = send_email and conv.channel != Conversation.Channel.EMAIL  # mailed anyway
        if send_email and not conv.customer_email:
            raise InvalidMessage("The customer left no email address.")
        msg = Message.objects.create(
            conversation=conv, role=Message.Role.AGENT, text=text, author=agent
        )
        conv.last_message_at = msg.created_at
        conv.save(update_fields=["last_message_at", "updated_at"])
        webhooks.message_event(msg)  # on the e-mail channel this also queues the mail
        created = events.message_created(msg)
        events.group_send_on_commit(events.conversation_group(conv.pk), created)
        events.group_send_on_commit(events.AGENTS_GROUP, created)
    if send_email:
        reply_email_send(message_id=msg.pk)
    return msg


def reply_email_send(*, message_id: int) -> ReplyEmail:
    """Email an agent reply to the customer (plain text and escaped HTML); never silent."""
    msg = Message.objects.select_related("conversation", "author").get(pk=message_id)
    conv = msg.conversation
    if not conv.customer_email:
        raise InvalidMessage("The customer left no email address.")
    company = get_support_settings().company_name
    question = (
        conv.messages.filter(role=Message.Role.CUSTOMER, internal=False)
        .order_by("created_at", "pk")
        .values_list("text", flat=True)
        .first()
    )
    context = {
        "company_name": company,
        "customer_name": conv.customer_name,
        "agent_name": agent_display_name(msg.author) if msg.author else company,
        "reply": msg.text,
        "question": question or "",
    }
    body = render_to_string("support/email/agent_reply.txt", context)
    html = render_to_string("support/email/agent_reply.html", context)
    try:
        send_mail(
            f"{company}: a reply to your question",
            body,
            None,
            [conv.customer_email],
            html_message=html,
            fail_silently=False,
        )
    except Exception as exc:  # SMTP, DNS, socket: the agent must learn it did not go out
        logger.exception("Reply email for message %s failed", message_id)
        raise EmailNotSent(
            f"The reply is posted, but the email to {conv.customer_email} could not be sent: {exc}"
        ) from exc
    sent, _ = ReplyEmail.objects.get_or_create(message=msg, defaults={"to": conv.customer_email})
    return sent


def agent_note_post(*, conversation_id: UUID, agent: Any, text: str) -> Message:
    """An internal note: seen by agents only, never sent to the customer nor to the bot."""
    text = _clean_agent_text(text)
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        note = Message.objects.create(
            conversation=conv, role=Message.Role.AGENT, text=text, author=agent, internal=True
        )
        events.group_send_on_commit(events.AGENTS_GROUP, events.message_created(note))
    return note


def _close_escalation(conv: Conversation, state: str) -> None:
    esc = _live_escalation(conv)
    if esc is not None:
        esc.state = state
        esc.resolved_at = timezone.now()
        esc.save(update_fields=["state", "resolved_at"])


def conversation_resolve(*, conversation_id: UUID, agent: Any) -> Conversation:
    """Close the conversation (idempotent); the customer is told (an ENDED line and the
    status) and can start a new one."""
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        if conv.status == Conversation.Status.RESOLVED:
            return conv
        _require_holder(conv, agent)
        _close_escalation(conv, Escalation.State.RESOLVED)
        conv.status = Conversation.Status.RESOLVED
        conv.resolved_at = timezone.now()
        conv.save(update_fields=["status", "resolved_at", "updated_at"])
        webhooks.conversation_event("conversation.resolved", conv)
        # The agent's answer becomes an example to review (support.learning.examples).
        if get_support_settings().learn_from_conversations:
            jobs.examples_from_conversation_enqueue(conversation_id=conv.pk.hex)
        _log(conv, agent, f"{agent_display_name(agent)} resolved the conversation.")
        transcript_line_post(conversation=conv, kind=LineKind.ENDED, text=ENDED_TEXT, author=agent)
        # An answer the bot may still be writing (a bot conversation) stops at its next token.
        transaction.on_commit(lambda: cancel_request(conversation_id=conversation_id))
        _announce(conv, status_payload(conv))
    return conv


def conversation_hand_back(*, conversation_id: UUID, agent: Any) -> Conversation:
    """Give the conversation back to the bot, which then sees the agent's replies as history.

    The customer is told (a HANDED_BACK line). The bot answers the latest customer message
    when nobody did (support.answered: no bot or agent answer, sent after the hand-over); the
    earlier ones are settled by the hand back and not answered separately.
    """
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        if conv.status not in (Conversation.Status.QUEUED, Conversation.Status.AGENT):
            raise NotQueued("Only a conversation with a person or in the queue can be handed back.")
        _require_holder(conv, agent)
        _close_escalation(conv, Escalation.State.HANDED_BACK)
        conv.status = Conversation.Status.BOT
        conv.assigned_agent = None
        conv.save(update_fields=["status", "assigned_agent", "updated_at"])
        _log(conv, agent, f"{agent_display_name(agent)} handed the conversation back to the bot.")
        transcript_line_post(
            conversation=conv,
            kind=LineKind.HANDED_BACK,
            text=handed_back_text(agent_display_name(agent)),
            author=agent,
        )
        waiting = next_question_id(conversation_id=conv.pk)
        if waiting is not None:
            jobs.reply_generate_enqueue(message_id=waiting)
        _announce(
            conv,
            {
                "status": Conversation.Status.BOT.value,
                "queue_position": None,
                "wait_minutes": None,
                "agent_name": None,
                "text": HAND_BACK_TEXT,
            },
        )
    return conv


def agent_typing_set(*, conversation_id: UUID, agent: Any, active: bool) -> bool:
    """Show "<agent> is typing" in the customer's widget, for the agent holding the chat only."""
    holds = Conversation.objects.filter(
        pk=conversation_id, status=Conversation.Status.AGENT, assigned_agent=agent
    ).exists()
    if holds:
        events.group_send(
            events.conversation_group(conversation_id),
            events.typing_changed(role="agent", active=active),
        )
    return holds


# --- suggested replies ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Suggestion:
    text: str  # "" when the knowledge base has nothing confident
    action: str
    confidence: float
    citations: tuple[dict[str, Any], ...]
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "text": self.text,
            "action": self.action,
            "confidence": self.confidence,
            "citations": events.citations_with_urls(self.citations),
            "note": self.note,
        }


def _question_and_history(conv: Conversation) -> tuple[str, tuple[Any, ...]]:
    """The customer messages not answered yet (support.answered: an escalation is no answer)
    as the question, the visible turns before them as history."""
    from ..answers.types import Turn

    settled = answered_upto(conversation_id=conv.pk, escalations=False)
    visible = [
        m
        for m in conv.messages.filter(internal=False).order_by("created_at", "pk")
        if m.role != Message.Role.SYSTEM
    ]
    burst = [m for m in visible if m.role == Message.Role.CUSTOMER and m.pk > settled]
    if not burst:  # the agent already answered: draft for the latest customer message again
        customer = [m for m in visible if m.role == Message.Role.CUSTOMER]
        if not customer:
            raise SupportError("There is no customer question to answer yet.", code="no_question")
        burst = customer[-1:]
    earlier = [m for m in visible if m.pk < burst[0].pk]
    history = tuple(Turn(m.role, m.text) for m in earlier[-12:])
    return " ".join(m.text for m in burst), history


def suggested_reply_draft(*, conversation_id: UUID) -> Suggestion:
    """Draft a reply with the bot's retrieval + generation pipeline (never sent by itself).

    Loads the model: call it from a worker (suggested_reply_task), not from a web request.
    """
    from ..answers.pipeline import answer_compose
    from ..answers.reasons import AnswerAction

    conv = Conversation.objects.filter(pk=conversation_id).first()
    if conv is None:
        raise ConversationNotFound("This conversation does not exist.")
    question, history = _question_and_history(conv)
    draft = answer_compose(question=question, history=history)
    if draft.action is AnswerAction.ESCALATE:
        return Suggestion(
            "",
            draft.action,
            draft.confidence,
            (),
            "The knowledge base has nothing confident on this; no draft.",
        )
    note = (
        "Quoted from the knowledge base."
        if draft.action is AnswerAction.EXTRACTIVE
        else "Drafted from the knowledge base. Check it before sending."
    )
    return Suggestion(draft.text, draft.action, draft.confidence, draft.citations, note)


def suggested_reply_request(*, conversation_id: UUID, agent: Any) -> None:
    """Queue a draft for this agent; it arrives on the agent's socket as a `suggestion` frame."""
    if not Conversation.objects.filter(pk=conversation_id).exists():
        raise ConversationNotFound("This conversation does not exist.")
    jobs.suggested_reply_enqueue(conversation_id=conversation_id.hex, agent_id=agent.pk)


def suggested_reply_publish(*, conversation_id: UUID, agent_id: int) -> Suggestion | None:
    """Draft, then send the draft (or why there is none) to the requesting agent's sockets."""
    from ..llm.errors import LlmError

    try:
        suggestion = suggested_reply_draft(conversation_id=conversation_id)
    except (SupportError, LlmError) as exc:
        logger.warning("No suggested reply for %s: %s", conversation_id, exc)
        message = exc.message if isinstance(exc, SupportError) else "The model is unavailable."
        events.group_send(
            events.AGENTS_GROUP,
            events.suggestion_ready(
                conversation_id=conversation_id,
                agent_id=agent_id,
                suggestion={"ok": False, "text": "", "note": message},
            ),
        )
        return None
    events.group_send(
        events.AGENTS_GROUP,
        events.suggestion_ready(
            conversation_id=conversation_id, agent_id=agent_id, suggestion=suggestion.as_dict()
        ),
    )
    return suggestion
