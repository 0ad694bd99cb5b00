"""Bounded load on loopback (issue #8, item 10).

200 idle sockets (hello, then quiet) stay open while 20 customers chat: three rounds, one
question each per round. In the second round, right after the questions are sent, every one of
the 220 sockets drops at once (no close handshake) and comes back with its resume token: a
reconnect storm. Asserted: every question has exactly one stored outcome and its customer saw
that one (zero lost, zero duplicated answers), every idle socket resumed its own conversation
and answers a ping. Reported, never asserted: time to first delta (p50/p95) and the storm's
duration; with `-s` they are also written to bench/results/fault_load-<timestamp>.json.

Every loop is bounded in count and time: a round stops after ROUND_TIMEOUT_S, the test after a
few minutes at most.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.fault.harness import (
    LONG_QUESTIONS,
    REPO,
    SHORT_QUESTIONS,
    Customer,
    Question,
    Stack,
    gather_bounded,
    missing_services,
    outcome_problems,
)

pytestmark = [
    pytest.mark.load,
    pytest.mark.skipif(missing_services() is not None, reason=str(missing_services())),
]

IDLE_SOCKETS = 200
CHATTING = 20
ROUNDS = 3
STORM_ROUND = 1  # 0-based: the storm hits while the second round's answers are being written
OPEN_PARALLEL = 25  # handshakes in flight while the idle sockets open (the storm has no limit)
OPEN_TIMEOUT_S = 120
ROUND_TIMEOUT_S = 120
STORM_TIMEOUT_S = 120
# Quick answers (about 0.5 s each) and two worker threads, so 20 questions take seconds; the
# watchdog's deadline is far above a queued answer's wait, so it never fires under load.
WORKER_ENV = {
    "FAKE_CHAT_DELAY_S": "0.02",
    "SUPPORT_OUTCOME_DEADLINE_S": "120",
    "SUPPORT_OUTCOME_REQUEUE_DEADLINE_S": "120",
}
QUESTIONS = LONG_QUESTIONS + SHORT_QUESTIONS


def percentile(values: list[float], p: float) -> float | None:
    xs = sorted(values)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


async def open_idle(stack: Stack, count: int) -> list[Customer]:
    sem = asyncio.Semaphore(OPEN_PARALLEL)
    deadline = time.monotonic() + OPEN_TIMEOUT_S

    async def one(i: int) -> Customer:
        customer = Customer(stack, f"idle-{i}")
        async with sem:
            await customer.ensure_connected(deadline)
        return customer

    results = await gather_bounded((one(i) for i in range(count)), OPEN_TIMEOUT_S + 10)
    return [c for c in results if isinstance(c, Customer)]


async def storm(customers: list[Customer]) -> float:
    """Every socket drops at once, then every customer reconnects at once; seconds taken."""
    started = time.monotonic()
    await asyncio.gather(*(c.drop() for c in customers))
    deadline = time.monotonic() + STORM_TIMEOUT_S
    await gather_bounded((c.ensure_connected(deadline) for c in customers), STORM_TIMEOUT_S + 10)
    return time.monotonic() - started


async def test_idle_sockets_chatting_customers_and_a_reconnect_storm(
    live: Stack, request: pytest.FixtureRequest
) -> None:
    await asyncio.to_thread(live.restart_worker, concurrency=2, env=WORKER_ENV)
    started = time.monotonic()

    idle = await open_idle(live, IDLE_SOCKETS)
    assert len(idle) == IDLE_SOCKETS
    not_open = [c.name for c in idle if c.ws is None]
    assert not not_open, f"{len(not_open)} idle sockets did not open\n{live.logs()}"
    idle_conversations = {c.name: c.conversation_id for c in idle}
    opened_s = time.monotonic() - started

    chatters = [Customer(live, f"chat-{i}") for i in range(CHATTING)]
    for c in chatters:
        await c.connect()

    storm_s: float | None = None
    round_s: list[float] = []
    for r in range(ROUNDS):
        round_started = time.monotonic()
        asked: list[Question] = []
        for i, c in enumerate(chatters):
            asked.append(await c.ask(QUESTIONS[(i + r) % len(QUESTIONS)]))
        waits = [c.wait_outcomes(ROUND_TIMEOUT_S) for c in chatters]
        if r == STORM_ROUND:
            # The answers are queued or being written: everyone drops and comes back.
            await asyncio.sleep(0.5)
            storm_s = await storm(idle + chatters)
        await gather_bounded(waits, ROUND_TIMEOUT_S + 10)
        round_s.append(time.monotonic() - round_started)
        missing = [q.text for q in asked if q.outcome is None]
        assert not missing, f"round {r + 1}: {len(missing)} unanswered\n{live.logs()}"

    pings = await gather_bounded((c.ping() for c in idle), 60)
    problems = await asyncio.to_thread(outcome_problems, live, chatters)
    for c in idle:
        if c.conversation_id != idle_conversations[c.name]:
            problems.append(f"{c.name}: resumed {c.conversation_id}, had {idle_conversations}")
        elif not c.welcomes[-1].get("resumed"):
            problems.append(f"{c.name}: its conversation was not resumed after the storm")
    dead = sum(1 for ok in pings if ok is not True)
    if dead:
        problems.append(f"{dead} of {len(idle)} idle sockets did not answer a ping")

    ttfd = [q.ttfd_s for c in chatters for q in c.questions if q.ttfd_s is not None]
    report: dict[str, Any] = {
        "idle_sockets": len(idle),
        "chatting_customers": CHATTING,
        "questions": sum(len(c.questions) for c in chatters),
        "answered": sum(1 for c in chatters for q in c.questions if q.outcome is not None),
        "streamed": len(ttfd),
        "ttfd_p50_s": percentile(ttfd, 50),
        "ttfd_p95_s": percentile(ttfd, 95),
        "idle_open_s": opened_s,
        "round_s": round_s,
        "storm_reconnect_s": storm_s,
        "failed_connects": sum(c.failed_connects for c in idle + chatters),
        "total_s": time.monotonic() - started,
    }
    print("\nload:", json.dumps({k: _round(v) for k, v in report.items()}))
    if request.config.getoption("capture") == "no":
        out = REPO / "bench" / "results"
        out.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = out / f"fault_load-{stamp}.json"
        path.write_text(json.dumps({k: _round(v) for k, v in report.items()}, indent=2) + "\n")
        print(f"load: wrote {path}")

    await asyncio.gather(*(c.close() for c in idle + chatters))
    assert not problems, "\n".join(problems[:40]) + "\n" + live.logs()


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [_round(v) for v in value]
    return value
