"""The embedded layer must deliver sends made from another thread without a stall."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer

from support.channel_layers import ThreadSafeInMemoryChannelLayer


async def _receive_while_other_thread_sends(layer: InMemoryChannelLayer, wait: float) -> float:
    """Seconds until the parked receiver got a message sent from another thread."""
    channel = await layer.new_channel()
    await layer.group_add("conversation.abc", channel)

    def from_worker_thread() -> None:
        async_to_sync(layer.group_send)("conversation.abc", {"type": "x.y", "n": 1})

    receiver = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)  # the receiver is now parked on this loop
    thread = threading.Thread(target=from_worker_thread)
    started = time.monotonic()
    thread.start()
    try:
        # Only this timer can wake an idle loop; a delivery that needs it arrives at `wait`.
        message = await asyncio.wait_for(receiver, wait)
        elapsed = time.monotonic() - started
    except TimeoutError:
        return float("inf")
    finally:
        # Joined off the loop: the sender's future completes through this loop.
        await asyncio.to_thread(thread.join, 5)
    assert message == {"type": "x.y", "n": 1}
    return elapsed


async def test_thread_safe_layer_delivers_cross_thread_group_send() -> None:
    # Channels' plain InMemoryChannelLayer completes the parked receiver's future from the sending
    # thread without waking the loop, so delivery waits for the loop's next unrelated wake-up (a
    # 4.5 s stall was measured). That upstream behaviour is not asserted here: whether something
    # else wakes a loop is timing-dependent, and a test of it failed once in CI by passing fast.
    assert await _receive_while_other_thread_sends(ThreadSafeInMemoryChannelLayer(), 3.0) < 1.0


async def test_quiet_redis_layer_waits_without_errors(private_redis) -> None:  # type: ignore[no-untyped-def]
    """A receive on a quiet channel outlives redis-py's default 5 s read timeout."""
    from support.channel_layers import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[private_redis.url])
    channel = await layer.new_channel()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), 7.0)
        await layer.send(channel, {"type": "still.alive"})
        assert (await asyncio.wait_for(layer.receive(channel), 5.0))["type"] == "still.alive"
    finally:
        await layer.flush()
        await layer.close_pools()


async def test_redis_layer_absorbs_a_burst_beyond_the_pool_size(private_redis) -> None:  # type: ignore[no-untyped-def]
    from support.channel_layers import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[private_redis.url])
    try:
        channels = [await layer.new_channel() for _ in range(300)]
        await asyncio.gather(*(layer.group_add("burst", c) for c in channels))
        await asyncio.gather(*(layer.group_discard("burst", c) for c in channels))
    finally:
        await layer.flush()
        await layer.close_pools()
