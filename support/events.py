"""Channel-layer group names, event types and payload builders: the only place they are made."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.utils import timezone

from .answers.suggest import topics_suggest

logger = logging.getLogger(__name__)

AGENTS_GROUP = "support.agents"


def conversation_group(conversation_id: UUID) -> str:
    """`conversation.<uuid hex>`: ASCII, short, valid as a Channels group name."""
    return f"conversation.{conversation_id.hex}"


def group_send(group: str, event: dict[str, Any]) -> None:
    """Send now (outside any transaction). Delivery is best effort; the database is the truth."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, event)
    except Exception:
        # A dropped push is recovered by the client re-syncing from the database on reconnect;
        # it must never fail the write that triggered it.
        logger.exception("group_send to %s failed", group)


def group_send_on_commit(group: str, event: dict[str, Any]) -> None:
    """Send once the surrounding transaction commits (immediately when there is none)."""
    transaction.on_commit(lambda: group_send(group, event))


# --- Event types (dotted) and payloads --------------------------------------------------------
# The consumer handler for event type "a.b" is `a_b`; payloads are the client frames as sent.

MESSAGE_CREATED = "message.created"
REPLY_DELTA = "reply.delta"
REPLY_DONE = "reply.done"
STATUS_CHANGED = "status.changed"
TYPING = "typing.changed"
QUEUE_CHANGED = "queue.changed"


def citation_url(document_id: int, chunk_id: int) -> str:
    return f"/kb/{document_id}/#chunk-{chunk_id}"


def citations_with_urls(citations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored citations as clients get them: each with the URL of its passage."""
    return [
        {**c, "url": citation_url(c["document_id"], c["chunk_id"])}
        for c in citations
        if "document_id" in c and "chunk_id" in c
    ]


# An agent with neither a display name (AgentProfile) nor a first name.
AGENT_FALLBACK_NAME = "Support agent"


def display_name(user: Any) -> str:
    """How a person (an agent) is named to customers and in the workspace: their
    AgentProfile's display name, else their first name; never the login name."""
    try:
        profile = user.agent_profile
    except (ObjectDoesNotExist, AttributeError):
        profile = None
    name = (getattr(profile, "display_name", "") or "").strip()
    if not name:
        name = (getattr(user, "first_name", "") or "").strip()
    return name or AGENT_FALLBACK_NAME


def suggestions_with_urls(retrieved: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """A decline's suggested topics (support.answers.suggest), each with its passage's URL."""
    return [
        {**s, "url": citation_url(s["document_id"], s["chunk_id"])}
        if s.get("chunk_id") is not None
        else s
        for s in topics_suggest(retrieved)
    ]


def is_decline(message: Any) -> bool:
    """A bot message that declined to answer (it offers a rephrase or a person)."""
    return bool(message.role == "bot" and message.action == "escalate")


def line_kind(message: Any) -> str | None:
    """A system line's kind (support.handoff.transcript; "notice" for a rule's message written
    before kinds were stored), None for other roles."""
    return (message.reason or "notice") if message.role == "system" else None


def answer_source(message: Any) -> str | None:
    """Where a bot message's words come from (support.answers.reasons.AnswerSource: "learned"
    for an approved example's answer, "knowledge_base" otherwise), as its trace recorded it;
    None for other roles and for bot messages stored without a trace."""
    if message.role != "bot":
        return None
    source = (message.trace or {}).get("source")
    return str(source) if source else None


def message_payload(message: Any) -> dict[str, Any]:
    """The one serializer of a stored message for clients (widget and agent views).

    `kind`: a system line's kind (support.handoff.escalation_rules.LineKind; "notice" for a
    rule's message), None for other roles. `suggestions`: a decline's closest covered topics.
    `source`: where a bot answer's words come from (answer_source).
    """
    feedback = getattr(message, "feedback", None) if message.role == "bot" else None
    author = message.author
    declined = is_decline(message)
    return {
        "id": message.pk,
        "role": message.role,
        "text": message.text,
        "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
        "client_id": message.client_id,
        "reply_to": message.in_reply_to_id,
        "author_name": display_name(author) if author else None,
        "citations": citations_with_urls(message.citations or []),
        "confidence": message.retrieval_confidence,
        "action": message.action or None,
        "source": answer_source(message),
        "feedback": feedback.value if feedback else None,
        "kind": line_kind(message),
        "suggestions": suggestions_with_urls(message.retrieved or []) if declined else [],
    }


def message_created(message: Any) -> dict[str, Any]:
    # conversation_id and internal ride on the envelope for the agents' consumer; the chat
    # consumer relays only the payload.
    return {
        "type": MESSAGE_CREATED,
        "conversation_id": message.conversation_id.hex,
        "internal": bool(message.internal),
        "payload": {"type": "message", "message": message_payload(message)},
    }


def reply_done(message: Any) -> dict[str, Any]:
    return {
        "type": REPLY_DONE,
        "payload": {
            "type": "reply.done",
            "reply_to": message.in_reply_to_id,
            "message": message_payload(message),
        },
    }


def reply_delta(*, reply_to: int, seq: int, delta: str) -> dict[str, Any]:
    return {
        "type": REPLY_DELTA,
        "payload": {"type": "reply.delta", "reply_to": reply_to, "seq": seq, "delta": delta},
    }


def status_changed(payload: dict[str, Any]) -> dict[str, Any]:
    return {"type": STATUS_CHANGED, "payload": {"type": "status", **payload}}


def typing_changed(*, role: str, active: bool) -> dict[str, Any]:
    return {"type": TYPING, "payload": {"type": "typing", "role": role, "active": active}}


# --- Agent workspace ----------------------------------------------------------------------------
SUGGESTION_READY = "suggestion.ready"


def queue_changed(
    *, conversation_id: UUID | None = None, status: str | None = None
) -> dict[str, Any]:
    """The queue or a conversation's hands changed: agents' pages refresh what they show."""
    return {
        "type": QUEUE_CHANGED,
        "payload": {
            "type": "queue",
            "at": timezone.now().isoformat(),
            "conversation_id": conversation_id.hex if conversation_id else None,
            "status": status,
        },
    }


def suggestion_ready(
    *, conversation_id: UUID, agent_id: int, suggestion: dict[str, Any]
) -> dict[str, Any]:
    """A drafted reply for one agent (relayed only to that agent's sockets)."""
    return {
        "type": SUGGESTION_READY,
        "agent_id": agent_id,
        "payload": {
            "type": "suggestion",
            "conversation_id": conversation_id.hex,
            **suggestion,
        },
    }


# --- Answers over the REST API (support.ask) ----------------------------------------------------
ASK_DELTA = "ask.delta"
ASK_DONE = "ask.done"
ASK_FAILED = "ask.failed"


def ask_group(request_id: str) -> str:
    """`ask.<hex id>`: the one API request waiting for this answer."""
    return f"ask.{request_id}"


def ask_delta(*, seq: int, delta: str) -> dict[str, Any]:
    return {"type": ASK_DELTA, "payload": {"seq": seq, "delta": delta}}


def ask_done(result: dict[str, Any]) -> dict[str, Any]:
    return {"type": ASK_DONE, "payload": result}


def ask_failed(*, code: str, detail: str) -> dict[str, Any]:
    return {"type": ASK_FAILED, "payload": {"code": code, "detail": detail}}
