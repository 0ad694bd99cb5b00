"""The agents' websocket (`/ws/agent/`): live queue, messages, typing and suggested replies.

Thin: checks who connects, relays group events from `events.AGENTS_GROUP`, and turns the
agent's typing frames into one service call. Sending replies goes through the admin views.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse
from uuid import UUID

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.http.request import validate_host

from . import events
from .handoff import agents

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's): the page shows why and stops reconnecting.
CLOSE_FORBIDDEN = 4403


def _origin_is_this_site(scope: dict[str, Any]) -> bool:
    """Only pages of this site (ALLOWED_HOSTS), never the embed origins the widget may use:
    a customer's site must not open an agent socket with an agent's cookies."""
    headers = dict(scope.get("headers") or [])
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    origin = headers.get(b"origin")
    if origin is None:
        return "*" in allowed
    host = urlparse(origin.decode("latin-1")).hostname
    return bool(host) and validate_host(str(host), allowed)


class AgentConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    joined = False

    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = _origin_is_this_site(self.scope) and await database_sync_to_async(
            agents.is_support_agent
        )(user)
        if not allowed:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.user = user
        await self.channel_layer.group_add(events.AGENTS_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_json({"type": "ready", "agent_id": user.pk})

    async def disconnect(self, code: int) -> None:
        if self.joined:
            await self.channel_layer.group_discard(events.AGENTS_GROUP, self.channel_name)

    async def dispatch(self, message: dict[str, Any]) -> None:
        # An event type this consumer does not handle must not close every agent's socket.
        kind = str(message.get("type", ""))
        if not kind.startswith("websocket.") and not hasattr(self, kind.replace(".", "_")):
            logger.debug("agent socket ignores event %s", kind)
            return
        await super().dispatch(message)

    # --- inbound ------------------------------------------------------------------------------
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind == "typing":
            conversation_id, active = content.get("conversation_id"), content.get("active")
            try:
                cid = UUID(hex=str(conversation_id))
            except ValueError:
                cid = None
            if cid is None or not isinstance(active, bool):
                await self._error("bad_frame", "'conversation_id' and 'active' are required.")
                return
            await database_sync_to_async(agents.agent_typing_set)(
                conversation_id=cid, agent=self.user, active=active
            )
        else:
            await self._error("unknown_type", f"Unknown frame type {kind!r}.")

    async def _error(self, code: str, message: str) -> None:
        await self.send_json({"type": "error", "code": code, "message": message})

    # --- group events ---------------------------------------------------------------------------
    async def message_created(self, event: dict[str, Any]) -> None:
        await self.send_json(
            {
                **event["payload"],
                "conversation_id": event.get("conversation_id"),
                "internal": bool(event.get("internal")),
            }
        )

    async def queue_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])

    async def typing_changed(self, event: dict[str, Any]) -> None:
        if event["payload"].get("role") == "customer":
            await self.send_json(event["payload"])

    async def suggestion_ready(self, event: dict[str, Any]) -> None:
        if event.get("agent_id") == self.user.pk:
            await self.send_json(event["payload"])
