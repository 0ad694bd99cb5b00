"""Messages sent while the conversation waits in the queue are acknowledged, once per run."""

from __future__ import annotations

from typing import Any

import pytest

from support import conversations, events
from support.handoff import agents
from support.handoff.escalation import CUSTOMER_REQUEST, conversation_escalate
from support.handoff.transcript import ACK_TEXT
from support.models import Conversation, Message
from tests.factories import agent_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_answers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The answers message_post queues (message ids), none generated."""
    queued: list[int] = []
    monkeypatch.setattr(conversations, "_queue_answer", queued.append)
    return queued


@pytest.fixture
def queued_conv() -> Conversation:
    conv = conversations.conversation_start()
    conversation_escalate(conversation_id=conv.pk, reasons=(CUSTOMER_REQUEST,))
    return conv


def say(conv: Conversation, text: str, client_id: str | None = None) -> Message:
    return conversations.message_post(
        conversation_id=conv.pk, text=text, client_id=client_id or text[:60]
    ).message


def transcript(conv: Conversation) -> list[str]:
    """The visible transcript: the texts of people, and the system lines by kind."""
    rows = conv.messages.filter(internal=False).order_by("pk")
    return [f"<{m.reason}>" if m.role == Message.Role.SYSTEM else m.text for m in rows]


def test_one_ack_per_run_of_queued_messages(
    queued_conv: Conversation, no_answers: list[int]
) -> None:
    conv = queued_conv
    say(conv, "Hello?")
    say(conv, "My router blinks orange")
    say(conv, "Since this morning")
    assert transcript(conv) == [
        "<queued>",
        "Hello?",
        "<ack>",
        "My router blinks orange",
        "Since this morning",
    ]
    assert conv.messages.get(reason="ack").text == ACK_TEXT
    assert no_answers == []  # the bot answers none of them


def test_a_line_in_between_starts_a_new_run(
    queued_conv: Conversation, no_answers: list[int]
) -> None:
    conv = queued_conv
    agent = agent_user(username="alex", first_name="Alex")
    say(conv, "Hello?")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    say(conv, "Hi Alex")  # with a person: not acknowledged, the agent sees it
    agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="One moment please.")
    agents.escalation_release(conversation_id=conv.pk, agent=agent)  # back in the queue
    say(conv, "Are you still there?")
    say(conv, "Hello?", client_id="again")
    assert transcript(conv) == [
        "<queued>",
        "Hello?",
        "<ack>",
        "<claimed>",
        "Hi Alex",
        "One moment please.",
        "Are you still there?",
        "<ack>",
        "Hello?",
    ]
    assert no_answers == []


def test_a_resent_message_is_not_acknowledged_again(queued_conv: Conversation) -> None:
    conv = queued_conv
    first = say(conv, "Hello?", client_id="c1")
    again = conversations.message_post(conversation_id=conv.pk, text="Hello?", client_id="c1")
    assert not again.created and again.message.pk == first.pk
    assert conv.messages.filter(reason="ack").count() == 1


def test_a_bot_conversation_gets_no_ack(no_answers: list[int]) -> None:
    conv = conversations.conversation_start()
    msg = say(conv, "How do I reset my router?")
    assert not conv.messages.filter(role=Message.Role.SYSTEM).exists()
    assert no_answers == [msg.pk]


def test_the_ack_is_sent_after_the_message_on_commit(
    queued_conv: Conversation,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(events, "group_send", lambda g, e: sent.append((g, e)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        say(queued_conv, "Hello?")
        assert sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    group = events.conversation_group(queued_conv.pk)
    frames = [
        e["payload"]["message"] for g, e in sent if g == group and e["type"] == "message.created"
    ]
    assert [(m["role"], m["kind"]) for m in frames] == [("customer", None), ("system", "ack")]
    # The agents see it too.
    to_agents = [e["payload"]["message"]["kind"] for g, e in sent if g == events.AGENTS_GROUP]
    assert "ack" in to_agents
