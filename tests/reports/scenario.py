"""Hand-built conversations with known figures (the expected values are in test_measures.py).

All times are UTC. Day D is 2026-03-10; "now" is 2026-03-25 12:00, so every 24-hour and
7-day window of day D has closed. In Europe/Berlin (UTC+1 in March) 22:50 UTC is 23:50 and
23:10 UTC is 00:10 of the next day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from support.handoff.escalation_rules.state import LineKind
from support.models import Conversation, Escalation, Feedback, Message
from tests.factories import agent_user

D = date(2026, 3, 10)
NOW = datetime(2026, 3, 25, 12, 0, tzinfo=UTC)


def at(day: int, hh: int, mm: int, ss: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hh, mm, ss, tzinfo=UTC)


@dataclass
class Builder:
    """Writes rows with the timestamps given (auto_now_add is overwritten after create)."""

    conversations: dict[str, Conversation] = field(default_factory=dict)

    def conversation(self, name: str, created: datetime, **fields: Any) -> Conversation:
        conv = Conversation.objects.create(**fields)
        Conversation.objects.filter(pk=conv.pk).update(created_at=created)
        conv.refresh_from_db()
        self.conversations[name] = conv
        return conv

    def message(
        self, conv: Conversation, role: str, when: datetime, text: str = "...", **fields: Any
    ) -> Message:
        msg = Message.objects.create(conversation=conv, role=role, text=text, **fields)
        Message.objects.filter(pk=msg.pk).update(created_at=when)
        msg.refresh_from_db()
        return msg

    def customer(self, conv: Conversation, when: datetime, text: str = "A question?") -> Message:
        return self.message(conv, Message.Role.CUSTOMER, when, text)

    def answer(
        self,
        conv: Conversation,
        question: Message,
        when: datetime,
        *,
        action: str = Message.Action.ANSWER,
        reason: str = "grounded",
        ttft_ms: float | None = None,
        total_ms: float | None = None,
        cpu_ms: float | None = None,
        feedback: str | None = None,
    ) -> Message:
        timings: dict[str, float] = {}
        if ttft_ms is not None:
            timings["ttft_ms"] = ttft_ms
        if total_ms is not None:
            timings["total_ms"] = total_ms
        reply = self.message(
            conv,
            Message.Role.BOT,
            when,
            "An answer.",
            in_reply_to=question,
            action=action,
            reason=reason,
            timings=timings,
            trace={"cpu_ms": cpu_ms} if cpu_ms is not None else {},
        )
        if feedback is not None:
            Feedback.objects.create(message=reply, value=feedback)
        return reply

    def escalation(
        self,
        conv: Conversation,
        when: datetime,
        reasons: list[str],
        *,
        claimed_by: Any = None,
        claimed_at: datetime | None = None,
        state: str | None = None,
    ) -> Escalation:
        esc = Escalation.objects.create(conversation=conv, reasons=reasons)
        if state is None:
            state = Escalation.State.CLAIMED if claimed_by else Escalation.State.OPEN
        Escalation.objects.filter(pk=esc.pk).update(
            created_at=when, claimed_by=claimed_by, claimed_at=claimed_at, state=state
        )
        self.message(conv, Message.Role.SYSTEM, when, "queued", reason=LineKind.QUEUED)
        if claimed_by is not None and claimed_at is not None:
            self.message(
                conv,
                Message.Role.SYSTEM,
                claimed_at,
                "claimed",
                reason=LineKind.CLAIMED,
                author=claimed_by,
            )
        esc.refresh_from_db()
        return esc


def build_day() -> dict[str, Any]:
    """The conversations of day D (see test_measures.py for what each one stands for)."""
    b = Builder()
    agent = agent_user(username="sam", first_name="Sam")
    # c1: answered, thumbs up: a confirmed bot resolution (durable).
    c1 = b.conversation("c1", at(10, 9, 59), channel=Conversation.Channel.WIDGET)
    q = b.customer(c1, at(10, 10, 0))
    b.answer(c1, q, at(10, 10, 0, 5), ttft_ms=600, total_ms=1500, cpu_ms=2000, feedback="up")
    # c2: answered, the customer left: assumed; the same address came back two days later.
    c2 = b.conversation("c2", at(10, 11, 0), customer_email="back@example.com")
    q = b.customer(c2, at(10, 11, 0))
    b.answer(c2, q, at(10, 11, 0, 3), ttft_ms=400, total_ms=1000, cpu_ms=1000)
    c7 = b.conversation("c7", at(12, 9, 0), customer_email="back@example.com")
    b.customer(c7, at(12, 9, 0))
    # c3: a decline, a request for a person, claimed, answered, resolved by the agent, rated 5.
    c3 = b.conversation("c3", at(10, 12, 0))
    q = b.customer(c3, at(10, 12, 0))
    b.answer(
        c3, q, at(10, 12, 0, 2), action=Message.Action.ESCALATE, reason="low_confidence",
        total_ms=300, cpu_ms=500,
    )  # fmt: skip
    ask = b.customer(c3, at(10, 12, 1), "A person please")
    b.escalation(
        c3, at(10, 12, 1), ["customer_request", "low_confidence"],
        claimed_by=agent, claimed_at=at(10, 12, 5), state=Escalation.State.RESOLVED,
    )  # fmt: skip
    b.message(c3, Message.Role.AGENT, at(10, 12, 7), "Hello, I can help.", author=agent)
    b.message(c3, Message.Role.AGENT, at(10, 12, 8), "note", author=agent, internal=True)
    b.message(c3, Message.Role.SYSTEM, at(10, 12, 30), "ended", reason=LineKind.ENDED, author=agent)
    Conversation.objects.filter(pk=c3.pk).update(
        status=Conversation.Status.RESOLVED,
        resolved_at=at(10, 12, 30),
        rating=5,
        rated_at=at(10, 12, 31),
    )
    # c4: answered, thumbs down: not resolved.
    c4 = b.conversation("c4", at(10, 13, 0))
    q = b.customer(c4, at(10, 13, 0))
    b.answer(c4, q, at(10, 13, 0, 4), ttft_ms=800, total_ms=2000, cpu_ms=3000, feedback="down")
    # c5 (API): answered, the customer came back 25 hours later (reopened) and got an answer.
    c5 = b.conversation("c5", at(10, 14, 0), channel=Conversation.Channel.API)
    q = b.customer(c5, at(10, 14, 0))
    b.answer(c5, q, at(10, 14, 0, 2))
    q = b.customer(c5, at(11, 15, 0))
    b.answer(c5, q, at(11, 15, 0, 3))
    # c6: the widget was opened, nothing asked.
    b.conversation("c6", at(10, 9, 0))
    # c8: asked at 22:50 UTC (23:50 in Berlin), answered at 23:10 UTC (00:10 in Berlin).
    c8 = b.conversation("c8", at(10, 22, 50))
    q = b.customer(c8, at(10, 22, 50))
    b.answer(c8, q, at(10, 23, 10))
    # c9: asked, no reply at all.
    c9 = b.conversation("c9", at(10, 16, 0))
    b.customer(c9, at(10, 16, 0))
    del ask
    return {"agent": agent, **b.conversations}
