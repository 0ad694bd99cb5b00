"""Every customer message gets an outcome: the watchdog re-queues a lost answer once, then
apologises and hands the conversation to a person. Beat, the embedded thread and the
`outcomes_check` command all run the same service."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.utils import timezone

from support import outcomes, replies
from support.answered import message_awaits_outcome, messages_awaiting_outcome, next_question_id
from support.conversations import conversation_start
from support.embedded import OutcomeWatchdog
from support.handoff.transcript import QUEUED_TEXT
from support.models import Conversation, Escalation, Message
from tests import ws
from tests.factories import UserFactory

from .conftest import ChatEnv, Queued, Sent

DEADLINE = timedelta(seconds=90)


def _later(seconds: float) -> Any:
    return timezone.now() + timedelta(seconds=seconds)


def _ask(conv: Conversation, text: str = "How do I reset my router?") -> Message:
    n = Message.objects.filter(conversation=conv).count()
    return Message.objects.create(conversation=conv, role="customer", text=text, client_id=f"c{n}")


def _say(conv: Conversation, role: str, text: str = "...", **fields: Any) -> Message:
    return Message.objects.create(conversation=conv, role=role, text=text, **fields)


def _awaiting_ids() -> set[int]:
    since = timezone.now() - timedelta(hours=1)
    return set(messages_awaiting_outcome(sent_after=since).values_list("pk", flat=True))


# --- which messages wait for an outcome ---------------------------------------------------------
@pytest.mark.django_db
def test_which_customer_messages_still_wait_for_an_outcome() -> None:
    waiting, settled = [], []
    answered = conversation_start()
    q = _ask(answered)
    _say(answered, "bot", in_reply_to=q, action="answer")
    settled.append(q)

    burst = conversation_start()  # two quick messages: only the newest waits (it answers both)
    settled.append(_ask(burst, "my router"))
    waiting.append(_ask(burst, "how do I reset it?"))

    crossed = conversation_start()  # the answer to q1 was stored after q2 arrived
    q1 = _ask(crossed)
    q2 = _ask(crossed, "And the error ERR-4032?")
    _say(crossed, "bot", in_reply_to=q1, action="answer")
    settled.append(q1)
    waiting.append(q2)

    person = conversation_start()  # an agent replied, then handed back to the bot
    settled.append(_ask(person))
    _say(person, "agent", "Done, anything else?")

    queued = conversation_start()  # escalated: a person is responsible now
    settled.append(_ask(queued, "I want a human"))
    Escalation.objects.create(conversation=queued, reasons=["customer_request"])
    Conversation.objects.filter(pk=queued.pk).update(status=Conversation.Status.QUEUED)

    handed_back = conversation_start()  # escalated after the message, handed back unanswered
    settled.append(_ask(handed_back))
    Escalation.objects.create(
        conversation=handed_back, reasons=["customer_request"], state="handed_back"
    )

    noted = conversation_start()  # an internal agent note is no answer for the customer
    q = _ask(noted)
    _say(noted, "agent", "note to self", internal=True, author=UserFactory())
    waiting.append(q)

    assert _awaiting_ids() == {m.pk for m in waiting}
    for m in waiting:
        assert message_awaits_outcome(message_id=m.pk), m.text
    for m in settled:
        assert not message_awaits_outcome(message_id=m.pk), m.text
    # The crossed conversation's next answer is for q2 alone; q1's exchange is history.
    burst_q2 = replies.burst_collect(conversation=crossed, message=q2)
    assert burst_q2 is not None and burst_q2.question == "And the error ERR-4032?"
    assert [t.role for t in burst_q2.history] == ["customer", "bot"]
    assert next_question_id(conversation_id=crossed.pk) == q2.pk
    assert next_question_id(conversation_id=answered.pk) is None


# --- re-queue once, then apologise and escalate -------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_lost_answer_is_requeued_once_then_apologised_for_and_escalated(
    env: ChatEnv, lost_tasks: Queued, sent: Sent
) -> None:
    conv = conversation_start()
    q = _ask(conv)

    assert outcomes.outcomes_check() == outcomes.OutcomesReport((), (), 1)  # within the deadline
    report = outcomes.outcomes_check(now=_later(91))
    assert report.requeued == (q.pk,) and report.escalated == ()
    assert lost_tasks.message_ids == [q.pk]
    q.refresh_from_db()
    assert q.requeued_at is not None
    # Re-queued once only, however often the watchdog runs.
    assert outcomes.outcomes_check(now=_later(120)).requeued == ()
    assert lost_tasks.message_ids == [q.pk]

    report = outcomes.outcomes_check(now=_later(91 + 91))
    assert report.escalated == (q.pk,)
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
    escalation = conv.escalations.get()
    assert escalation.reasons == ["no_answer"] and escalation.trigger_message_id == q.pk
    notice = conv.messages.get(role=Message.Role.SYSTEM, reason="notice")
    assert notice.text == outcomes.APOLOGY_TEXT
    lines = [f["message"]["text"] for f in sent.frames("message")]  # to the customer, agents
    assert list(dict.fromkeys(lines))[-2:] == [outcomes.APOLOGY_TEXT, QUEUED_TEXT]
    assert sent.frames("status")[-1]["status"] == "queued"
    # Settled now: nothing more happens.
    assert outcomes.outcomes_check(now=_later(600)) == outcomes.OutcomesReport((), (), 0)
    assert conv.messages.filter(role=Message.Role.SYSTEM).count() == 2  # the apology, queued


@pytest.mark.django_db(transaction=True)
def test_a_requeued_answer_is_written(env: ChatEnv) -> None:
    conv = conversation_start()
    q = _ask(conv)  # stored, but its answer task never reached a worker
    assert outcomes.outcomes_check(now=_later(91)).requeued == (q.pk,)
    reply = conv.messages.get(role=Message.Role.BOT)
    assert reply.in_reply_to_id == q.pk
    assert outcomes.outcomes_check(now=_later(300)) == outcomes.OutcomesReport((), (), 0)
    assert not conv.escalations.exists()


@pytest.mark.django_db(transaction=True)
def test_an_answer_stored_meanwhile_is_not_escalated(env: ChatEnv, lost_tasks: Queued) -> None:
    conv = conversation_start()
    q = _ask(conv)
    outcomes.outcomes_check(now=_later(91))
    _say(conv, "bot", in_reply_to=q, action="answer")  # the slow worker made it after all
    assert outcomes.outcomes_check(now=_later(300)).escalated == ()
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.BOT


@pytest.mark.django_db(transaction=True)
def test_dry_run_changes_nothing(env: ChatEnv, lost_tasks: Queued) -> None:
    conv = conversation_start()
    q = _ask(conv)
    report = outcomes.outcomes_check(now=_later(91), dry_run=True)
    assert report.requeued == (q.pk,)
    q.refresh_from_db()
    assert q.requeued_at is None and lost_tasks.message_ids == []


# --- end to end over the socket ------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_a_customer_whose_answer_task_was_lost_still_gets_the_answer(
    env: ChatEnv, first_task_lost: Queued
) -> None:
    comm = await ws.connect()
    await ws.hello(comm)
    await ws.ask(comm)
    await ws.until(comm, "message")
    assert await comm.receive_nothing(timeout=0.5)  # the task is gone: silence...
    await database_sync_to_async(outcomes.outcomes_check)(now=_later(91))
    done = (await ws.until(comm, "reply.done"))[-1]  # ...until the watchdog re-queues it
    assert done["message"]["text"] == "Hold the reset button for 10 seconds [1]."
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_customer_is_never_left_waiting_in_silence(
    env: ChatEnv, lost_tasks: Queued
) -> None:
    comm = await ws.connect()
    await ws.hello(comm)
    await ws.ask(comm)
    await ws.until(comm, "message")
    await database_sync_to_async(outcomes.outcomes_check)(now=_later(91))
    await database_sync_to_async(outcomes.outcomes_check)(now=_later(182))
    frames = await ws.until(comm, "status")
    notices = [f["message"] for f in frames if f["type"] == "message"]
    assert [(m["role"], m["kind"], m["text"]) for m in notices] == [
        ("system", "notice", outcomes.APOLOGY_TEXT),
        ("system", "queued", QUEUED_TEXT),
    ]
    assert frames[-1]["status"] == "queued"
    await comm.disconnect()


# --- the adapters: command, embedded thread ----------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_outcomes_check_command(env: ChatEnv, lost_tasks: Queued) -> None:
    conv = conversation_start()
    q = _ask(conv)
    Message.objects.filter(pk=q.pk).update(created_at=timezone.now() - timedelta(seconds=100))
    out = io.StringIO()
    call_command("outcomes_check", "--dry-run", stdout=out)
    assert out.getvalue().strip() == (
        f"would re-queue 1 (messages {q.pk}), would escalate 0, 0 waiting within the deadline"
    )
    out = io.StringIO()
    call_command("outcomes_check", "--json", stdout=out)
    assert json.loads(out.getvalue()) == {
        "requeued": [q.pk],
        "escalated": [],
        "waiting": 0,
        "dry_run": False,
    }
    out = io.StringIO()
    call_command("outcomes_check", "--requeue-deadline", "0", "--json", stdout=out)
    assert json.loads(out.getvalue())["escalated"] == [q.pk]
    assert lost_tasks.message_ids == [q.pk]


@pytest.mark.django_db(transaction=True)
def test_the_embedded_mode_runs_the_watchdog_in_a_thread(env: ChatEnv, lost_tasks: Queued) -> None:
    conv = conversation_start()
    q = _ask(conv)
    Message.objects.filter(pk=q.pk).update(created_at=timezone.now() - timedelta(seconds=100))
    watchdog = OutcomeWatchdog(interval_s=0.05)
    watchdog.start()
    try:
        deadline = time.monotonic() + 10
        while watchdog.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watchdog.stop()
    assert watchdog.runs >= 2
    assert lost_tasks.message_ids == [q.pk]


def test_the_embedded_worker_starts_and_stops_its_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from chatbot.celery import app
    from support import embedded

    class FakeController:  # the Celery WorkController is not under test here
        def __init__(self, **kwargs: Any) -> None:
            self.ready = threading.Event()
            self.ready.set()

        def start(self) -> None:
            pass

    monkeypatch.setattr(embedded, "_ReadyWorkController", FakeController)
    worker = embedded.EmbeddedWorker(app)
    assert worker.watchdog._interval() == 30.0  # SUPPORT_OUTCOME_CHECK_INTERVAL_S
    assert not embedded.serving_here()
    worker.start()
    try:
        assert worker.watchdog._thread is not None and worker.watchdog._thread.is_alive()
        assert worker._beat is not None and worker._beat.is_alive()  # the rest of beat's jobs
        assert embedded.serving_here()  # training runs go to a child process meanwhile
    finally:
        beat = worker._beat
        worker.stop()
    assert worker.watchdog._thread is None
    assert not beat.is_alive() and not embedded.serving_here()


def test_the_embedded_beat_runs_the_jobs_the_watchdog_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from celery.beat import PersistentScheduler

    from chatbot.celery import app
    from support import embedded

    jobs = embedded.EmbeddedWorker(app).beat_jobs()
    assert {"support.report_rollup", "support.specialise_nightly", "support.gaps_nightly"} <= set(
        jobs
    )
    assert not embedded.WATCHDOG_JOBS & set(jobs)
    # Every job of the schedule runs somewhere: the watchdog thread or the embedded beat.
    assert set(jobs) | embedded.WATCHDOG_JOBS == set(app.conf.beat_schedule)
    # What the scheduler takes from CELERY_BEAT_SCHEDULE: the beat jobs only.
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(PersistentScheduler, "merge_inplace", lambda self, b: seen.append(b))
    scheduler = object.__new__(embedded.EmbeddedScheduler)  # no schedule file: the merge alone
    scheduler.merge_inplace(dict(app.conf.beat_schedule))
    assert set(seen[0]) == set(jobs)
