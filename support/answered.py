"""When is a customer message answered? One rule, read by the answer worker
(`support.replies`), the outcome watchdog (`support.outcomes`) and the agents' suggested reply
(`support.handoff.agents`).

A customer message is **answered** when one of these came after it:

- a bot answer covering it: one written for it or for a later message of the same run
  (`in_reply_to` >= its id: an answer covers the burst of messages it was written for, see
  `replies.burst_collect`);
- a visible message of a person (an agent replied).

System lines (`support.handoff.transcript`: queued, claimed, handed back, acknowledged, ended,
a rule's notice) answer nothing: they say who has the conversation, not what the customer
asked.

It **has an outcome** when it is answered or the conversation was escalated after it was sent
(a person is responsible from then on). Only the newest customer message of a conversation can
be waiting: earlier ones are answered together with it (the debounce). And only while the bot
has the conversation: queued, with an agent or resolved, a person is responsible.

A **hand back** settles every customer message before it but the newest: the bot answers only
the latest one still without an outcome (a message the customer sent while queued, say), not
each older one.

Everything here reads; nothing writes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.core.cache import cache
from django.db.models import Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from .conf import get_support_settings
from .handoff.escalation_rules.state import LineKind
from .models import Conversation, Escalation, Message

# Agent replies answer what came before them (system lines never do).
ANSWERING_ROLES = (Message.Role.AGENT,)
# The queue ceiling is checked on every customer message: its count is shared for this long.
PENDING_COUNT_CACHE_S = 2
_PENDING_COUNT_KEY = "outcomes:pending-count"


# --- the rule ---------------------------------------------------------------------------------
def covering_answers(*, conversation_id: Any, message_id: Any) -> QuerySet[Message]:
    """Bot answers covering customer message `message_id` (values or OuterRef expressions)."""
    return Message.objects.filter(
        conversation_id=conversation_id, role=Message.Role.BOT, in_reply_to_id__gte=message_id
    )


def later_replies_of_people(*, conversation_id: Any, message_id: Any) -> QuerySet[Message]:
    """Visible agent messages after customer message `message_id`."""
    return Message.objects.filter(
        conversation_id=conversation_id,
        role__in=ANSWERING_ROLES,
        internal=False,
        pk__gt=message_id,
    )


def covering_answer(*, message_id: int) -> Message | None:
    """The bot answer that covers this question (its own, or one written for a later one)."""
    question = Message.objects.filter(pk=message_id).only("conversation_id").first()
    if question is None:
        return None
    return (
        covering_answers(conversation_id=question.conversation_id, message_id=message_id)
        .select_related("author")
        .order_by("in_reply_to_id")
        .first()
    )


def answered_upto(*, conversation_id: UUID, escalations: bool = True) -> int:
    """The id of the newest customer message of the conversation that is answered (0: none);
    with `escalations`, that has an outcome (an escalation after it counts too).

    Every customer message up to it is settled; those after it wait for the next answer.
    """
    visible = Message.objects.filter(conversation_id=conversation_id, internal=False)
    customer = visible.filter(role=Message.Role.CUSTOMER)
    bounds = [
        visible.filter(role=Message.Role.BOT).aggregate(m=Max("in_reply_to_id"))["m"] or 0,
    ]
    last_other = visible.filter(role__in=ANSWERING_ROLES).aggregate(m=Max("pk"))["m"]
    if last_other is not None:
        bounds.append(customer.filter(pk__lt=last_other).aggregate(m=Max("pk"))["m"] or 0)
    last_hand_back = visible.filter(
        role=Message.Role.SYSTEM, reason=LineKind.HANDED_BACK
    ).aggregate(m=Max("pk"))["m"]
    if last_hand_back is not None:
        # All but the newest customer message before it: that one is the bot's to answer.
        before = customer.filter(pk__lt=last_hand_back).order_by("-pk").values_list("pk", flat=True)
        bounds.append(next(iter(before[1:2]), 0))
    if escalations:
        last_escalation = Escalation.objects.filter(conversation_id=conversation_id).aggregate(
            m=Max("created_at")
        )["m"]
        if last_escalation is not None:
            bounds.append(
                customer.filter(created_at__lte=last_escalation).aggregate(m=Max("pk"))["m"] or 0
            )
    return max(bounds)


# --- selectors built on it --------------------------------------------------------------------
def messages_awaiting_outcome(
    *, sent_after: datetime, sent_before: datetime | None = None
) -> QuerySet[Message]:
    """Customer messages of bot conversations, sent in the window, still without an outcome."""
    conversation, message = OuterRef("conversation_id"), OuterRef("pk")
    later_question = Message.objects.filter(
        conversation_id=conversation, role=Message.Role.CUSTOMER, internal=False, pk__gt=message
    )
    escalation = Escalation.objects.filter(
        conversation_id=conversation, created_at__gte=OuterRef("created_at")
    )
    rows = Message.objects.filter(
        role=Message.Role.CUSTOMER,
        internal=False,
        conversation__status=Conversation.Status.BOT,
        created_at__gte=sent_after,
    )
    if sent_before is not None:
        rows = rows.filter(created_at__lte=sent_before)
    return (
        rows.exclude(Exists(later_question))
        .exclude(Exists(covering_answers(conversation_id=conversation, message_id=message)))
        .exclude(Exists(later_replies_of_people(conversation_id=conversation, message_id=message)))
        .exclude(Exists(escalation))
        .order_by("created_at", "pk")
    )


def message_awaits_outcome(*, message_id: int) -> bool:
    """True while this customer message is the newest of a bot conversation and has no outcome."""
    msg = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if msg is None or msg.role != Message.Role.CUSTOMER or msg.internal:
        return False
    if msg.conversation.status != Conversation.Status.BOT:
        return False
    if msg.conversation.messages.filter(
        role=Message.Role.CUSTOMER, internal=False, pk__gt=msg.pk
    ).exists():
        return False
    return answered_upto(conversation_id=msg.conversation_id) < msg.pk


def next_question_id(*, conversation_id: UUID) -> int | None:
    """The newest customer message of a bot conversation when it still waits for an answer."""
    newest = (
        Message.objects.filter(
            conversation_id=conversation_id,
            conversation__status=Conversation.Status.BOT,
            role=Message.Role.CUSTOMER,
            internal=False,
        )
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    if newest is None or answered_upto(conversation_id=conversation_id) >= newest:
        return None
    return int(newest)


def pending_answers_count() -> int:
    """Conversations waiting for a bot answer right now (shared for a couple of seconds)."""
    cached = cache.get(_PENDING_COUNT_KEY)
    if isinstance(cached, int):
        return cached
    conf = get_support_settings()
    # Anything older has been escalated by the watchdog (or is about to be).
    horizon = conf.outcome_deadline_s + conf.outcome_requeue_deadline_s + conf.debounce_s + 60
    count = messages_awaiting_outcome(
        sent_after=timezone.now() - timedelta(seconds=horizon)
    ).count()
    cache.set(_PENDING_COUNT_KEY, count, PENDING_COUNT_CACHE_S)
    return count


def answers_over_ceiling() -> bool:
    """True when SUPPORT_MAX_PENDING_ANSWERS questions already wait for the bot."""
    return pending_answers_count() >= get_support_settings().max_pending_answers
