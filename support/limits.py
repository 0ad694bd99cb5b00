"""Abuse limits on the chat socket: message rates, open sockets per IP, what frames may contain.

Counters live in the shared cache, so they hold across ASGI processes when REDIS_URL is set
(Redis); in the embedded mode the cache is process-local, and so is every count. When the cache
itself is unreachable the limits let traffic through (logged): they must never turn a Redis
outage into refused customer messages.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.core.cache import cache

from .conf import get_support_settings
from .exceptions import SupportError

logger = logging.getLogger(__name__)

# Open sockets are counted in time buckets: a socket adds one to the bucket it opened in (moved
# to the current bucket by `connection_renew`) and takes it away on disconnect. The count is the
# sum of the last CONNECTION_BUCKETS buckets, so the count of a process that died without
# disconnecting its sockets is forgotten after CONNECTION_BUCKETS * CONNECTION_BUCKET_S.
CONNECTION_BUCKET_S = 600
CONNECTION_BUCKETS = 6
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class RateLimited(SupportError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = round(retry_after, 1)


def rate_limit_hit(
    *, key: str, limit: int, window_s: int = 60, now: float | None = None
) -> float | None:
    """Count one event for `key`; return seconds to wait if over `limit` (the event is then not
    counted), else None.

    A sliding window, estimated from two fixed windows: the events of the current window plus
    those of the previous one, weighted by the share of it that still lies within the last
    `window_s` seconds. A fixed window alone let a burst straddling its boundary through at
    twice the limit (and made a test that sends limit + 1 messages fail whenever a minute
    turned between them).
    """
    now = time.time() if now is None else now
    window = int(now // window_s)
    cache_key = f"rl:{key}:{window}"
    ttl = 2 * window_s + 5  # the window is read as "previous" during the next one
    if cache.add(cache_key, 1, ttl):
        count = 1
    else:
        try:
            count = cache.incr(cache_key)
        except ValueError:  # expired between add and incr
            cache.add(cache_key, 1, ttl)
            count = 1
    previous = int(cache.get(f"rl:{key}:{window - 1}") or 0)
    into = (now % window_s) / window_s  # share of the current window gone by
    if count + previous * (1.0 - into) <= limit:
        return None
    # A refused event is not counted: a client that waits the time it is told gets through.
    with contextlib.suppress(ValueError):
        cache.decr(cache_key)
    if count > limit or not previous:
        return float(window_s * (1.0 - into))  # this window alone is over: wait for the next
    # The previous window's weight must fall until count + previous * (1 - x) <= limit.
    x = 1.0 - (limit - count) / previous
    return max(float(window_s * (x - into)), 0.1)


def message_rate_check(*, ip: str, conversation_id: UUID) -> None:
    """Count a customer message; RateLimited when its IP or its conversation sent too many in
    this minute (SUPPORT_RATE_PER_IP, SUPPORT_RATE_PER_CONVERSATION)."""
    conf = get_support_settings()
    for key, limit in (
        (f"ip:{ip}", conf.rate_per_ip),
        (f"conv:{conversation_id.hex}", conf.rate_per_conversation),
    ):
        try:
            wait = rate_limit_hit(key=key, limit=limit)
        except Exception:
            logger.warning("Rate limit not checked: shared cache unavailable", exc_info=True)
            return
        if wait is not None:
            raise RateLimited(
                "You are sending messages too quickly; please wait a moment.", retry_after=wait
            )


# --- open sockets per IP -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ConnectionTicket:
    """One counted socket: where its count sits, to take it away again."""

    ip: str
    bucket: int

    def renew_due(self, now: float | None = None) -> bool:
        """The count is about to age out of the window: move it to the current bucket."""
        current = _bucket(time.time() if now is None else now)
        return current - self.bucket >= CONNECTION_BUCKETS // 2


def _bucket(now: float) -> int:
    return int(now // CONNECTION_BUCKET_S)


def _connection_key(ip: str, bucket: int) -> str:
    return f"conns:{ip}:{bucket}"


def _count_add(key: str) -> int:
    ttl = CONNECTION_BUCKET_S * (CONNECTION_BUCKETS + 1)
    if cache.add(key, 1, ttl):
        return 1
    try:
        return int(cache.incr(key))
    except ValueError:  # expired in between
        cache.add(key, 1, ttl)
        return 1


def _count_remove(key: str) -> None:
    with contextlib.suppress(ValueError):  # the bucket aged out already
        cache.decr(key)


def connection_count(*, ip: str, now: float | None = None) -> int:
    """Open sockets of this IP, as counted in the shared cache."""
    current = _bucket(time.time() if now is None else now)
    keys = [_connection_key(ip, b) for b in range(current - CONNECTION_BUCKETS + 1, current + 1)]
    return sum(max(0, int(v)) for v in cache.get_many(keys).values())


def connection_open(*, ip: str, now: float | None = None) -> ConnectionTicket | None:
    """Count a new socket of this IP; None (and nothing counted) when it has
    SUPPORT_MAX_CONNECTIONS_PER_IP open already."""
    limit = get_support_settings().max_connections_per_ip
    now = time.time() if now is None else now
    ticket = ConnectionTicket(ip, _bucket(now))
    key = _connection_key(ip, ticket.bucket)
    try:
        _count_add(key)
        if connection_count(ip=ip, now=now) > limit:
            _count_remove(key)
            return None
    except Exception:
        logger.warning("Connections not counted: shared cache unavailable", exc_info=True)
    return ticket


def connection_renew(*, ticket: ConnectionTicket, now: float | None = None) -> ConnectionTicket:
    """Move a long-lived socket's count to the current bucket (so it keeps counting)."""
    now = time.time() if now is None else now
    if not ticket.renew_due(now):
        return ticket
    renewed = ConnectionTicket(ticket.ip, _bucket(now))
    try:
        _count_add(_connection_key(renewed.ip, renewed.bucket))
        _count_remove(_connection_key(ticket.ip, ticket.bucket))
    except Exception:
        logger.warning("Connection count not renewed: shared cache unavailable", exc_info=True)
        return ticket
    return renewed


def connection_close(*, ticket: ConnectionTicket) -> None:
    """The socket closed: take its count away."""
    try:
        _count_remove(_connection_key(ticket.ip, ticket.bucket))
    except Exception:
        logger.warning("Connection count not released: shared cache unavailable", exc_info=True)


# --- what a frame may contain ------------------------------------------------------------------
def _strings(value: Any) -> Iterator[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def frame_text_problem(frame: dict[str, Any]) -> str | None:
    """Why the strings of a parsed frame cannot be stored (NUL, unpaired surrogates), or None.

    Checked on every frame before any service sees it: PostgreSQL text refuses NUL, and a lone
    surrogate (valid in JSON's \\uXXXX escapes, not in UTF-8) cannot be encoded at all. The
    message names the offending field, as other `bad_frame` errors do.
    """
    for name, value in frame.items():
        for text in _strings([name, value]):
            if "\x00" in text:
                return f"'{_printable(name)}' cannot contain NUL characters."
            if _SURROGATE.search(text):
                return f"'{_printable(name)}' cannot contain unpaired surrogates (invalid Unicode)."
    return None


def _printable(name: str) -> str:
    return _SURROGATE.sub("?", name).replace("\x00", "?")[:40]
