"""A thread-safe in-memory channel layer for the embedded one-process mode.

Channels' InMemoryChannelLayer keeps asyncio queues that belong to the server's event loop. A
`group_send` made through `async_to_sync` from another thread (the in-process Celery worker)
puts the message on the queue from a foreign loop, and the waiting consumer only wakes up when
the server loop wakes for some other reason (a 4.5 s stall was measured). This layer remembers
the loop its receivers run on and hands every send from another loop over to that loop with
`run_coroutine_threadsafe`, which wakes it at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer as _RedisChannelLayer
from redis.asyncio import ConnectionPool


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner_loop: asyncio.AbstractEventLoop | None = None
        self._owner_lock = threading.Lock()

    def _remember_loop(self) -> None:
        loop = asyncio.get_running_loop()
        owner = self._owner_loop
        if owner is None or owner.is_closed() or not owner.is_running():
            with self._owner_lock:
                self._owner_loop = loop

    def _foreign_owner(self) -> asyncio.AbstractEventLoop | None:
        owner = self._owner_loop
        if owner is None or owner.is_closed() or not owner.is_running():
            return None
        if owner is asyncio.get_running_loop():
            return None
        return owner

    async def _on_owner(self, coro: Coroutine[Any, Any, Any]) -> Any:
        owner = self._foreign_owner()
        if owner is None:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, owner))

    async def receive(self, channel: str) -> Any:
        self._remember_loop()
        return await super().receive(channel)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._on_owner(super().send(channel, message))

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._on_owner(super().group_send(group, message))

    async def group_add(self, group: str, channel: str) -> None:
        await self._on_owner(super().group_add(group, channel))

    async def group_discard(self, group: str, channel: str) -> None:
        await self._on_owner(super().group_discard(group, channel))


class RedisChannelLayer(_RedisChannelLayer):  # type: ignore[misc]
    """channels-redis with a Redis pool that suits many sockets per process.

    With redis-py 8, two defaults break channels-redis 4.3 under real traffic (measured by
    bench/chat_load.py): every connection gets a 5 s read timeout while channels-redis waits for
    messages with a 5 s BZPOPMIN, so a quiet layer raises TimeoutError in a consumer's receive
    loop and drops that customer's socket; and the asyncio pool raises MaxConnectionsError at
    once when its connections are busy, so a burst of connects/disconnects crashes consumers in
    group_add/group_discard. Here the read timeout is longer than the BZPOPMIN wait and the pool
    allows far more connections. (A BlockingConnectionPool would wait instead, but its asyncio
    Condition binds to one event loop, and `async_to_sync` in workers runs each send in a new
    loop.)
    """

    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        address = host.pop("address")
        host.setdefault("socket_timeout", self.brpop_timeout + 10)
        host.setdefault("max_connections", 2000)
        return ConnectionPool.from_url(address, **host)
