"""Answers are stored before they are pushed, pushed again when a task is redelivered, and
retried on transient failures; a client that missed pushes re-syncs from the database."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any
from uuid import UUID

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import OperationalError
from django.test import override_settings
from redis.exceptions import ConnectionError as RedisConnectionError

from chatbot.celery import app as celery_app
from support import replies, tasks
from support.answers import types
from support.conversations import conversation_start
from support.exceptions import GenerationUnavailable
from support.models import Conversation, Message
from support.streaming import stream_state_get
from tests import ws
from tests.conftest import REPO_ROOT, RedisServer

from .conftest import ChatEnv, Sent

ANSWER = "Hold the reset button for 10 seconds [1]."


def _question(conv: Conversation, text: str = "How do I reset my router?", n: int = 1) -> Message:
    return Message.objects.create(conversation=conv, role="customer", text=text, client_id=f"q{n}")


# --- stored, then pushed; the final frame is authoritative ---------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_answer_is_stored_before_it_is_pushed_and_done_frame_carries_it_all(
    env: ChatEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import events

    real = events.group_send
    stored_when_pushed: list[bool] = []

    def lossy(group: str, event: dict[str, Any]) -> None:
        kind = event.get("payload", {}).get("type")
        if kind == "reply.delta":
            return  # this client misses every streamed piece
        if kind == "reply.done":
            stored_when_pushed.append(
                Message.objects.filter(pk=event["payload"]["message"]["id"], role="bot").exists()
            )
        real(group, event)

    monkeypatch.setattr(events, "group_send", lossy)
    comm = await ws.connect()
    await ws.hello(comm)
    await ws.ask(comm)
    frames = await ws.until(comm, "reply.done")
    assert not [f for f in frames if f["type"] == "reply.delta"]
    assert frames[-1]["message"]["text"] == ANSWER  # the full answer, without any delta
    assert stored_when_pushed == [True]
    await comm.disconnect()


# --- idempotent answer generation ----------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_redelivered_task_pushes_the_stored_answer_again(env: ChatEnv, sent: Sent) -> None:
    conv = conversation_start()
    q = _question(conv)
    assert tasks.reply_generate_task.apply(kwargs={"message_id": q.pk}).get() == "stored"
    first = sent.frames("reply.done")
    # The broker delivers the same task again (worker lost before the ack).
    assert tasks.reply_generate_task.apply(kwargs={"message_id": q.pk}).get() == "superseded"
    again = sent.frames("reply.done")
    assert len(again) == 2 and again[1]["message"]["id"] == first[0]["message"]["id"]
    assert again[1]["message"]["text"] == ANSWER
    assert Message.objects.filter(conversation=conv, role="bot").count() == 1
    assert env.fake.calls == 1


@pytest.mark.django_db(transaction=True)
def test_losing_the_race_on_one_reply_per_question_pushes_the_winner(
    env: ChatEnv, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv = conversation_start()
    q = _question(conv)
    winner = Message.objects.create(
        conversation=conv, role="bot", text="The first answer.", in_reply_to=q, action="answer"
    )
    real = replies.covering_answer
    calls = iter([None])
    # The pre-check misses the winner (it committed just after): the constraint catches it.
    monkeypatch.setattr(
        replies, "covering_answer", lambda *, message_id: next(calls, real(message_id=message_id))
    )
    draft = types.Draft(ANSWER, "answer", "grounded", (), (), 0.9, 0.9, True, "v1")
    assert replies.reply_store(message_id=q.pk, draft=draft) is None
    assert list(Message.objects.filter(conversation=conv, role="bot")) == [winner]
    assert [f["message"]["id"] for f in sent.frames("reply.done")] == [winner.pk]


# --- retries with backoff for transient failures -------------------------------------------------
@pytest.mark.parametrize(
    "error",
    [
        GenerationUnavailable("model busy"),
        OperationalError("server closed the connection unexpectedly"),
        RedisConnectionError("Connection refused"),
    ],
    ids=["model", "postgres", "redis"],
)
@pytest.mark.django_db(transaction=True)
def test_transient_failures_are_retried_and_answered_once(
    env: ChatEnv, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    real = replies.answer_compose
    failures = [error]

    def flaky(**kwargs: Any) -> types.Draft:
        if failures:
            raise failures.pop()
        return real(**kwargs)

    monkeypatch.setattr(replies, "answer_compose", flaky)
    conv = conversation_start()
    q = _question(conv)
    # throw=False: an eager task re-runs itself on Retry (instead of raising it).
    result = tasks.reply_generate_task.apply(kwargs={"message_id": q.pk}, throw=False)
    assert result.get() == "stored"
    assert not failures
    assert Message.objects.filter(conversation=conv, role="bot").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_repeated_attempt_does_not_stream_again(
    env: ChatEnv, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = replies.answer_compose
    attempts: list[int] = []

    def dies_half_way(**kwargs: Any) -> types.Draft:
        attempts.append(1)
        if len(attempts) == 1:
            kwargs["on_delta"]("Hold the")
            kwargs["on_delta"].flush()
            raise OperationalError("the database went away")
        return real(**kwargs)

    monkeypatch.setattr(replies, "answer_compose", dies_half_way)
    conv = conversation_start()
    q = _question(conv)
    result = tasks.reply_generate_task.apply(kwargs={"message_id": q.pk}, throw=False)
    assert result.get() == "stored"
    deltas = sent.frames("reply.delta")
    # Only the first attempt streamed (seq 0); the retry's text arrives whole in reply.done.
    assert [(d["seq"], d["delta"]) for d in deltas] == [(0, "Hold the")]
    assert sent.frames("reply.done")[0]["message"]["text"] == ANSWER
    assert stream_state_get(conversation_id=conv.pk) is None


# --- Celery settings for crash safety ------------------------------------------------------------
def test_answer_task_is_crash_safe_and_limits_are_consistent() -> None:
    task = tasks.reply_generate_task
    assert task.acks_late and task.reject_on_worker_lost
    assert 0 < task.soft_time_limit < task.time_limit
    assert {GenerationUnavailable, OperationalError, RedisConnectionError} <= set(
        task.autoretry_for
    )
    assert task.max_retries and task.retry_backoff
    conf = celery_app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_routes["support.tasks.reply_generate_task"]["queue"] == "support.generation"
    # A task running (or waiting for its countdown) longer than the visibility timeout would be
    # delivered a second time while the first still runs.
    longest = max(
        (t.time_limit or 0) + (getattr(t, "retry_backoff_max", 0) or 0)
        for name, t in celery_app.tasks.items()
        if name.startswith("support.")
    )
    assert conf.broker_transport_options["visibility_timeout"] > longest
    beat = conf.beat_schedule["support.outcomes_check"]
    assert beat["task"] == "support.tasks.outcomes_check_task"
    assert beat["task"] in celery_app.tasks


def test_postgres_connections_are_health_checked(tmp_path: Any) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['CONN_HEALTH_CHECKS'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="chatbot.settings.test",
        DATABASE_URL="postgres://u:p@127.0.0.1:1/none",
        SUPPORT_DATA_DIR=str(tmp_path),
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert proc.stdout.strip() == "True"


# --- a Redis restart: sockets close, reconnect and re-sync from the database --------------------
@pytest.mark.django_db(transaction=True)
async def test_after_a_redis_restart_a_reconnecting_client_resyncs_from_the_database(
    env: ChatEnv, private_redis: RedisServer
) -> None:
    layers = {
        "default": {
            "BACKEND": "support.channel_layers.RedisChannelLayer",
            "CONFIG": {"hosts": [private_redis.url]},
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        from channels.layers import channel_layers

        channel_layers.backends.clear()
        comm = await ws.connect()
        welcome = await ws.hello(comm)
        await ws.ask(comm)
        await ws.until(comm, "reply.done")

        private_redis.stop()
        # The socket's receive loop loses Redis: the server closes it (the widget reconnects).
        closed = await comm.receive_output(timeout=15)
        assert closed == {"type": "websocket.close", "code": 1012}
        # Meanwhile a message arrives some other way and is answered: no push can reach anyone.
        conv_id = UUID(hex=welcome["conversation_id"])
        conv = await Conversation.objects.aget(pk=conv_id)
        q = await sync_to_async(_question)(conv, "Error ERR-4032?", 2)
        assert await database_sync_to_async(replies.reply_generate)(message_id=q.pk) == "stored"

        private_redis.start()
        channel_layers.backends.clear()
        again = await ws.connect()
        resumed = await ws.hello(again, welcome["token"])
        history = [(m["role"], m["text"]) for m in resumed["history"]]
        stored = [(m.role, m.text) async for m in Message.objects.filter(conversation=conv)]
        assert history == stored
        assert [role for role, _ in history] == ["customer", "bot", "customer", "bot"]
        await again.disconnect()
        channel_layers.backends.clear()
