"""The bot's answer to a customer message: worker-side, streamed, stored once."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from uuid import UUID

from django.core.cache import cache
from django.db import IntegrityError, transaction

from . import events, jobs, webhooks
from .answered import answered_upto, covering_answer, next_question_id
from .answers.pipeline import answer_compose
from .answers.types import Draft, Turn
from .conf import get_support_settings
from .exceptions import GenerationUnavailable
from .handoff.escalation import AnswerOutcome, CheckStage, escalation_apply, escalation_check
from .llm.errors import LlmError
from .models import Conversation, Message
from .selectors import conversation_lock
from .streaming import (
    cancel_clear,
    cancel_requested,
    stream_state_clear,
    stream_state_get,
    stream_state_set,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

# One answer is written per conversation at a time (a question sent meanwhile waits for it).
# The writer holds a lease in the shared cache and renews it while it streams, so a worker that
# died or hangs frees the conversation after at most this long...
ANSWER_LEASE_S = 60
LEASE_RENEW_S = 5.0


def _lease_s() -> float:
    """... and before the watchdog re-queues its question (SUPPORT_OUTCOME_DEADLINE_S): a
    lease outliving the deadline would turn the re-queued task away ("deferred") and leave
    the customer with the apology although a worker was free."""
    deadline = get_support_settings().outcome_deadline_s
    return float(min(ANSWER_LEASE_S, max(2 * LEASE_RENEW_S, 0.75 * deadline)))


def _renew_s() -> float:
    return min(LEASE_RENEW_S, _lease_s() / 6)


@dataclass(frozen=True, slots=True)
class Burst:
    """The customer messages to answer together (sent in quick succession) and what came before."""

    question: str
    last_message_id: int
    history: tuple[Turn, ...]


def burst_collect(*, conversation: Conversation, message: Message) -> Burst | None:
    """None when this message is already answered or a later one will be answered instead.

    The burst is every customer message after the last one that had an outcome (a bot answer
    covering it, a person's message or notice after it, an escalation): see `support.answered`.
    """
    visible = conversation.messages.filter(internal=False)
    if visible.filter(role=Message.Role.CUSTOMER, pk__gt=message.pk).exists():
        return None  # debounced: the task of the newest message answers all of them
    settled = answered_upto(conversation_id=conversation.pk)
    if settled >= message.pk:
        return None  # answered already, or a person took over after it
    burst = list(
        visible.filter(role=Message.Role.CUSTOMER, pk__gt=settled, pk__lte=message.pk)
        .order_by("pk")
        .values_list("pk", "text")
    )
    # Everything else is history, in the order it was written (an answer to an earlier question
    # may have been stored after this message arrived).
    earlier = visible.exclude(pk__in=[pk for pk, _ in burst]).order_by("-pk")[:12]
    history = tuple(
        Turn(m.role, m.text) for m in reversed(list(earlier)) if m.role != Message.Role.SYSTEM
    )
    return Burst(" ".join(text for _, text in burst), message.pk, history)


def _best_effort(action: Callable[[], T], default: T) -> T:
    """Cache-side extras (stream state, cancel flag) must not fail an answer the database can
    still store: during a Redis outage the customer re-syncs from the database on reconnect."""
    try:
        return action()
    except Exception:
        logger.warning("Shared cache unavailable while answering", exc_info=True)
        return default


def _lease_key(conversation_id: UUID) -> str:
    return f"answering:{conversation_id.hex}"


def _lease_acquire(conversation_id: UUID, holder: str) -> bool:
    key = _lease_key(conversation_id)
    if cache.add(key, holder, _lease_s()):
        return True
    current = cache.get(key)
    if current == holder:  # our own earlier attempt: a retried or redelivered task
        cache.set(key, holder, _lease_s())
        return True
    if current is None:  # expired in between
        return bool(cache.add(key, holder, _lease_s()))
    return False


def _lease_renew(conversation_id: UUID, holder: str) -> None:
    cache.set(_lease_key(conversation_id), holder, _lease_s())


def _lease_release(conversation_id: UUID, holder: str) -> None:
    key = _lease_key(conversation_id)
    if cache.get(key) == holder:
        cache.delete(key)


class _DeltaSender:
    """Sends accumulated text at most every `interval` seconds (not one event per token)."""

    def __init__(
        self,
        conversation_id: UUID,
        reply_to: int,
        interval: float,
        *,
        muted: bool = False,
        on_flush: Callable[[], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.group = events.conversation_group(conversation_id)
        self.reply_to = reply_to
        self.interval = interval
        # A repeated attempt streams nothing: the client still shows the first attempt's text,
        # and a second stream would start again at seq 0. reply.done replaces it either way.
        self.muted = muted
        self.on_flush = on_flush
        # Escalated or closed meanwhile: nothing more reaches the customer (the cancel flag is
        # checked before each send, not only between tokens, so no delta follows the notice).
        self.cancelled = cancelled
        self.seq = 0
        self.pending = ""
        self.text = ""
        self.last = 0.0

    def __call__(self, piece: str) -> None:
        self.pending += piece
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        if not self.pending:
            return
        if self.cancelled is not None and self.cancelled():
            self.pending = ""
            self.muted = True
            return
        if self.on_flush is not None:
            self.on_flush()
        self.text += self.pending
        if self.muted:
            self.pending = ""
            return
        _best_effort(
            lambda: stream_state_set(
                conversation_id=self.conversation_id,
                reply_to=self.reply_to,
                seq=self.seq,
                text=self.text,
            ),
            None,
        )
        events.group_send(
            self.group, events.reply_delta(reply_to=self.reply_to, seq=self.seq, delta=self.pending)
        )
        self.seq += 1
        self.pending = ""
        self.last = now if now is not None else time.monotonic()


def reply_generate(
    *, message_id: int, delta_interval_s: float = 0.08, attempt: str | None = None
) -> str:
    """Answer a customer message (and any sent just before it); returns what happened.

    Reads outside transactions, streams `reply.delta` events while the model writes, then stores
    the answer with `reply_store`, which re-checks that it is still wanted. Idempotent: run again
    for an answered message (a redelivered task) it pushes the stored answer again
    ("superseded"). While another answer of the conversation is being written it returns
    "deferred"; that writer queues the newest waiting question when it is done. `attempt`
    identifies this run across retries and redeliveries (the Celery task id).
    """
    msg = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if msg is None or msg.role != Message.Role.CUSTOMER:
        return "missing"
    conv = msg.conversation
    if conv.status != Conversation.Status.BOT:
        return "silent"
    burst = burst_collect(conversation=conv, message=msg)
    if burst is None:
        answer_repush(message_id=msg.pk)
        return "superseded"
    # The escalation rules that need the embedding model run here, in the worker.
    decision = escalation_check(message_id=msg.pk, stage=CheckStage.PREPARED)
    if decision.escalate:
        escalation_apply(conversation_id=conv.pk, decision=decision, trigger_message_id=msg.pk)
        return "escalated"
    holder = attempt or uuid.uuid4().hex
    if not _lease_acquire(conv.pk, holder):
        return "deferred"
    try:
        result = _answer_write(conv, msg, burst, delta_interval_s, holder)
    finally:
        _lease_release(conv.pk, holder)
    # Questions that arrived while this one was answered were deferred: answer the newest.
    waiting = next_question_id(conversation_id=conv.pk)
    if waiting is not None and waiting > msg.pk:
        jobs.reply_generate_enqueue(message_id=waiting)
    return result


def _answer_write(
    conv: Conversation, msg: Message, burst: Burst, delta_interval_s: float, holder: str
) -> str:
    group = events.conversation_group(conv.pk)
    _best_effort(lambda: cancel_clear(conversation_id=conv.pk), None)
    previous = _best_effort(lambda: stream_state_get(conversation_id=conv.pk), None)
    events.group_send(group, events.typing_changed(role="bot", active=True))
    renewed = time.monotonic()
    renew_s = _renew_s()

    def cancelled() -> bool:
        return bool(_best_effort(lambda: cancel_requested(conversation_id=conv.pk), False))

    def renew() -> None:
        nonlocal renewed
        if time.monotonic() - renewed >= renew_s:
            renewed = time.monotonic()
            _best_effort(lambda: _lease_renew(conv.pk, holder), None)

    sender = _DeltaSender(
        conv.pk,
        msg.pk,
        delta_interval_s,
        # E-mail conversations get the stored answer by mail: nothing to stream.
        muted=(previous is not None and previous.get("reply_to") == msg.pk)
        or conv.channel == Conversation.Channel.EMAIL,
        on_flush=renew,
        cancelled=cancelled,
    )
    try:
        draft = answer_compose(
            question=burst.question, history=burst.history, on_delta=sender, should_stop=cancelled
        )
    except LlmError as exc:
        raise GenerationUnavailable(f"The model is unavailable: {exc}") from exc
    finally:
        events.group_send(group, events.typing_changed(role="bot", active=False))
    if not draft.cancelled:
        sender.flush()
    if draft.cancelled:
        _best_effort(lambda: stream_state_clear(conversation_id=conv.pk), None)
        return "cancelled"
    stored = reply_store(message_id=msg.pk, draft=draft)
    _best_effort(lambda: stream_state_clear(conversation_id=conv.pk), None)
    return "stored" if stored else "discarded"


def answer_repush(*, message_id: int) -> Message | None:
    """Send the stored answer covering this question to the conversation again (on commit).

    A redelivered task ends here instead of writing a second answer; clients replace the
    answer they show by message id, so a duplicate push is harmless.
    """
    reply = covering_answer(message_id=message_id)
    if reply is not None:
        events.group_send_on_commit(
            events.conversation_group(reply.conversation_id), events.reply_done(reply)
        )
    return reply


def reply_store(*, message_id: int, draft: Draft) -> Message | None:
    """Store the bot answer unless it went stale (escalated, resolved, already answered)."""
    with transaction.atomic():
        question = Message.objects.select_related("conversation").get(pk=message_id)
        conv = conversation_lock(question.conversation_id)
        if conv.status != Conversation.Status.BOT:
            return None
        if (
            covering_answer(message_id=message_id) is not None
        ):  # a redelivered task: push it again instead
            answer_repush(message_id=message_id)
            return None
        try:
            with transaction.atomic():
                reply = Message.objects.create(
                    conversation=conv,
                    role=Message.Role.BOT,
                    text=draft.text,
                    in_reply_to_id=message_id,
                    citations=list(draft.citations),
                    retrieved=list(draft.retrieved),
                    retrieval_confidence=draft.confidence,
                    answer_confidence=draft.answer_confidence,
                    grounded=draft.grounded,
                    action=draft.action,
                    reason=draft.reason,
                    prompt_version=draft.prompt_version,
                    timings=draft.timings,
                    trace=draft.trace,
                )
        except IntegrityError:  # "one bot reply per question": a redelivered task raced us
            answer_repush(message_id=message_id)
            return None
        conv.last_message_at = reply.created_at
        conv.save(update_fields=["last_message_at", "updated_at"])
        webhooks.message_event(reply)  # on the e-mail channel this also queues the mail
        events.group_send_on_commit(events.conversation_group(conv.pk), events.reply_done(reply))
        events.group_send_on_commit(events.AGENTS_GROUP, events.message_created(reply))
        # A decline (it already offers a person) or too many failures in a row hands over.
        decision = escalation_check(
            message_id=message_id,
            stage=CheckStage.ANSWERED,
            answer=AnswerOutcome(draft.action, draft.reason, draft.grounded),
        )
        escalation_apply(conversation_id=conv.pk, decision=decision, trigger_message_id=message_id)
    return reply
