"""Signed webhooks that are never dropped: a transactional outbox (outbox.py), Standard
Webhooks signatures (signing.py), an SSRF-guarded sender (http.py), retries and ordering
(delivery.py) and subscriptions (subscriptions.py). docs/api.md#webhooks."""

from .outbox import (
    conversation_event,
    document_event,
    event_record,
    feedback_event,
    message_event,
)

__all__ = [
    "conversation_event",
    "document_event",
    "event_record",
    "feedback_event",
    "message_event",
]
