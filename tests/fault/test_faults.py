"""Faults injected into real processes mid-answer (issue #8, item 9).

Each test asks a question whose (fake, slow) answer takes a few seconds, waits until the answer
is streaming, then breaks one part of the production topology: the Celery worker (SIGKILL, or
SIGSTOP past the watchdog's deadline), Redis (stopped and started again, losing every queued
task as a Redis without persistence does) or PostgreSQL (restarted). A second customer asks
while the part is down. Afterwards:

* every question has exactly one stored outcome (a bot answer, or the watchdog's apology when
  it escalated) and no message is stored twice;
* each customer's client, reconnecting with its resume token like the widget, finds the
  question and its one outcome in the welcome history;
* a new customer is answered normally.

Waits are bounded (a few watchdog deadlines); nothing is timed as a pass criterion.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest

from tests.fault.harness import (
    LONG_QUESTIONS,
    SHORT_QUESTIONS,
    Customer,
    Question,
    Stack,
    history_problems,
    missing_services,
    outcome_kinds,
    outcome_problems,
    reconnected_view,
)

pytestmark = [
    pytest.mark.fault,
    pytest.mark.skipif(missing_services() is not None, reason=str(missing_services())),
]

FIRST_DELTA_TIMEOUT_S = 60


def recovery_timeout(stack: Stack) -> float:
    """Long enough for the watchdog to re-queue (deadline + its period) and, failing that, to
    apologise (re-queue deadline + period), twice over on a loaded 2-core machine: generous,
    since every wait stops as soon as its condition holds."""
    s = stack.settings
    return 2 * (s.outcome_deadline_s + s.requeue_deadline_s + 2 * s.check_interval_s) + 60


async def streaming_question(stack: Stack, name: str, text: str) -> tuple[Customer, Question]:
    customer = Customer(stack, name)
    assert await customer.ensure_connected(time.monotonic() + 60), stack.logs()
    q = await customer.ask(text)
    assert await customer.wait_first_delta(q, FIRST_DELTA_TIMEOUT_S), (
        f"no reply.delta within {FIRST_DELTA_TIMEOUT_S} s\n{stack.logs()}"
    )
    assert q.outcome is None, "the answer finished before the fault could be injected"
    return customer, q


async def supervised(stack: Stack, done: asyncio.Event) -> None:
    """The deployment's restart policy: a process that exited is started again."""
    while not done.is_set():
        restarted = await asyncio.to_thread(stack.supervise)
        if restarted:
            print(f"restarted after exiting: {restarted}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 1)


async def check_recovered(stack: Stack, customers: list[Customer]) -> None:
    """Exactly one outcome each, seen live and after a reconnect; then a new chat works."""
    timeout = recovery_timeout(stack)
    done = asyncio.Event()
    supervisor = asyncio.create_task(supervised(stack, done))
    try:
        await asyncio.gather(*(c.wait_outcomes(timeout) for c in customers))
    finally:
        done.set()
        await supervisor
    print(f"outcomes: {outcome_kinds(customers)}")
    problems = await asyncio.to_thread(outcome_problems, stack, customers)
    for customer in customers:
        welcome = await reconnected_view(customer)
        problems += history_problems(customer, welcome)
    assert not problems, "\n".join(problems) + "\n" + stack.logs()

    newcomer = Customer(stack, "newcomer")
    assert await newcomer.ensure_connected(time.monotonic() + 60), stack.logs()
    q = await newcomer.ask(SHORT_QUESTIONS[0])
    assert await newcomer.wait_outcomes(120), f"a new chat was not answered\n{stack.logs()}"
    assert q.outcome is not None
    assert q.outcome["role"] == "bot"
    assert q.outcome["action"] in ("answer", "extractive"), q.outcome
    assert q.first_delta_at is not None, "the new answer was not streamed"
    for customer in [*customers, newcomer]:
        await customer.close()


async def test_worker_killed_mid_answer(live: Stack) -> None:
    """SIGKILL to the worker while it streams: nothing acknowledges or rejects the task, so
    the watchdog must bring the question back; a question asked while no worker runs waits in
    the queue for the new worker."""
    alice, _ = await streaming_question(live, "alice", LONG_QUESTIONS[0])
    assert live.worker is not None
    live.worker.kill()
    await alice.drop()  # she reloads the page meanwhile

    bob = Customer(live, "bob")
    assert await bob.ensure_connected(time.monotonic() + 60)
    await bob.ask(LONG_QUESTIONS[1])
    await asyncio.sleep(1)
    live.start_worker()
    await asyncio.to_thread(live.wait_worker_ready)

    await check_recovered(live, [alice, bob])


async def test_redis_restarted_mid_answer(live: Stack) -> None:
    """Redis (broker, channel layer, cache) stops while an answer streams and comes back
    empty: queued and unacknowledged tasks are gone, sockets drop. A question sent during the
    outage is stored but its task cannot be queued."""
    alice, _ = await streaming_question(live, "alice", LONG_QUESTIONS[2])
    bob = Customer(live, "bob")
    assert await bob.ensure_connected(time.monotonic() + 60)

    live.redis.stop()
    await bob.ask(SHORT_QUESTIONS[1])
    await asyncio.sleep(3)
    await asyncio.to_thread(live.redis.start)

    await check_recovered(live, [alice, bob])


async def test_postgres_restarted_mid_answer(live: Stack) -> None:
    """PostgreSQL restarts (fast shutdown) while an answer streams, so storing it fails; a
    question sent while the database is down is refused and resent after reconnecting."""
    alice, _ = await streaming_question(live, "alice", LONG_QUESTIONS[3])
    bob = Customer(live, "bob")
    assert await bob.ensure_connected(time.monotonic() + 60)

    await asyncio.to_thread(live.pg.stop, "fast")
    await bob.ask(SHORT_QUESTIONS[2])
    # Pump while it is down: the refused frame drops the socket, and reconnecting fails.
    await bob.pump(lambda: False, 3)
    await asyncio.to_thread(live.pg.start)

    await check_recovered(live, [alice, bob])


async def test_worker_paused_past_the_deadline(live: Stack) -> None:
    """SIGSTOP to the worker mid-answer for longer than the watchdog's deadlines. Beat's
    watchdog task needs a worker and the only one is paused, so the watchdog runs as
    `manage.py outcomes_check` (as cron would): it re-queues the answer, then apologises and
    hands over to a person. When the worker continues, its stale answer is neither stored nor
    sent as a second outcome."""
    alice, q = await streaming_question(live, "alice", LONG_QUESTIONS[4])
    assert live.worker is not None
    live.worker.pause()
    try:
        await alice.pump(lambda: False, live.settings.outcome_deadline_s + 1)
        report = json.loads(await asyncio.to_thread(live.manage, "outcomes_check", "--json"))
        assert report["requeued"], report
        # The re-queued task waits for the paused worker: after the (here shortened) second
        # deadline the watchdog gives up on it.
        await alice.pump(lambda: False, 2)
        report = json.loads(
            await asyncio.to_thread(
                live.manage, "outcomes_check", "--json", "--requeue-deadline", "1"
            )
        )
        assert report["escalated"], report
        await alice.wait_outcomes(30)
    finally:
        live.worker.resume()
    assert q.outcome is not None, f"no outcome while the worker was paused\n{live.logs()}"
    assert q.outcome["role"] == "system", q.outcome
    # The resumed worker would finish its answer within seconds: give it the time to (wrongly)
    # store or send a second outcome.
    await alice.pump(lambda: False, 10)
    # Not asserted: the resumed worker checks the cancel flag before each delta it sends, but a
    # delta checked just before the escalation commits can still arrive after it (a window of
    # microseconds; one late delta was seen in 2 of 3 runs before that check existed).
    print(f"reply.delta frames after the apology: {q.late_deltas}")
    await check_recovered(live, [alice])


async def test_readiness_with_an_idle_chat_socket(live: Stack) -> None:
    """/readyz stays ready while a customer's socket is open and quiet."""
    customer = Customer(live, "idle")
    await customer.connect()
    try:
        status, body = await asyncio.to_thread(live.readyz)
    finally:
        await customer.close()
    assert status == 200, body
