"""The answer being written, kept in the shared cache so a reconnecting client can catch up."""

from __future__ import annotations

from typing import Any, TypedDict, cast
from uuid import UUID

from django.core.cache import cache

TTL_S = 300


class StreamState(TypedDict):
    reply_to: int
    seq: int
    text: str


def _key(conversation_id: UUID) -> str:
    return f"stream:{conversation_id.hex}"


def stream_state_set(*, conversation_id: UUID, reply_to: int, seq: int, text: str) -> None:
    cache.set(_key(conversation_id), {"reply_to": reply_to, "seq": seq, "text": text}, TTL_S)


def stream_state_get(*, conversation_id: UUID) -> StreamState | None:
    value: Any = cache.get(_key(conversation_id))
    return cast(StreamState, value) if isinstance(value, dict) else None


def stream_state_clear(*, conversation_id: UUID) -> None:
    cache.delete(_key(conversation_id))


def cancel_requested(*, conversation_id: UUID) -> bool:
    return bool(cache.get(f"cancel:{conversation_id.hex}"))


def cancel_request(*, conversation_id: UUID) -> None:
    """Ask the worker writing an answer for this conversation to stop (escalated, closed)."""
    cache.set(f"cancel:{conversation_id.hex}", 1, TTL_S)


def cancel_clear(*, conversation_id: UUID) -> None:
    cache.delete(f"cancel:{conversation_id.hex}")
