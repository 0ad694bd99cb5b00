"""The outbox: an event and its deliveries are written in the transaction of the change they
report, so a change is never reported without having happened, nor happens without being
reported. Sending is a Celery task queued on commit; the sweep catches any whose task was lost.

Events of one conversation are numbered (`sequence`: 1, 2, 3... in commit order, under the
conversation's row lock) and delivered to each subscription in that order. The e-mail channel
reads the same events (support.mail.outbound): an answer to an e-mail conversation is queued
for sending in the same transaction that stores it.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from .. import jobs
from ..events import display_name
from ..models import (
    Conversation,
    Feedback,
    KnowledgeDocument,
    Message,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)

Event = WebhookSubscription.Event


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def conversation_data(conv: Conversation) -> dict[str, Any]:
    agent = conv.assigned_agent
    return {
        "id": conv.pk.hex,
        "status": conv.status,
        "channel": conv.channel,
        "customer_name": conv.customer_name,
        "customer_email": conv.customer_email,
        "language": conv.language,
        "assigned_agent": display_name(agent) if agent else None,
        "created_at": _iso(conv.created_at),
        "resolved_at": _iso(conv.resolved_at),
    }


def message_data(msg: Message) -> dict[str, Any]:
    from ..events import message_payload

    return {**message_payload(msg), "conversation_id": msg.conversation_id.hex}


def event_record(
    *, kind: str, conversation_id: UUID | None = None, data: dict[str, Any]
) -> WebhookEvent:
    """Write an event and one delivery per enabled subscription to it, in the caller's
    transaction (which must be open); each delivery is queued on commit."""
    if not connection.in_atomic_block:
        raise RuntimeError("event_record must run inside the transaction of the change")
    if kind not in Event.values:
        raise ValueError(f"unknown webhook event {kind!r}")
    now = timezone.now()
    sequence = None
    if conversation_id is not None:
        # The conversation row lock orders concurrent writers (callers mostly hold it already).
        Conversation.objects.select_for_update().filter(pk=conversation_id).exists()
        top = WebhookEvent.objects.filter(conversation_id=conversation_id).aggregate(
            n=Max("sequence")
        )["n"]
        sequence = (top or 0) + 1
    event_id = WebhookEvent.new_id()
    payload = {
        "id": event_id,
        "type": kind,
        "timestamp": _iso(now),
        "conversation_id": conversation_id.hex if conversation_id else None,
        "sequence": sequence,
        "data": data,
    }
    event = WebhookEvent.objects.create(
        id=event_id,
        type=kind,
        conversation_id=conversation_id,
        sequence=sequence,
        payload=payload,
    )
    subscriptions = [
        s for s in WebhookSubscription.objects.filter(enabled=True) if kind in (s.events or ())
    ]
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                event=event,
                subscription=s,
                conversation_id=conversation_id,
                sequence=sequence,
                window_started_at=now,
                next_attempt_at=now,
            )
            for s in subscriptions
        ]
    )
    for delivery in deliveries:
        if delivery.pk is None:  # backends without RETURNING on bulk insert
            delivery = WebhookDelivery.objects.get(event=event, subscription=delivery.subscription)
        jobs.webhook_deliver_enqueue(delivery_id=delivery.pk)
    from ..mail.outbound import event_consume

    event_consume(event)
    return event


# --- the call sites' one-liners ------------------------------------------------------------------
def conversation_event(kind: str, conv: Conversation, **extra: Any) -> WebhookEvent:
    return event_record(
        kind=kind, conversation_id=conv.pk, data={"conversation": conversation_data(conv), **extra}
    )


def message_event(msg: Message) -> WebhookEvent | None:
    """message.created for a visible customer, bot or agent message (internal notes and system
    lines are not reported)."""
    if msg.internal or msg.role == Message.Role.SYSTEM:
        return None
    return event_record(
        kind=Event.MESSAGE_CREATED,
        conversation_id=msg.conversation_id,
        data={"message": message_data(msg)},
    )


def feedback_event(feedback: Feedback) -> WebhookEvent:
    msg = feedback.message
    return event_record(
        kind=Event.FEEDBACK_CREATED,
        conversation_id=msg.conversation_id,
        data={
            "feedback": {
                "message_id": msg.pk,
                "value": feedback.value,
                "comment": feedback.comment,
                "created_at": _iso(feedback.created_at),
            }
        },
    )


def document_event(document_id: int) -> WebhookEvent | None:
    doc = KnowledgeDocument.objects.filter(pk=document_id).first()
    if doc is None:
        return None
    kind = Event.DOCUMENT_FAILED if doc.status == doc.Status.FAILED else Event.DOCUMENT_READY
    return event_record(
        kind=kind,
        data={
            "document": {
                "id": doc.pk,
                "title": str(doc),
                "status": doc.status,
                "chunk_count": doc.chunk_count,
                "error": doc.error,
                "indexed_at": _iso(doc.indexed_at),
            }
        },
    )


def in_transaction_event(kind: str, conv_id: UUID, **extra: Any) -> WebhookEvent:
    """conversation_event for callers holding only an id (reads the row in the transaction)."""
    with transaction.atomic():
        conv = Conversation.objects.select_related("assigned_agent").get(pk=conv_id)
        return conversation_event(kind, conv, **extra)
