"""Abuse limits, each answered with a clear frame: control characters and invalid Unicode,
rates per conversation, sockets per address, one answer at a time per conversation, a ceiling
on questions waiting for the bot; and a database error is a retryable error, not a lost socket."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest
from django.db import OperationalError, connection

from support import answered, conversations, limits, replies
from support.conversations import conversation_start
from support.handoff import escalation
from support.handoff.transcript import QUEUED_TEXT
from support.models import Conversation, Message
from tests import ws

from .conftest import ChatEnv


def _ip() -> str:
    return f"198.51.100.{secrets.randbelow(250)}-{secrets.token_hex(3)}"


# --- what a frame may contain --------------------------------------------------------------------
BAD_TEXTS = {
    "C0 control": "ring \x07 bell",
    "escape": "\x1b[31mred",
    "vertical tab": "a\x0bb",
    "DEL": "a\x7fb",
    "C1 control (NEL)": "a\x85b",
    "C1 control (APC)": "a\x9fb",
    "NUL": "a\x00b",
    "lone surrogate": "broken \ud800 text",
}


@pytest.mark.django_db(transaction=True)
async def test_control_characters_and_invalid_unicode_are_refused_before_storage(
    env: ChatEnv,
) -> None:
    comm = await ws.connect()
    await ws.hello(comm)
    for n, (name, text) in enumerate(BAD_TEXTS.items()):
        await comm.send_json_to({"type": "message", "text": text, "client_id": f"bad-{n}"})
        err = await comm.receive_json_from()
        assert err["type"] == "error" and err["code"] == "bad_frame", name
        assert err["client_id"] == f"bad-{n}" and "'text'" in err["message"], name
    # Other fields too: NUL cannot be stored by PostgreSQL, a lone surrogate by any UTF-8 store.
    await comm.send_json_to({"type": "message", "text": "hi", "client_id": "x\ud800"})
    assert (await comm.receive_json_from())["code"] == "bad_frame"
    await comm.send_json_to({"type": "hello", "name": "Eve\x00"})
    assert (await comm.receive_json_from())["code"] == "bad_frame"
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"  # the socket stays open
    assert await Message.objects.acount() == 0
    # Tabs and line breaks are fine; a CR (alone or before LF) is stored as a line break.
    await comm.send_json_to(
        {"type": "message", "text": "line one\r\nline two\rend\twith tab", "client_id": "ok"}
    )
    echo = (await ws.until(comm, "message"))[-1]["message"]
    assert echo["text"] == "line one\nline two\nend\twith tab"
    await comm.disconnect()


def test_frame_text_problem_names_the_field() -> None:
    assert limits.frame_text_problem({"type": "feedback", "comment": ["ok", {"x": "\x00"}]}) == (
        "'comment' cannot contain NUL characters."
    )
    assert limits.frame_text_problem({"type": "message", "text": "é ✓ 😀"}) is None


# --- rates and sockets ---------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_rate_limit_per_conversation_across_its_sockets(env: ChatEnv) -> None:
    with env.settings(
        SUPPORT_RATE_PER_CONVERSATION=2, SUPPORT_RATE_PER_CONNECTION=100, SUPPORT_RATE_PER_IP=100
    ):
        a = await ws.connect()
        token = (await ws.hello(a))["token"]
        b = await ws.connect()  # the same conversation from another device and address
        await ws.hello(b, token)
        await a.send_json_to({"type": "message", "text": "first?", "client_id": "1"})
        await ws.until(a, "message")
        await b.send_json_to({"type": "message", "text": "second?", "client_id": "2"})
        await ws.until(b, "message")
        await b.send_json_to({"type": "message", "text": "third?", "client_id": "3"})
        err = (await ws.until(b, "error"))[-1]
        assert err["code"] == "rate_limited" and err["client_id"] == "3"
        assert 0 < err["retry_after"] <= 60
        await a.disconnect()
        await b.disconnect()
    assert await Message.objects.filter(role="customer").acount() == 2


def test_a_burst_straddling_a_minute_boundary_is_still_limited() -> None:
    # Two messages in the last second of one minute and a third just after it: a fixed
    # per-minute window would let the third (and a whole second limit's worth) through.
    key, base = f"t:{secrets.token_hex(4)}", 6_000_000.0  # base is a whole number of minutes
    hit = lambda t: limits.rate_limit_hit(key=key, limit=2, now=base + t)  # noqa: E731
    assert hit(58.5) is None and hit(59.5) is None
    wait = hit(60.5)
    assert wait is not None and 25 < wait < 35  # 1 + 2 * (1 - x) <= 2 once x >= 0.5 (t = 90)
    # The refused message was not counted: waiting the time given is enough.
    assert hit(60.5 + wait + 0.5) is None
    assert hit(92.0) is not None  # ... and the limit holds after that (1 + 1 + 2 * 0.47)


def test_a_steady_rate_under_the_limit_is_never_refused() -> None:
    key, base = f"t:{secrets.token_hex(4)}", 6_000_000.0
    # 18 a minute, evenly spaced, for five minutes: never refused at limit 20 (the estimate
    # spreads the previous minute evenly, so a rate of exactly the limit can be refused at the
    # turn of a minute).
    assert all(
        limits.rate_limit_hit(key=key, limit=20, now=base + 60 / 18 * i + 0.1) is None
        for i in range(90)
    )
    assert limits.rate_limit_hit(key=key, limit=20, now=base + 300.2) is None


@pytest.mark.django_db(transaction=True)
async def test_open_sockets_per_address_are_capped_and_released(env: ChatEnv) -> None:
    ip = _ip()
    with env.settings(SUPPORT_MAX_CONNECTIONS_PER_IP=2):
        a, b = await ws.connect(ip), await ws.connect(ip)
        c = await ws.connect(ip)
        err = await c.receive_json_from()
        assert err["code"] == "too_many_connections" and "at most 2" in err["message"]
        assert await c.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
        other = await ws.connect()  # another address is not affected
        await ws.hello(other)
        await a.disconnect()  # a closed socket frees its place
        d = await ws.connect(ip)
        await ws.hello(d)
        for comm in (b, d, other):
            await comm.disconnect()
    assert limits.connection_count(ip=ip) == 0


def test_counts_left_by_a_dead_process_age_out_and_live_sockets_renew() -> None:
    from django.test import override_settings

    ip, t0 = _ip(), 1_000_000.0
    window = limits.CONNECTION_BUCKET_S * limits.CONNECTION_BUCKETS
    with override_settings(SUPPORT_MAX_CONNECTIONS_PER_IP=2):
        leaked = [limits.connection_open(ip=ip, now=t0) for _ in range(2)]
        assert all(leaked)  # ...and their process dies: never closed
        assert limits.connection_open(ip=ip, now=t0 + 1) is None
        later = t0 + window
        live = limits.connection_open(ip=ip, now=later)
        assert live is not None and limits.connection_count(ip=ip, now=later) == 1
        # A socket open for longer than the window keeps counting once renewed (on its pings).
        half = later + window / 2
        assert live.renew_due(half)
        renewed = limits.connection_renew(ticket=live, now=half)
        # Without the renewal it would have aged out here; renewed, it counts a window longer.
        assert limits.connection_count(ip=ip, now=later + window) == 1
        assert limits.connection_count(ip=ip, now=half + window - limits.CONNECTION_BUCKET_S) == 1
        limits.connection_close(ticket=renewed)
        assert limits.connection_count(ip=ip, now=half) == 0


# --- one answer at a time per conversation ------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_question_sent_while_one_is_answered_waits_for_that_answer(
    env: ChatEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.fake.delay_s = 0.05
    real = replies.answer_compose
    writing = threading.Event()
    active, most = [0], [0]
    lock = threading.Lock()

    def tracked(**kwargs: Any) -> Any:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        writing.set()
        try:
            return real(**kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(replies, "answer_compose", tracked)
    conv = conversation_start()
    q1 = Message.objects.create(conversation=conv, role="customer", text="How do I reset?")
    results: list[str] = []

    def first() -> None:
        try:
            results.append(replies.reply_generate(message_id=q1.pk))
        finally:
            connection.close()

    worker = threading.Thread(target=first)
    worker.start()
    assert writing.wait(10)
    q2 = Message.objects.create(conversation=conv, role="customer", text="What is ERR-4032?")
    # Its own task finds the first answer still being written and leaves it to that writer.
    assert replies.reply_generate(message_id=q2.pk) == "deferred"
    worker.join(30)
    assert results == ["stored"]
    answers = list(conv.messages.filter(role="bot").order_by("pk"))
    assert [a.in_reply_to_id for a in answers] == [q1.pk, q2.pk]
    assert most[0] == 1
    assert not answered.message_awaits_outcome(message_id=q2.pk)


# --- the global ceiling --------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_beyond_the_queue_ceiling_new_questions_go_to_a_person(env: ChatEnv) -> None:
    busy = await Conversation.objects.acreate()
    await Message.objects.acreate(conversation=busy, role="customer", text="Still waiting?")
    with env.settings(SUPPORT_MAX_PENDING_ANSWERS=1):
        comm = await ws.connect()
        await ws.hello(comm)
        await comm.send_json_to(
            {"type": "message", "text": "How do I reset my router?", "client_id": "c"}
        )
        frames = await ws.until(comm, "status")
        messages = [(f["message"]["role"], f["message"]["text"]) for f in frames if "message" in f]
        assert messages == [
            ("customer", "How do I reset my router?"),
            ("system", escalation.BUSY_TEXT),
            ("system", QUEUED_TEXT),
        ]
        assert frames[-1]["status"] == "queued"
        await comm.disconnect()
    assert env.fake.calls == 0
    conv = await Conversation.objects.exclude(pk=busy.pk).aget()
    assert (await conv.escalations.aget()).reasons == ["busy"]


# --- a database error is a retryable error frame -------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_a_database_error_while_storing_is_a_retryable_error_frame(
    env: ChatEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = conversations.escalation_check
    failures = [OperationalError("terminating connection due to administrator command")]

    def flaky(**kwargs: Any) -> Any:
        if failures:
            raise failures.pop()  # after the message was inserted: the transaction rolls back
        return real(**kwargs)

    monkeypatch.setattr(conversations, "escalation_check", flaky)
    comm = await ws.connect()
    await ws.hello(comm)
    sent = {"type": "message", "text": "How do I reset my router?", "client_id": "c-1"}
    await comm.send_json_to(sent)
    err = await comm.receive_json_from()
    assert err["code"] == "server_error" and err["retryable"] is True
    assert err["client_id"] == "c-1" and err["retry_after"] > 0
    assert await Message.objects.acount() == 0  # nothing half-stored
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from())["type"] == "pong"  # the socket is still open
    await comm.send_json_to(sent)  # the widget resends with the same client_id
    frames = await ws.until(comm, "reply.done")
    assert frames[0]["message"]["client_id"] == "c-1"
    await comm.send_json_to(sent)  # and once more: idempotent
    assert await comm.receive_nothing(timeout=0.5)
    assert await Message.objects.filter(role="customer").acount() == 1
    assert await Message.objects.filter(role="bot").acount() == 1
    await comm.disconnect()
