"""The chat websocket: validates frames, makes one service call each, relays group events."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from typing import Any
from uuid import UUID

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.db import DatabaseError
from redis.exceptions import RedisError

from . import conversations, events, limits
from .conf import get_support_settings
from .exceptions import SupportError

logger = logging.getLogger(__name__)

# Close codes (4000-4999 are the application's): too many sockets from one address.
CLOSE_TOO_MANY_CONNECTIONS = 4429
CLOSE_TRY_AGAIN = 1013
CLOSE_SERVICE_RESTART = 1012
# Seconds after which a client may resend a frame that failed on a database error.
DB_RETRY_AFTER_S = 2.0


def _error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}


def _client_ip(scope: dict[str, Any]) -> str:
    client = scope.get("client") or ("unknown", 0)
    return str(client[0])


class ChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    conversation_id: UUID | None = None
    group: str | None = None
    ticket: limits.ConnectionTicket | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except (RedisError, OSError):
            # The channel layer lost Redis (a restart): close the socket with "service restart"
            # instead of crashing it. The widget reconnects with backoff and re-syncs from the
            # database in the welcome frame; a count left behind ages out (support.limits).
            logger.warning("Chat socket closed: the channel layer is unavailable", exc_info=True)
            with contextlib.suppress(Exception):  # the socket may be gone already
                await send({"type": "websocket.close", "code": CLOSE_SERVICE_RESTART})
            if self.ticket is not None:
                await database_sync_to_async(limits.connection_close)(ticket=self.ticket)
                self.ticket = None

    async def connect(self) -> None:
        self.conf = get_support_settings()
        self.ip = _client_ip(self.scope)
        self.sent_times: list[float] = []
        self.ticket = await database_sync_to_async(limits.connection_open)(ip=self.ip)
        await self.accept()
        if self.ticket is None:
            await self.send_json(
                _error(
                    "too_many_connections",
                    f"Too many open chats from your address (at most "
                    f"{self.conf.max_connections_per_ip}). Close one and try again.",
                    retry_after=30,
                )
            )
            await self.close(code=CLOSE_TOO_MANY_CONNECTIONS)

    async def disconnect(self, code: int) -> None:
        if self.ticket is not None:
            await database_sync_to_async(limits.connection_close)(ticket=self.ticket)
            self.ticket = None
        if self.group:
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            except (RedisError, OSError):
                # Redis is restarting; the membership expires with channels-redis' group expiry.
                logger.info("group_discard failed: the channel layer is unavailable")

    # --- inbound ------------------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.send_json(_error("bad_json", "Frames must be JSON text, not binary."))
            return
        if len(text_data.encode()) > self.conf.max_frame_bytes:
            await self.send_json(
                _error(
                    "frame_too_large", f"Frames can be at most {self.conf.max_frame_bytes} bytes."
                )
            )
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self.send_json(_error("bad_json", "That frame is not valid JSON."))
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            await self.send_json(_error("bad_frame", "A frame is a JSON object with a 'type'."))
            return
        problem = limits.frame_text_problem(frame)
        if problem is not None:
            await self.send_json(_error("bad_frame", problem, **_about(frame)))
            return
        await self.receive_json(frame)

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        kind = content["type"]
        handler = self.HANDLERS.get(kind)
        if handler is None:
            await self.send_json(_error("unknown_type", f"Unknown frame type {kind!r}."))
            return
        if kind not in ("hello", "ping") and self.conversation_id is None:
            await self.send_json(_error("not_started", "Send a 'hello' frame first."))
            return
        # Errors caused by a message name its client_id (by a rating: `for`), so the widget
        # marks the right one.
        extra = _about(content)
        try:
            await handler(self, content)
        except SupportError as exc:
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                extra["retry_after"] = retry_after
            await self.send_json(_error(exc.code, exc.message, **extra))
        except _BadField as exc:
            await self.send_json(_error("bad_frame", str(exc), **extra))
        except DatabaseError:
            # PostgreSQL restarting, a lock timeout: nothing was stored (the transaction rolled
            # back). The client resends with the same client_id, which is idempotent.
            logger.exception("Database error handling a %r frame", kind)
            await self.send_json(
                _error(
                    "server_error",
                    "We could not save that just now. Please send it again.",
                    retryable=True,
                    retry_after=DB_RETRY_AFTER_S,
                    **extra,
                )
            )
            if kind == "hello":  # no conversation without a welcome: reconnect and say hello
                await self.close(code=CLOSE_TRY_AGAIN)
        except Exception:
            logger.exception("Error handling a %r frame", kind)
            await self.send_json(
                _error("server_error", "Something went wrong on our side.", **extra)
            )
            if kind == "hello":
                await self.close(code=CLOSE_TRY_AGAIN)

    async def on_hello(self, frame: dict[str, Any]) -> None:
        token = _opt_str(frame, "token")
        headers = dict(self.scope.get("headers") or [])
        welcome = await database_sync_to_async(conversations.conversation_open)(
            token=token,
            origin=headers.get(b"origin", b"").decode("latin-1"),
            customer_name=_opt_str(frame, "name") or "",
            customer_email=_opt_str(frame, "email") or "",
            language=_opt_str(frame, "language") or "",
        )
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        self.conversation_id = welcome.conversation.pk
        self.group = events.conversation_group(welcome.conversation.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        if welcome.error is not None:
            await self.send_json(_error(welcome.error.code, welcome.error.message))
        await self.send_json(welcome.frame)

    async def on_message(self, frame: dict[str, Any]) -> None:
        text = _req_str(frame, "text")
        client_id = _req_str(frame, "client_id")
        self._connection_rate_check()
        assert self.conversation_id is not None
        await database_sync_to_async(conversations.customer_message_receive)(
            conversation_id=self.conversation_id, text=text, client_id=client_id, ip=self.ip
        )
        # The stored message reaches this socket through the group, like every other event.

    def _connection_rate_check(self) -> None:
        # This socket's own budget: process-local, no I/O.
        now = time.monotonic()
        self.sent_times = [t for t in self.sent_times if now - t < 60]
        if len(self.sent_times) >= self.conf.rate_per_connection:
            raise limits.RateLimited(
                "You are sending messages too quickly; please wait a moment.",
                retry_after=60 - (now - self.sent_times[0]),
            )
        self.sent_times.append(now)

    async def on_feedback(self, frame: dict[str, Any]) -> None:
        message_id = frame.get("message_id")
        if not isinstance(message_id, int) or isinstance(message_id, bool):
            raise _BadField("'message_id' must be an integer.")
        assert self.conversation_id is not None
        await database_sync_to_async(conversations.feedback_set)(
            conversation_id=self.conversation_id,
            message_id=message_id,
            value=_req_str(frame, "value"),
            comment=_opt_str(frame, "comment") or "",
        )
        await self.send_json({"type": "ack", "for": "feedback", "message_id": message_id})

    async def on_rate(self, frame: dict[str, Any]) -> None:
        rating = frame.get("rating")
        if not isinstance(rating, int) or isinstance(rating, bool):
            raise _BadField("'rating' must be a whole number from 1 to 5.")
        assert self.conversation_id is not None
        conv = await database_sync_to_async(conversations.conversation_rate)(
            conversation_id=self.conversation_id,
            rating=rating,
            comment=_opt_str(frame, "comment") or "",
        )
        await self.send_json({"type": "ack", "for": "rate", "rating": conv.rating})

    async def on_handoff(self, frame: dict[str, Any]) -> None:
        assert self.conversation_id is not None
        status = await database_sync_to_async(conversations.handoff_request)(
            conversation_id=self.conversation_id
        )
        await self.send_json({"type": "status", **status})

    async def on_email(self, frame: dict[str, Any]) -> None:
        assert self.conversation_id is not None
        await database_sync_to_async(conversations.customer_email_set)(
            conversation_id=self.conversation_id, email=_req_str(frame, "email")
        )
        await self.send_json({"type": "ack", "for": "email"})

    async def on_typing(self, frame: dict[str, Any]) -> None:
        active = frame.get("active")
        if not isinstance(active, bool):
            raise _BadField("'active' must be true or false.")
        await self.channel_layer.group_send(
            events.AGENTS_GROUP,
            {
                "type": events.TYPING,
                "payload": {
                    "type": "typing",
                    "role": "customer",
                    "active": active,
                    "conversation_id": self.conversation_id.hex if self.conversation_id else None,
                },
            },
        )

    async def on_ping(self, frame: dict[str, Any]) -> None:
        if self.ticket is not None and self.ticket.renew_due():
            # A long-lived socket keeps counting against its address's limit.
            self.ticket = await database_sync_to_async(limits.connection_renew)(ticket=self.ticket)
        await self.send_json({"type": "pong"})

    HANDLERS = {
        "hello": on_hello,
        "message": on_message,
        "feedback": on_feedback,
        "rate": on_rate,
        "handoff": on_handoff,
        "email": on_email,
        "typing": on_typing,
        "ping": on_ping,
    }

    # --- group events: relayed as they are ---------------------------------------------------
    async def message_created(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])

    async def reply_delta(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])

    async def reply_done(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])

    async def status_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])

    async def typing_changed(self, event: dict[str, Any]) -> None:
        if event["payload"].get("role") != "customer":
            await self.send_json(event["payload"])


class _BadField(Exception):
    pass


def _about(frame: dict[str, Any]) -> dict[str, Any]:
    """What an error frame names so the client can tell which frame failed."""
    if frame.get("type") == "message" and isinstance(frame.get("client_id"), str):
        return {"client_id": frame["client_id"]}
    if frame.get("type") == "rate":
        return {"for": "rate"}
    return {}


def _req_str(frame: dict[str, Any], name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str):
        raise _BadField(f"'{name}' must be a string.")
    return value


def _opt_str(frame: dict[str, Any], name: str) -> str | None:
    value = frame.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _BadField(f"'{name}' must be a string.")
    return value
