"""The embedded layer must deliver sends made from another thread without a stall."""

from __future__ import annotations

import asyncio
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
    assert await _receive_while_other_thread_sends(ThreadSafeInMemoryChannelLayer(), 3.0) < 1.0


async def test_plain_in_memory_layer_stalls_on_cross_thread_send() -> None:
    # Documents why the embedded mode needs its own layer: the idle loop is never woken.
    assert await _receive_while_other_thread_sends(InMemoryChannelLayer(), 3.0) > 2.0
