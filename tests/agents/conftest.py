"""Fixtures for the agent workspace: agents, queued conversations, recorded group events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support import conversations, events
from support.handoff.escalation import CUSTOMER_REQUEST, conversation_escalate
from support.models import Conversation
from tests.chat.conftest import chat_env  # noqa: F401  (fixture)
from tests.factories import UserFactory, agent_user, knowledge_admin_user
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)


class SentEvents:
    """Every channel-layer event the code under test sends (after commit), in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def to(self, group: str) -> list[dict[str, Any]]:
        return [e for g, e in self.sent if g == group]

    def frames(self, group: str, kind: str) -> list[dict[str, Any]]:
        return [e["payload"] for e in self.to(group) if e["payload"].get("type") == kind]

    def clear(self) -> None:
        self.sent.clear()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> SentEvents:
    recorder = SentEvents()
    real = events.group_send

    def record(group: str, event: dict[str, Any]) -> None:
        recorder.sent.append((group, event))
        real(group, event)

    monkeypatch.setattr(events, "group_send", record)
    return recorder


@pytest.fixture
def agent() -> Any:
    return agent_user(username="alex", first_name="Alex")


@pytest.fixture
def other_agent() -> Any:
    return agent_user(username="sam", first_name="Sam")


@pytest.fixture
def knowledge_admin() -> Any:
    return knowledge_admin_user(username="kim")


@pytest.fixture
def plain_staff() -> Any:
    return UserFactory(username="pat")


QueuedFactory = Callable[..., Conversation]


def make_queued(
    question: str = "My invoice shows the wrong amount", name: str = "Jordan", email: str = ""
) -> Conversation:
    """A conversation whose customer asked a question, then for a person."""
    conv = conversations.conversation_start(customer_name=name, customer_email=email)
    msg = conv.messages.create(role="customer", text=question, client_id="q1")
    conversation_escalate(
        conversation_id=conv.pk, reasons=(CUSTOMER_REQUEST,), trigger_message_id=msg.pk
    )
    conv.refresh_from_db()
    return conv


@pytest.fixture
def queued(django_capture_on_commit_callbacks: Any) -> Iterator[QueuedFactory]:
    """make_queued, with the escalation's on-commit events sent."""

    def make(**kwargs: Any) -> Conversation:
        with django_capture_on_commit_callbacks(execute=True):
            return make_queued(**kwargs)

    yield make
