"""The handoff end to end over real websockets (the real ASGI stack and channel layer; Redis in
CI): a customer's widget socket, agents' `/ws/agent/` sockets and the admin views."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from chatbot.asgi import application
from support.agent_consumers import CLOSE_FORBIDDEN
from support.models import Conversation, Escalation, Message
from tests.fakes import FakeChatModel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

ORIGIN = (b"origin", b"http://localhost")
Frame = dict[str, Any]


async def chat_socket() -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, "/ws/chat/", headers=[ORIGIN])
    connected, _ = await comm.connect(timeout=5)
    assert connected
    await comm.send_json_to({"type": "hello", "name": "Jordan"})
    welcome = await comm.receive_json_from(timeout=10)
    assert welcome["type"] == "welcome"
    comm.conversation_id = welcome["conversation_id"]  # type: ignore[attr-defined]
    return comm


@sync_to_async
def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def agent_socket(
    client: Client | None, origin: bytes = b"http://localhost"
) -> tuple[bool, Any, WebsocketCommunicator]:
    headers = [(b"origin", origin)]
    if client is not None:
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    comm = WebsocketCommunicator(application, "/ws/agent/", headers=headers)
    connected, detail = await comm.connect(timeout=5)
    if connected:
        assert (await comm.receive_json_from(timeout=5))["type"] == "ready"
    return connected, detail, comm


async def until(
    comm: WebsocketCommunicator, match: Callable[[Frame], bool], seconds: float = 10
) -> Frame:
    """The first frame that matches (earlier ones are skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            frame = await comm.receive_json_from(timeout=seconds)
            if match(frame):
                return frame


def kind(k: str, **fields: Any) -> Callable[[Frame], bool]:
    return lambda f: f.get("type") == k and all(f.get(n) == v for n, v in fields.items())


def action(conv_id: Any, name: str) -> str:
    return reverse("admin:support_agent_action", args=[conv_id, name])


async def post(client: Client, url: str, data: dict[str, Any] | None = None) -> Any:
    return await sync_to_async(client.post)(url, data or {}, HTTP_ACCEPT="application/json")


async def latest_conversation() -> Conversation:
    return await Conversation.objects.order_by("-created_at").afirst()  # type: ignore[return-value]


async def test_handoff_claim_reply_note_resolve(chat_env: FakeChatModel, agent: Any) -> None:
    customer = await chat_socket()
    alex = await login(agent)
    ok, _, agent_ws = await agent_socket(alex)
    assert ok

    await customer.send_json_to(
        {"type": "message", "text": "I want to talk to a person", "client_id": "c1"}
    )
    queued = await until(customer, kind("status"))
    assert queued["status"] == "queued" and queued["queue_position"] == 1
    assert "number 1 in the queue" in queued["text"]
    conv = await latest_conversation()
    seen = await until(agent_ws, kind("message"))
    assert seen["conversation_id"] == conv.pk.hex and seen["message"]["role"] == "customer"
    assert (await until(agent_ws, kind("queue")))["type"] == "queue"

    # Claim: the customer sees the agent's name.
    response = await post(alex, action(conv.pk, "claim"))
    assert response.status_code == 200, response.content
    joined = await until(customer, kind("status"))
    assert joined["status"] == "agent" and joined["agent_name"] == "Alex"
    assert "Alex joined" in joined["text"]
    assert (await until(agent_ws, kind("queue")))["status"] == "agent"

    # Typing both ways.
    await customer.send_json_to({"type": "typing", "active": True})
    typing = await until(agent_ws, kind("typing"))
    assert typing["conversation_id"] == conv.pk.hex and typing["active"] is True
    await agent_ws.send_json_to({"type": "typing", "conversation_id": conv.pk.hex, "active": True})
    assert (await until(customer, kind("typing")))["role"] == "agent"

    # The reply arrives live in the customer's socket.
    response = await post(alex, action(conv.pk, "reply"), {"text": "Hi Jordan, I can help."})
    assert response.json()["ok"] is True
    reply = await until(customer, kind("message"))
    assert reply["message"]["role"] == "agent"
    assert reply["message"]["text"] == "Hi Jordan, I can help."
    assert reply["message"]["author_name"] == "Alex"
    mirrored = await until(agent_ws, kind("message"))
    assert mirrored["message"]["id"] == reply["message"]["id"] and mirrored["internal"] is False

    # An internal note reaches agents only.
    await post(alex, action(conv.pk, "note"), {"text": "VIP customer"})
    note = await until(agent_ws, kind("message"))
    assert note["internal"] is True and note["message"]["text"] == "VIP customer"
    assert await customer.receive_nothing(timeout=0.5)

    # The customer writes while with the agent: the agent sees it, the bot stays silent.
    await customer.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "c2"}
    )
    echoed = await until(agent_ws, kind("message"))
    assert echoed["message"]["text"] == "How do I reset my router?"
    await until(customer, kind("message"))
    assert await customer.receive_nothing(timeout=1.0)
    assert chat_env.calls == 0

    await post(alex, action(conv.pk, "resolve"))
    resolved = await until(customer, kind("status"))
    assert resolved["status"] == "resolved"
    await customer.disconnect()
    await agent_ws.disconnect()


async def test_bot_is_silent_while_queued(chat_env: FakeChatModel) -> None:
    customer = await chat_socket()
    await customer.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "a"}
    )
    await until(customer, kind("reply.done"), seconds=30)
    assert chat_env.calls == 1
    await customer.send_json_to({"type": "handoff"})
    assert (await until(customer, kind("status")))["status"] == "queued"
    await customer.send_json_to(
        {"type": "message", "text": "What does ERR-4032 mean?", "client_id": "b"}
    )
    ack = await until(customer, lambda f: f["type"] == "message" and f["message"]["kind"] == "ack")
    assert ack["message"]["role"] == "system"
    assert await customer.receive_nothing(timeout=1.5)  # no typing, no deltas, no answer
    assert chat_env.calls == 1
    question = await Message.objects.aget(client_id="b")
    assert not await Message.objects.filter(in_reply_to=question).aexists()
    await customer.disconnect()


async def test_after_hand_back_the_bot_prompt_contains_the_agent_reply(
    chat_env: FakeChatModel, agent: Any
) -> None:
    customer = await chat_socket()
    await customer.send_json_to(
        {"type": "message", "text": "Connect me to a human please", "client_id": "h"}
    )
    await until(customer, kind("status", status="queued"))
    conv = await latest_conversation()
    alex = await login(agent)
    await post(alex, action(conv.pk, "claim"))
    await post(alex, action(conv.pk, "reply"), {"text": "Your line ID is LINE-77Q; keep it."})
    await post(alex, action(conv.pk, "hand-back"))
    back = await until(customer, kind("status", status="bot"))
    assert "assistant" in back["text"]

    await customer.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "after"}
    )
    done = await until(customer, kind("reply.done"), seconds=30)
    assert done["message"]["role"] == "bot"
    assert chat_env.calls == 1
    assert "LINE-77Q" in chat_env.prompts[-1]  # the agent's reply is the bot's history
    await customer.disconnect()


async def test_concurrent_claims_one_agent_wins(
    agent: Any, other_agent: Any, using_real_services: dict[str, bool]
) -> None:
    customer = await chat_socket()
    await customer.send_json_to({"type": "handoff"})
    await until(customer, kind("status", status="queued"))
    conv = await latest_conversation()
    clients = [await login(agent), await login(other_agent)]
    claim = action(conv.pk, "claim")
    if using_real_services["postgres"]:
        # Two threads racing on the row lock.
        def claim_in_thread(client: Client) -> Any:
            try:
                return client.post(claim, {}, HTTP_ACCEPT="application/json")
            finally:
                connection.close()  # this executor thread's own connection

        race = sync_to_async(claim_in_thread, thread_sensitive=False)
        responses = await asyncio.gather(*(race(c) for c in clients))
    else:  # SQLite's in-memory test database: one after the other
        responses = [await post(c, claim) for c in clients]
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.content for r in responses]
    loser = next(r for r in responses if r.status_code == 409).json()
    assert loser["code"] == "already_claimed" and "already claimed" in loser["message"]
    esc = await Escalation.objects.select_related("claimed_by").aget(conversation_id=conv.pk)
    joined = await until(customer, kind("status", status="agent"))
    assert joined["agent_name"] == esc.claimed_by.first_name
    assert await customer.receive_nothing(timeout=0.5)  # exactly one "joined"
    await customer.disconnect()


async def test_suggested_reply_goes_to_the_requesting_agent_only(
    chat_env: FakeChatModel, agent: Any, other_agent: Any
) -> None:
    customer = await chat_socket()
    await customer.send_json_to({"type": "handoff"})
    await until(customer, kind("status", status="queued"))
    await customer.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "q"}
    )
    await until(customer, kind("message"))
    conv = await latest_conversation()
    alex, sam = await login(agent), await login(other_agent)
    _, _, alex_ws = await agent_socket(alex)
    _, _, sam_ws = await agent_socket(sam)
    await post(alex, action(conv.pk, "claim"))
    response = await post(alex, action(conv.pk, "suggest"))
    assert response.json() == {"ok": True, "queued": True}
    suggestion = await until(alex_ws, kind("suggestion"), seconds=30)
    assert suggestion["conversation_id"] == conv.pk.hex and suggestion["ok"] is True
    assert suggestion["text"] == "Hold the reset button for 10 seconds [1]."
    assert suggestion["citations"][0]["url"].startswith("/kb/")
    # Never sent by itself, and never shown to another agent.
    assert not await Message.objects.filter(conversation_id=conv.pk, role="agent").aexists()
    while not await sam_ws.receive_nothing(timeout=0.3):
        assert (await sam_ws.receive_json_from())["type"] != "suggestion"
    for comm in (customer, alex_ws, sam_ws):
        await comm.disconnect()


async def test_who_may_open_the_agent_socket(
    agent: Any, knowledge_admin: Any, plain_staff: Any
) -> None:
    ok, code, _ = await agent_socket(None)
    assert (ok, code) == (False, CLOSE_FORBIDDEN)
    for user in (knowledge_admin, plain_staff):
        ok, code, _ = await agent_socket(await login(user))
        assert (ok, code) == (False, CLOSE_FORBIDDEN)
    alex = await login(agent)
    with override_settings(
        ALLOWED_HOSTS=["localhost"], SUPPORT_ALLOWED_EMBED_ORIGINS=["https://shop.example"]
    ):
        # A customer's site may open the chat, never an agent socket with an agent's cookie.
        chat = WebsocketCommunicator(
            application, "/ws/chat/", headers=[(b"origin", b"https://shop.example")]
        )
        assert (await chat.connect(timeout=5))[0]
        await chat.disconnect()
        ok, _, _ = await agent_socket(alex, origin=b"https://shop.example")
        assert not ok
        ok, _, comm = await agent_socket(alex, origin=b"http://localhost")
        assert ok
        await comm.disconnect()


async def test_a_customer_never_sees_another_conversation(agent: Any) -> None:
    first, second = await chat_socket(), await chat_socket()
    await first.send_json_to({"type": "handoff"})
    await until(first, kind("status", status="queued"))
    conv = await Conversation.objects.aget(pk=first.conversation_id)  # type: ignore[attr-defined]
    alex = await login(agent)
    await post(alex, action(conv.pk, "claim"))
    await post(alex, action(conv.pk, "reply"), {"text": "private to the first customer"})
    await post(alex, action(conv.pk, "note"), {"text": "internal"})
    reply = await until(first, lambda f: f["type"] == "message" and f["message"]["role"] == "agent")
    assert reply["message"]["text"] == "private to the first customer"
    assert await second.receive_nothing(timeout=0.5)
    # A conversation id is not a token: it cannot be used to resume someone else's chat.
    await second.send_json_to({"type": "hello", "token": conv.pk.hex})
    assert (await second.receive_json_from(timeout=5))["code"] == "token_invalid"
    welcome = await second.receive_json_from(timeout=5)
    assert welcome["conversation_id"] != conv.pk.hex and welcome["history"] == []
    for comm in (first, second):
        await comm.disconnect()


async def test_agent_socket_survives_odd_frames_and_unknown_events(agent: Any) -> None:
    from channels.layers import get_channel_layer

    from support import events

    customer = await chat_socket()
    ok, _, agent_ws = await agent_socket(await login(agent))
    assert ok
    await agent_ws.send_json_to({"type": "launch"})
    assert (await agent_ws.receive_json_from())["code"] == "unknown_type"
    await agent_ws.send_json_to({"type": "typing", "conversation_id": "nope", "active": True})
    assert (await agent_ws.receive_json_from())["code"] == "bad_frame"
    # Typing for a conversation the agent does not hold reaches nobody.
    await agent_ws.send_json_to(
        {"type": "typing", "conversation_id": customer.conversation_id, "active": True}  # type: ignore[attr-defined]
    )
    assert await customer.receive_nothing(timeout=0.5)
    # Another part of the app may add events to the agents' group: they are ignored, not fatal.
    await get_channel_layer().group_send(events.AGENTS_GROUP, {"type": "escalation.created"})
    await agent_ws.send_json_to({"type": "ping"})
    assert (await agent_ws.receive_json_from())["type"] == "pong"
    for comm in (customer, agent_ws):
        await comm.disconnect()
