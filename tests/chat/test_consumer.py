"""The chat websocket over the real channel layer (Redis in CI), with the real ASGI stack."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from chatbot.asgi import application
from support.models import Conversation, Feedback, Message
from tests import ws
from tests.fakes import FakeChatModel

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def _hello(comm: WebsocketCommunicator, token: str | None = None) -> dict[str, Any]:
    await comm.send_json_to({"type": "hello", **({"token": token} if token else {})})
    frame = await comm.receive_json_from(timeout=10)
    if frame["type"] == "error":
        return {"error": frame, "welcome": await comm.receive_json_from(timeout=10)}
    assert frame["type"] == "welcome"
    return frame


async def test_full_exchange_streams_deltas_then_the_stored_answer(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    welcome = await _hello(comm)
    assert welcome["status"] == "bot" and welcome["history"] == []
    await comm.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "c-1"}
    )
    frames = await ws.until(comm, "reply.done")
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "message" and frames[0]["message"]["client_id"] == "c-1"
    deltas = [f for f in frames if f["type"] == "reply.delta"]
    assert deltas, kinds
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    done = frames[-1]
    streamed = "".join(d["delta"] for d in deltas)
    assert (
        done["message"]["text"] == streamed.strip() == "Hold the reset button for 10 seconds [1]."
    )
    cites = done["message"]["citations"]
    assert cites and cites[0]["title"] == "Router guide"
    assert cites[0]["url"].startswith("/kb/")
    assert done["reply_to"] == frames[0]["message"]["id"]
    bot = await Message.objects.aget(role="bot")
    assert bot.text == done["message"]["text"] and bot.action == "answer"
    await comm.disconnect()


async def test_resume_restores_history_and_idempotent_resend(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    token = (await _hello(comm))["token"]
    await comm.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "c-1"}
    )
    await ws.until(comm, "reply.done")
    await comm.disconnect()

    again = await ws.connect()
    welcome = await _hello(again, token)
    assert welcome["resumed"] is True
    assert [m["role"] for m in welcome["history"]] == ["customer", "bot"]
    # The same client_id after a reconnect: no second message, no second answer.
    await again.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "c-1"}
    )
    await asyncio.sleep(0.5)
    assert await Message.objects.filter(client_id="c-1").acount() == 1
    assert await Message.objects.filter(role="bot").acount() == 1
    assert chat_env.calls == 1
    await again.disconnect()


async def test_forged_or_foreign_token_starts_a_fresh_conversation(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    first = await _hello(comm)
    await comm.send_json_to({"type": "message", "text": "secret order 123", "client_id": "x"})
    await ws.until(comm, "reply.done")
    await comm.disconnect()

    intruder = await ws.connect()
    forged = first["token"][:-4] + ("AAAA" if not first["token"].endswith("AAAA") else "BBBB")
    result = await _hello(intruder, forged)
    assert result["error"]["code"] == "token_invalid"
    welcome = result["welcome"]
    assert welcome["conversation_id"] != first["conversation_id"]
    assert welcome["history"] == [] and welcome["resumed"] is False
    await intruder.disconnect()


async def test_malformed_frames_get_errors_without_closing(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    await comm.send_to(text_data="{not json")
    assert (await comm.receive_json_from())["code"] == "bad_json"
    await comm.send_to(bytes_data=b"\x00\x01")
    assert (await comm.receive_json_from())["code"] == "bad_json"
    await comm.send_json_to({"type": "message", "text": "hi", "client_id": "a"})
    assert (await comm.receive_json_from())["code"] == "not_started"
    await _hello(comm)
    await comm.send_json_to({"type": "launch_missiles"})
    assert (await comm.receive_json_from())["code"] == "unknown_type"
    await comm.send_json_to({"type": "message", "text": 42, "client_id": "a"})
    err = await comm.receive_json_from()
    assert err["code"] == "bad_frame" and "text" in err["message"]
    await comm.send_json_to(["not", "an", "object"])
    assert (await comm.receive_json_from())["code"] == "bad_frame"
    await comm.send_json_to({"type": "message", "text": "a\x00b", "client_id": "n"})
    assert (await comm.receive_json_from())["code"] == "bad_frame"
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"  # still open and serving
    assert await Message.objects.acount() == 0
    await comm.disconnect()


async def test_oversize_message_and_frame_are_refused(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    await _hello(comm)
    await comm.send_json_to({"type": "message", "text": "x" * 2001, "client_id": "big"})
    err = await comm.receive_json_from()
    assert err["code"] == "message_too_long" and "2000" in err["message"]
    await comm.send_to(text_data=json.dumps({"type": "ping", "pad": "y" * 20000}))
    assert (await comm.receive_json_from())["code"] == "frame_too_large"
    assert await Message.objects.acount() == 0
    await comm.disconnect()


async def test_rate_limit_per_connection(chat_env: FakeChatModel) -> None:
    with override_settings(SUPPORT_RATE_PER_CONNECTION=3, SUPPORT_DEBOUNCE_S=0):
        comm = await ws.connect()
        await _hello(comm)
        for i in range(4):
            await comm.send_json_to(
                {"type": "message", "text": f"question {i}?", "client_id": f"r{i}"}
            )
        limited = None
        for _ in range(40):
            frame = await comm.receive_json_from(timeout=30)
            if frame["type"] == "error":
                limited = frame
                break
        assert limited is not None and limited["code"] == "rate_limited"
        assert limited["retry_after"] > 0
        await comm.disconnect()
    assert await Message.objects.filter(role="customer").acount() == 3


async def test_handoff_queues_and_silences_the_bot(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    await _hello(comm)
    await comm.send_json_to({"type": "handoff"})
    # The status (the consumer's reply) and the queued line (on commit), in either order.
    frames = {f["type"]: f for f in [await comm.receive_json_from() for _ in range(2)]}
    assert frames["message"]["message"]["kind"] == "queued"
    status = frames["status"]
    assert status["status"] == "queued"
    assert status["queue_position"] == 1 and "number 1 in the queue" in status["text"]
    await comm.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "q1"}
    )
    frames = await ws.until(comm, "message")
    assert frames[-1]["message"]["role"] == "customer"
    ack = await comm.receive_json_from()  # acknowledged, not answered
    assert ack["message"]["role"] == "system" and ack["message"]["kind"] == "ack"
    assert await comm.receive_nothing(timeout=1.5)
    assert chat_env.calls == 0
    conv = await Conversation.objects.aget()
    assert conv.status == "queued"
    await comm.disconnect()


async def test_asking_for_a_person_in_words_escalates(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    await _hello(comm)
    await comm.send_json_to(
        {"type": "message", "text": "I want to talk to a real person", "client_id": "h1"}
    )
    frames = await ws.until(comm, "status")
    assert frames[-1]["status"] == "queued"
    assert chat_env.calls == 0
    await comm.disconnect()


async def test_feedback_is_stored_and_acknowledged(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    await _hello(comm)
    await comm.send_json_to(
        {"type": "message", "text": "How do I reset my router?", "client_id": "f1"}
    )
    done = (await ws.until(comm, "reply.done"))[-1]
    bot_id = done["message"]["id"]
    await comm.send_json_to({"type": "feedback", "message_id": bot_id, "value": "up"})
    assert await comm.receive_json_from() == {
        "type": "ack",
        "for": "feedback",
        "message_id": bot_id,
    }
    await comm.send_json_to(
        {"type": "feedback", "message_id": bot_id, "value": "down", "comment": "too short"}
    )
    await comm.receive_json_from()
    fb = await Feedback.objects.aget()
    assert (fb.value, fb.comment) == ("down", "too short")
    customer_id = done["reply_to"]
    await comm.send_json_to({"type": "feedback", "message_id": customer_id, "value": "up"})
    assert (await comm.receive_json_from())["code"] == "not_found"
    await comm.disconnect()


async def test_origin_not_allowed_is_refused() -> None:
    with override_settings(
        ALLOWED_HOSTS=["support.example.com"],
        SUPPORT_ALLOWED_EMBED_ORIGINS=["https://shop.example.com"],
    ):
        bad = WebsocketCommunicator(
            application, "/ws/chat/", headers=[(b"origin", b"https://evil.example.net")]
        )
        connected, _ = await bad.connect(timeout=5)
        assert not connected
        good = WebsocketCommunicator(
            application, "/ws/chat/", headers=[(b"origin", b"https://shop.example.com")]
        )
        connected, _ = await good.connect(timeout=5)
        assert connected
        await good.disconnect()


async def test_resume_includes_the_answer_still_being_written(chat_env: FakeChatModel) -> None:
    from support.streaming import stream_state_set

    comm = await ws.connect()
    first = await _hello(comm)
    await comm.disconnect()
    from uuid import UUID

    conv_id = UUID(hex=first["conversation_id"])
    await database_sync_to_async(stream_state_set)(
        conversation_id=conv_id, reply_to=7, seq=2, text="Hold the reset"
    )
    again = await ws.connect()
    welcome = await _hello(again, first["token"])
    assert welcome["streaming"] == {"reply_to": 7, "seq": 2, "text": "Hold the reset"}
    await again.disconnect()


async def test_expired_token_gets_a_fresh_conversation(chat_env: FakeChatModel) -> None:
    comm = await ws.connect()
    first = await _hello(comm)
    await comm.disconnect()
    with override_settings(SUPPORT_TOKEN_MAX_AGE_S=1):
        await asyncio.sleep(2.1)
        again = await ws.connect()
        result = await _hello(again, first["token"])
        assert result["error"]["code"] == "token_invalid"
        assert "expired" in result["error"]["message"]
        assert result["welcome"]["conversation_id"] != first["conversation_id"]
        await again.disconnect()


async def test_rate_limit_per_ip_across_connections(chat_env: FakeChatModel) -> None:
    with override_settings(SUPPORT_RATE_PER_IP=2, SUPPORT_RATE_PER_CONNECTION=100):
        ip = f"192.0.2.{secrets.randbelow(250)}"
        a, b = await ws.connect(client_ip=ip), await ws.connect(client_ip=ip)
        await _hello(a)
        await _hello(b)
        await a.send_json_to({"type": "message", "text": "first?", "client_id": "a1"})
        await ws.until(a, "message")
        await b.send_json_to({"type": "message", "text": "second?", "client_id": "b1"})
        await ws.until(b, "message")
        await b.send_json_to({"type": "message", "text": "third?", "client_id": "b2"})
        frames = await ws.until(b, "error")
        assert frames[-1]["code"] == "rate_limited" and frames[-1]["client_id"] == "b2"
        await a.disconnect()
        await b.disconnect()
