"""Delivery guarantees: every customer message gets an outcome, and nobody waits in silence.

A customer message *has an outcome* when one of these came after it:

- a bot answer to it or to a later message of the same run (`in_reply_to` >= its id: an answer
  covers the burst of messages it was written for, see `replies.burst_collect`);
- a visible message of a person or a system notice (an agent replied, a hand-over was announced);
- an escalation of the conversation (the conversation went to a person).

Only the newest customer message of a conversation can be waiting: earlier ones are answered
together with it (the debounce). And only while the bot has the conversation: queued, with an
agent or resolved, a person is responsible.

`outcomes_check` is the watchdog: run by Celery beat (`outcomes_check_task`), by a thread of
the embedded one-process mode, and on demand by `manage.py outcomes_check`. It re-queues an
overdue answer once, then apologises and hands the conversation to a person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, QuerySet
from django.utils import timezone

from . import jobs
from .conf import get_support_settings
from .handoff.escalation import EscalationDecision, escalation_apply
from .models import Conversation, Escalation, Message
from .streaming import stream_state_clear

logger = logging.getLogger(__name__)

NO_ANSWER = Escalation.Reason.NO_ANSWER.value
BUSY = Escalation.Reason.BUSY.value
APOLOGY_TEXT = "Sorry, this is taking longer than it should — a person will follow up here."
BUSY_TEXT = "We're busy right now — a person will follow up here shortly."
# Older messages are left alone: after a day the customer is long gone, and the scan stays small.
LOOKBACK = timedelta(hours=24)
# The queue ceiling is checked on every customer message: its count is shared for this long.
PENDING_COUNT_CACHE_S = 2
_PENDING_COUNT_KEY = "outcomes:pending-count"
_OUTCOME_ROLES = (Message.Role.AGENT, Message.Role.SYSTEM)


# --- selectors -----------------------------------------------------------------------------------
def messages_awaiting_outcome(
    *, sent_after: datetime, sent_before: datetime | None = None
) -> QuerySet[Message]:
    """Customer messages of bot conversations, sent in the window, still without an outcome."""
    same_conversation = {"conversation_id": OuterRef("conversation_id")}
    later_question = Message.objects.filter(
        **same_conversation, role=Message.Role.CUSTOMER, internal=False, pk__gt=OuterRef("pk")
    )
    answer = Message.objects.filter(
        **same_conversation, role=Message.Role.BOT, in_reply_to_id__gte=OuterRef("pk")
    )
    person_or_notice = Message.objects.filter(
        **same_conversation, role__in=_OUTCOME_ROLES, internal=False, pk__gt=OuterRef("pk")
    )
    escalation = Escalation.objects.filter(
        **same_conversation, created_at__gte=OuterRef("created_at")
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
        .exclude(Exists(answer))
        .exclude(Exists(person_or_notice))
        .exclude(Exists(escalation))
        .order_by("created_at", "pk")
    )


def answered_upto(*, conversation_id: UUID) -> int:
    """The id of the newest customer message of the conversation that has an outcome (0: none).

    Every customer message up to it is settled; those after it wait for the next answer.
    """
    visible = Message.objects.filter(conversation_id=conversation_id, internal=False)
    customer = visible.filter(role=Message.Role.CUSTOMER)
    bounds = [
        visible.filter(role=Message.Role.BOT).aggregate(m=Max("in_reply_to_id"))["m"] or 0,
    ]
    last_other = visible.filter(role__in=_OUTCOME_ROLES).aggregate(m=Max("pk"))["m"]
    if last_other is not None:
        bounds.append(customer.filter(pk__lt=last_other).aggregate(m=Max("pk"))["m"] or 0)
    last_escalation = Escalation.objects.filter(conversation_id=conversation_id).aggregate(
        m=Max("created_at")
    )["m"]
    if last_escalation is not None:
        bounds.append(
            customer.filter(created_at__lte=last_escalation).aggregate(m=Max("pk"))["m"] or 0
        )
    return max(bounds)


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


# --- services ------------------------------------------------------------------------------------
def answer_queue(*, message_id: int, countdown: float = 0.0) -> None:
    """Queue the answer task once the surrounding transaction commits.

    A broker that refuses the task is logged, not raised: the message is stored, and the
    watchdog queues its answer again after SUPPORT_OUTCOME_DEADLINE_S.
    """
    jobs.reply_generate_enqueue(message_id=message_id, countdown=countdown)


def busy_decision() -> EscalationDecision:
    """The hand-over when too many questions wait: told to the customer as a system message."""
    return EscalationDecision(escalate=True, reasons=(BUSY,), customer_message=BUSY_TEXT)


@dataclass(frozen=True, slots=True)
class OutcomesReport:
    """What one watchdog run did (message ids) and how many messages still wait in time."""

    requeued: tuple[int, ...]
    escalated: tuple[int, ...]
    waiting: int

    def as_dict(self) -> dict[str, object]:
        return {
            "requeued": list(self.requeued),
            "escalated": list(self.escalated),
            "waiting": self.waiting,
        }


def outcomes_check(
    *,
    now: datetime | None = None,
    deadline_s: float | None = None,
    requeue_deadline_s: float | None = None,
    dry_run: bool = False,
    limit: int = 500,
) -> OutcomesReport:
    """Re-queue answers overdue by `deadline_s` (once per message); apologise and escalate
    those still without an outcome `requeue_deadline_s` after their re-queue.

    Safe to run concurrently (beat, the embedded thread, the command): the re-queue is a
    conditional update and the hand-over re-checks under the conversation's lock.
    """
    conf = get_support_settings()
    now = now or timezone.now()
    first = timedelta(seconds=conf.outcome_deadline_s if deadline_s is None else deadline_s)
    second = timedelta(
        seconds=conf.outcome_requeue_deadline_s
        if requeue_deadline_s is None
        else requeue_deadline_s
    )
    awaiting = messages_awaiting_outcome(sent_after=now - LOOKBACK)
    overdue = list(
        awaiting.filter(requeued_at__isnull=True, created_at__lte=now - first).values_list(
            "pk", flat=True
        )[:limit]
    )
    given_up = list(
        awaiting.filter(requeued_at__lte=now - second).values_list("pk", flat=True)[:limit]
    )
    waiting = awaiting.count() - len(overdue) - len(given_up)
    if dry_run:
        return OutcomesReport(tuple(overdue), tuple(given_up), waiting)
    requeued = tuple(m for m in overdue if _requeue(message_id=m, now=now))
    escalated = tuple(m for m in given_up if _give_up(message_id=m))
    if requeued or escalated:
        logger.warning(
            "Outcome watchdog: re-queued %s, escalated %s (no answer in time)",
            list(requeued),
            list(escalated),
        )
    return OutcomesReport(requeued, escalated, waiting)


def _requeue(*, message_id: int, now: datetime) -> bool:
    with transaction.atomic():
        # Only the run that sets requeued_at queues: a message is re-queued once.
        won = Message.objects.filter(pk=message_id, requeued_at__isnull=True).update(
            requeued_at=now
        )
        if won:
            answer_queue(message_id=message_id)
    return bool(won)


def _give_up(*, message_id: int) -> bool:
    with transaction.atomic():
        msg = Message.objects.get(pk=message_id)
        Conversation.objects.select_for_update().get(pk=msg.conversation_id)
        # Re-checked under the lock: reply_store takes the same lock before storing an answer.
        if not message_awaits_outcome(message_id=message_id):
            return False
        escalation = escalation_apply(
            conversation_id=msg.conversation_id,
            decision=EscalationDecision(
                escalate=True, reasons=(NO_ANSWER,), customer_message=APOLOGY_TEXT
            ),
            trigger_message_id=message_id,
        )
        conversation_id = msg.conversation_id
        # A half-written answer must not be shown to a reconnecting client any more.
        transaction.on_commit(lambda: stream_state_clear(conversation_id=conversation_id))
    return escalation is not None
