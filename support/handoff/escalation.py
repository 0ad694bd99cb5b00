"""When a person should take over: the selector that reads a conversation into the pure
decision's state (`support.escalation_rules`), and the services that hand over."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from .. import events, webhooks
from ..conf import get_support_settings
from ..models import Conversation, Escalation, Message, SensitiveTopic
from ..selectors import conversation_lock
from ..streaming import cancel_request
from .escalation_rules import (
    AnswerOutcome,
    CheckStage,
    ConversationState,
    EscalationDecision,
    PastTurn,
    Similarity,
    Thresholds,
    TopicRule,
    asks_for_person,
    embedding_similarity,
    escalation_decide,
)
from .hours import out_of_hours_overlay
from .transcript import QUEUED_TEXT, LineKind, transcript_line_post

__all__ = [
    "CUSTOMER_REQUEST",
    "AnswerOutcome",
    "CheckStage",
    "ConversationState",
    "EscalationDecision",
    "asks_for_person",
    "busy_decision",
    "conversation_escalate",
    "conversation_state_get",
    "escalation_apply",
    "escalation_check",
    "escalation_decide",
    "escalation_preview",
    "escalation_thresholds",
    "queue_position",
    "queued_status_payload",
    "sensitive_topics_list",
    "status_payload",
    "usual_wait_minutes",
]

CUSTOMER_REQUEST = Escalation.Reason.CUSTOMER_REQUEST.value
BUSY = Escalation.Reason.BUSY.value
BUSY_TEXT = "We're busy right now — a person will follow up here shortly."
# Earlier messages the decision looks at (failures in a row, repeated questions).
STATE_TURNS = 40


# --- selectors -----------------------------------------------------------------------------------
def escalation_thresholds() -> Thresholds:
    """The decision's thresholds from the settings (the embedding ones are tuned constants)."""
    conf = get_support_settings()
    return Thresholds(
        failures_in_a_row=conf.escalate_after_failures,
        negative_sentiment=conf.escalate_negative_sentiment,
        repeat_similarity=conf.escalate_repeat_similarity,
    )


def _lines(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def sensitive_topics_list() -> tuple[TopicRule, ...]:
    """The enabled sensitive topics, frozen for the decision."""
    return tuple(
        TopicRule(
            name=t.name,
            keywords=_lines(t.keywords),
            examples=_lines(t.examples),
            amount_threshold=t.amount_threshold,
            customer_message=t.customer_message.strip(),
        )
        for t in SensitiveTopic.objects.filter(enabled=True).order_by("name")
    )


def conversation_state_get(
    conversation_id: UUID,
    new_text: str,
    *,
    before_message_id: int | None = None,
    answer: AnswerOutcome | None = None,
) -> ConversationState:
    """The conversation as the decision sees it: `new_text` after the visible messages
    (those before `before_message_id` when given), the enabled topics and the thresholds."""
    rows = Message.objects.filter(conversation_id=conversation_id, internal=False)
    if before_message_id is not None:
        rows = rows.filter(pk__lt=before_message_id)
    recent = list(
        rows.order_by("-pk").values("role", "text", "action", "reason", "feedback__value")[
            :STATE_TURNS
        ]
    )
    turns = tuple(
        PastTurn(
            role=r["role"],
            text=r["text"],
            action=r["action"] or "",
            reason=r["reason"] or "",
            feedback=r["feedback__value"],
        )
        for r in reversed(recent)
    )
    return ConversationState(
        text=new_text,
        turns=turns,
        topics=sensitive_topics_list(),
        thresholds=escalation_thresholds(),
        answer=answer,
    )


# --- services ------------------------------------------------------------------------------------
def escalation_apply(
    *, conversation_id: UUID, decision: EscalationDecision, trigger_message_id: int | None
) -> Escalation | None:
    """Act on a decision to escalate: the rule's notice (a NOTICE line: sensitive topic, busy,
    no answer in time), then `conversation_escalate`. None when the bot no longer has the
    conversation."""
    if not decision.escalate:
        return None
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        # Re-checked under the lock: an agent may have taken over since the decision was read.
        if conv.status != Conversation.Status.BOT:
            return None
        if decision.customer_message:
            transcript_line_post(
                conversation=conv, kind=LineKind.NOTICE, text=decision.customer_message
            )
        return conversation_escalate(
            conversation_id=conv.pk, reasons=decision.reasons, trigger_message_id=trigger_message_id
        )


def escalation_check(
    *, message_id: int, stage: CheckStage, answer: AnswerOutcome | None = None
) -> EscalationDecision:
    """The decision on a stored customer message at `stage` (and on the bot's answer to it,
    at ANSWERED). Reads only: the caller hands over with `escalation_apply`."""
    msg = Message.objects.only("pk", "conversation_id", "text").get(pk=message_id)
    before: int | None = msg.pk
    text = msg.text
    if stage is CheckStage.ANSWERED:
        # What was written up to the answer, lines after the question included: a question
        # the bot answers after a hand back comes before the HANDED_BACK line, which ends the
        # failures in a row.
        text = ""
        before = (
            Message.objects.filter(
                conversation_id=msg.conversation_id, role=Message.Role.BOT, in_reply_to_id=msg.pk
            )
            .values_list("pk", flat=True)
            .first()
        )
    state = conversation_state_get(
        msg.conversation_id, text, before_message_id=before, answer=answer
    )
    # The web process must not load the embedding model: only the worker's stage uses it.
    similarity: Similarity | None = embedding_similarity if stage is CheckStage.PREPARED else None
    return escalation_decide(state, similarity=similarity)


def escalation_preview(
    *,
    text: str,
    history: Sequence[tuple[str, str]] = (),
    answer: AnswerOutcome | None = None,
    similarity: Similarity | None = embedding_similarity,
) -> EscalationDecision:
    """The decision for `text` as a message of a new conversation after `history` ((role,
    text) pairs), with the configured topics and thresholds. Writes nothing."""
    state = ConversationState(
        text=text,
        turns=tuple(PastTurn(role=role, text=t) for role, t in history),
        topics=sensitive_topics_list(),
        thresholds=escalation_thresholds(),
        answer=answer,
    )
    return escalation_decide(state, similarity=similarity)


def busy_decision() -> EscalationDecision:
    """The hand-over when too many questions wait for the bot (SUPPORT_MAX_PENDING_ANSWERS):
    told to the customer as a system message."""
    return EscalationDecision(escalate=True, reasons=(BUSY,), customer_message=BUSY_TEXT)


DEFAULT_WAIT_MINUTES = 5


def usual_wait_minutes() -> int:
    """Median wait of the last 20 claimed escalations, in whole minutes (at least 1)."""
    recent = Escalation.objects.filter(claimed_at__isnull=False).order_by("-claimed_at")[:20]
    waits = [(e.claimed_at - e.created_at).total_seconds() / 60 for e in recent if e.claimed_at]
    if not waits:
        return DEFAULT_WAIT_MINUTES
    return max(1, round(statistics.median(waits)))


def queue_position(escalation: Escalation) -> int:
    return (
        Escalation.objects.filter(
            state=Escalation.State.OPEN, created_at__lte=escalation.created_at
        )
        .exclude(pk=escalation.pk)
        .count()
        + 1
    )


def queued_status_payload(escalation: Escalation) -> dict[str, object]:
    position = queue_position(escalation)
    wait = usual_wait_minutes()
    # Outside business hours: when people are back, and a request for an email address.
    return out_of_hours_overlay(
        {
            "status": Conversation.Status.QUEUED.value,
            "queue_position": position,
            "wait_minutes": wait,
            "agent_name": None,
            "text": (
                f"A person will join shortly — you are number {position} in the queue, "
                f"usual wait about {wait} minute{'s' if wait != 1 else ''}."
            ),
        }
    )


def conversation_escalate(
    *, conversation_id: UUID, reasons: tuple[str, ...], trigger_message_id: int | None = None
) -> Escalation:
    """Queue the conversation for a person (idempotent while one is live); the bot goes silent.
    The transcript says so (a QUEUED line) when the conversation joins the queue."""
    with transaction.atomic():
        conv = conversation_lock(conversation_id)
        live = conv.escalations.filter(
            state__in=(Escalation.State.OPEN, Escalation.State.CLAIMED)
        ).first()
        if live is not None:
            merged = list(dict.fromkeys([*live.reasons, *reasons]))
            if merged != live.reasons:
                live.reasons = merged
                live.save(update_fields=["reasons"])
            return live
        escalation = Escalation.objects.create(
            conversation=conv, reasons=list(reasons), trigger_message_id=trigger_message_id
        )
        conv.status = Conversation.Status.QUEUED
        conv.save(update_fields=["status", "updated_at"])
        transcript_line_post(conversation=conv, kind=LineKind.QUEUED, text=QUEUED_TEXT)
        webhooks.conversation_event("conversation.escalated", conv, reasons=list(reasons))
        # An answer still being written stops at its next token.
        transaction.on_commit(lambda: cancel_request(conversation_id=conversation_id))
        payload = queued_status_payload(escalation)
        events.group_send_on_commit(
            events.conversation_group(conv.pk), events.status_changed(payload)
        )
        events.group_send_on_commit(
            events.AGENTS_GROUP,
            {
                "type": events.QUEUE_CHANGED,
                "payload": {"type": "queue", "at": timezone.now().isoformat()},
            },
        )
    return escalation


def status_payload(conversation: Conversation) -> dict[str, object]:
    """What the customer sees about who has the conversation now."""
    if conversation.status == Conversation.Status.QUEUED:
        live = conversation.escalations.filter(state=Escalation.State.OPEN).first()
        if live is not None:
            return queued_status_payload(live)
    agent = conversation.assigned_agent
    agent_name = events.display_name(agent) if agent else None
    texts = {
        Conversation.Status.BOT: "",
        Conversation.Status.QUEUED: "A person will join shortly.",
        Conversation.Status.AGENT: f"{agent_name or 'An agent'} joined the conversation.",
        Conversation.Status.RESOLVED: "This conversation is resolved.",
    }
    return {
        "status": conversation.status,
        "queue_position": None,
        "wait_minutes": None,
        "agent_name": agent_name if conversation.status == Conversation.Status.AGENT else None,
        "text": texts.get(Conversation.Status(conversation.status), ""),
    }
