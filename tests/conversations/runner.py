"""Runs a scripted conversation through the real chat path: the websocket consumer, the
services, the (eager) answer task with the real models, and the agent services for people.

Used by tests/conversations/test_conversations.py (CI) and bench/conversations.py (pass
rate in docs/benchmarks.md): one runner, one verdict per turn.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from tests import ws

from .cases import Case, Turn

_CITE = re.compile(r"\s*\[\d{1,2}\]")
# A turn's frames are read until its outcome, then this long for what follows it (a status
# after a decline, say).
SETTLE_S = 1.5
ANSWER_WAIT_S = 240.0


@dataclass
class TurnResult:
    turn: Turn
    outcome: str  # answer / decline / handoff / ack / none
    text: str  # the bot's reply (citation markers removed), "" when none
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class CaseResult:
    case: Case
    turns: list[TurnResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.turns)

    def describe(self) -> str:
        lines = [f"{self.case.name}: {'pass' if self.passed else 'FAIL'}"]
        for t in self.turns:
            said = t.turn.customer or f"<agent {t.turn.agent}>"
            lines.append(f"  {said!r} -> {t.outcome}: {t.text[:160]!r} {'; '.join(t.problems)}")
        return "\n".join(lines)


def _clean(text: str) -> str:
    return " ".join(_CITE.sub("", text).split())


def judge(turn: Turn, outcome: str, text: str) -> list[str]:
    """What is wrong with this outcome for this turn (empty: the turn passes)."""
    problems = []
    if turn.expect and outcome != turn.expect:
        problems.append(f"expected {turn.expect}, got {outcome}")
    low = text.lower()
    problems += [f"missing {s!r}" for s in turn.says if s.lower() not in low]
    problems += [f"states {s!r}" for s in turn.never if s.lower() in low]
    return problems


async def _frames(comm: WebsocketCommunicator, *, first_wait: float) -> list[dict[str, Any]]:
    """Frames up to the outcome of a turn, and those arriving just after it."""
    frames: list[dict[str, Any]] = []
    wait = first_wait
    while True:
        # receive_nothing waits without cancelling the application (a timed-out receive does).
        if await comm.receive_nothing(timeout=wait, interval=0.05):
            return frames
        frames.append(await comm.receive_json_from())
        if _outcome(frames) != "none":
            wait = SETTLE_S


def _outcome(frames: list[dict[str, Any]]) -> str:
    # A message sent while queued is acknowledged by an "ack" line (a queue status may follow).
    for f in frames:
        line = f.get("message") or {}
        if f["type"] == "message" and (line.get("role"), line.get("kind")) == ("system", "ack"):
            return "ack"
    statuses = [f.get("status") for f in frames if f["type"] == "status"]
    if any(s in ("queued", "agent") for s in statuses):
        return "handoff"
    for f in frames:
        if f["type"] == "reply.done":
            return "decline" if (f["message"].get("action") == "escalate") else "answer"
    return "none"


def _reply_text(frames: list[dict[str, Any]]) -> str:
    done = [f["message"]["text"] for f in frames if f["type"] == "reply.done"]
    return _clean(done[-1]) if done else ""


class Conversation:
    """One customer's socket, and the agent who may take the conversation."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.comm: WebsocketCommunicator | None = None
        self.conversation_id: UUID | None = None

    async def open(self) -> None:
        self.comm = await ws.connect()
        welcome = await ws.hello(self.comm)
        self.conversation_id = UUID(hex=welcome["conversation_id"])

    async def close(self) -> None:
        if self.comm is not None:
            await self.comm.disconnect()

    async def customer(
        self, text: str, carried: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The frames after the customer says `text`; with no text, what follows the agent's
        last action (`carried`: the frames that action already brought, such as the answer
        to the latest question after a hand back, written while the action ran)."""
        assert self.comm is not None
        if text:
            cid = secrets.token_hex(6)
            await self.comm.send_json_to({"type": "message", "text": text, "client_id": cid})
            return await _frames(self.comm, first_wait=ANSWER_WAIT_S)
        carried = carried or []
        answered = any(f["type"] == "reply.done" for f in carried)
        wait = SETTLE_S if answered else ANSWER_WAIT_S
        return carried + await _frames(self.comm, first_wait=wait)

    async def act(self, action: str) -> list[dict[str, Any]]:
        from support.handoff import agents

        assert self.comm is not None and self.conversation_id is not None
        cid, agent = self.conversation_id, self.agent
        if action == "claim":
            call = lambda: agents.escalation_claim(conversation_id=cid, agent=agent)  # noqa: E731
        elif action == "hand_back":
            call = lambda: agents.conversation_hand_back(conversation_id=cid, agent=agent)  # noqa: E731
        elif action == "resolve":
            call = lambda: agents.conversation_resolve(conversation_id=cid, agent=agent)  # noqa: E731
        elif action.startswith("reply:"):
            text = action.removeprefix("reply:")
            call = lambda: agents.agent_reply_post(conversation_id=cid, agent=agent, text=text)  # noqa: E731
        else:
            raise ValueError(f"unknown agent action {action!r}")
        await database_sync_to_async(call)()
        return await _frames(self.comm, first_wait=SETTLE_S * 2)


async def case_run(case: Case, agent: Any) -> CaseResult:
    """Play every turn of `case`; a turn that fails does not stop the rest."""
    result = CaseResult(case)
    chat = Conversation(agent)
    await chat.open()
    carried: list[dict[str, Any]] = []
    try:
        for turn in case.turns:
            if turn.agent:
                carried = await chat.act(turn.agent)
                continue
            frames = await chat.customer(turn.customer, carried)
            carried = []
            outcome, text = _outcome(frames), _reply_text(frames)
            result.turns.append(TurnResult(turn, outcome, text, judge(turn, outcome, text)))
    finally:
        await chat.close()
    return result
