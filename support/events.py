"""Channel-layer group names, event types and payload builders: the only place they are made."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

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
