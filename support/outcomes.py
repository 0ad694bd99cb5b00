"""The outcome watchdog: every customer message gets an outcome, and nobody waits in silence.

What "has an outcome" means is written once, in `support.answered`. `outcomes_check` is the
watchdog: run by Celery beat (`outcomes_check_task`), by a thread of the embedded one-process
mode, and on demand by `manage.py outcomes_check`. It re-queues an overdue answer once, then
apologises and hands the conversation to a person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from . import jobs
from .answered import message_awaits_outcome, messages_awaiting_outcome
from .conf import get_support_settings
from .handoff.escalation import EscalationDecision, escalation_apply
from .models import Escalation, Message
from .selectors import conversation_lock
from .streaming import stream_state_clear

logger = logging.getLogger(__name__)

NO_ANSWER = Escalation.Reason.NO_ANSWER.value
APOLOGY_TEXT = "Sorry, this is taking longer than it should — a person will follow up here."
# Older messages are left alone: after a day the customer is long gone, and the scan stays small.
LOOKBACK = timedelta(hours=24)


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
            jobs.reply_generate_enqueue(message_id=message_id)
    return bool(won)


def _give_up(*, message_id: int) -> bool:
    with transaction.atomic():
        msg = Message.objects.get(pk=message_id)
        conversation_lock(msg.conversation_id)
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
