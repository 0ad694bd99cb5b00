"""WebSocket helpers for tests over the real ASGI stack: each connection gets its own client
address, so per-IP limits (kept in the shared cache) never let tests eat into each other's
budget."""

from __future__ import annotations

import secrets
from typing import Any

from channels.testing import WebsocketCommunicator

from chatbot.asgi import application

ORIGIN = [(b"origin", b"http://localhost")]


def random_ip() -> str:
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"


async def connect(client_ip: str | None = None) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, "/ws/chat/", headers=ORIGIN)
    comm.scope["client"] = (client_ip or random_ip(), 50000)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    return comm


async def hello(comm: WebsocketCommunicator, token: str | None = None) -> dict[str, Any]:
    await comm.send_json_to({"type": "hello", **({"token": token} if token else {})})
    frame = await comm.receive_json_from(timeout=10)
    assert frame["type"] == "welcome", frame
    return frame


async def until(comm: WebsocketCommunicator, kind: str, wait_s: float = 30) -> list[dict[str, Any]]:
    """Frames received up to and including the first of `kind`."""
    frames = []
    while True:
        frame = await comm.receive_json_from(timeout=wait_s)
        frames.append(frame)
        if frame["type"] == kind:
            return frames


async def ask(
    comm: WebsocketCommunicator, text: str = "How do I reset my router?", client_id: str = "c"
) -> None:
    await comm.send_json_to({"type": "message", "text": text, "client_id": client_id})
