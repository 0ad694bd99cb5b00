"""The bot's answer to a customer message: worker-side, streamed, stored once."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from uuid import UUID

from django.db import IntegrityError, transaction

from . import events
from .escalation import AnswerOutcome, message_escalation_check
from .exceptions import GenerationUnavailable
from .generation import Draft, Turn, answer_compose
from .llm.errors import LlmError
from .models import Conversation, Message
from .streaming import (
    cancel_clear,
    cancel_requested,
    stream_state_clear,
    stream_state_set,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Burst:
    """The customer messages to answer together (sent in quick succession) and what came before."""

    question: str
    last_message_id: int
    history: tuple[Turn, ...]


def burst_collect(*, conversation: Conversation, message: Message) -> Burst | None:
    """None when this message is already answered or a later one will be answered instead."""
    visible = conversation.messages.filter(internal=False)
    if visible.filter(role=Message.Role.CUSTOMER, pk__gt=message.pk).exists():
        return None  # debounced: the task of the newest message answers all of them
    last_other = (
        visible.exclude(role=Message.Role.CUSTOMER).order_by("-pk").values_list("pk", flat=True)
    ).first()
    if last_other is not None and last_other > message.pk:
        return None  # someone (bot or agent) already replied after it
    burst = visible.filter(role=Message.Role.CUSTOMER, pk__lte=message.pk)
    if last_other is not None:
        burst = burst.filter(pk__gt=last_other)
    texts = list(burst.order_by("pk").values_list("text", flat=True))
    earlier = visible.filter(pk__lte=last_other or 0).order_by("-pk")[:12]
    history = tuple(
        Turn(m.role, m.text) for m in reversed(list(earlier)) if m.role != Message.Role.SYSTEM
    )
    return Burst(" ".join(texts), message.pk, history)


class _DeltaSender:
    """Sends accumulated text at most every `interval` seconds (not one event per token)."""

    def __init__(self, conversation_id: UUID, reply_to: int, interval: float) -> None:
        self.conversation_id = conversation_id
        self.group = events.conversation_group(conversation_id)
        self.reply_to = reply_to
        self.interval = interval
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
        self.text += self.pending
        stream_state_set(
            conversation_id=self.conversation_id,
            reply_to=self.reply_to,
            seq=self.seq,
            text=self.text,
        )
        events.group_send(
            self.group, events.reply_delta(reply_to=self.reply_to, seq=self.seq, delta=self.pending)
        )
        self.seq += 1
        self.pending = ""
        self.last = now if now is not None else time.monotonic()


def reply_generate(*, message_id: int, delta_interval_s: float = 0.08) -> str:
    """Answer a customer message (and any sent just before it); returns what happened.

    Reads outside transactions, streams `reply.delta` events while the model writes, then stores
    the answer with `reply_store`, which re-checks that it is still wanted.
    """
    msg = Message.objects.select_related("conversation").filter(pk=message_id).first()
    if msg is None or msg.role != Message.Role.CUSTOMER:
        return "missing"
    conv = msg.conversation
    if conv.status != Conversation.Status.BOT:
        return "silent"
    burst = burst_collect(conversation=conv, message=msg)
    if burst is None:
        return "superseded"
    # The escalation rules that need the embedding model run here, in the worker.
    if message_escalation_check(message_id=msg.pk, embeddings=True).escalate:
        return "escalated"
    group = events.conversation_group(conv.pk)
    cancel_clear(conversation_id=conv.pk)
    events.group_send(group, events.typing_changed(role="bot", active=True))
    sender = _DeltaSender(conv.pk, msg.pk, delta_interval_s)
    try:
        draft = answer_compose(
            question=burst.question,
            history=burst.history,
            on_delta=sender,
            should_stop=lambda: cancel_requested(conversation_id=conv.pk),
        )
    except LlmError as exc:
        raise GenerationUnavailable(f"The model is unavailable: {exc}") from exc
    finally:
        events.group_send(group, events.typing_changed(role="bot", active=False))
    sender.flush()
    if draft.cancelled:
        stream_state_clear(conversation_id=conv.pk)
        return "cancelled"
    stored = reply_store(message_id=msg.pk, draft=draft)
    stream_state_clear(conversation_id=conv.pk)
    return "stored" if stored else "discarded"


def reply_store(*, message_id: int, draft: Draft) -> Message | None:
    """Store the bot answer unless it went stale (escalated, resolved, already answered)."""
    with transaction.atomic():
        question = Message.objects.select_related("conversation").get(pk=message_id)
        conv = Conversation.objects.select_for_update().get(pk=question.conversation_id)
        if conv.status != Conversation.Status.BOT:
            return None
        if Message.objects.filter(in_reply_to_id=message_id, role=Message.Role.BOT).exists():
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
                )
        except IntegrityError:  # a redelivered task raced us
            return None
        conv.last_message_at = reply.created_at
        conv.save(update_fields=["last_message_at", "updated_at"])
        events.group_send_on_commit(events.conversation_group(conv.pk), events.reply_done(reply))
        events.group_send_on_commit(events.AGENTS_GROUP, events.message_created(reply))
        # A decline (it already offers a person) or too many failures in a row hands over.
        message_escalation_check(
            message_id=message_id,
            answer=AnswerOutcome(draft.action, draft.reason, draft.grounded),
        )
    return reply
