"""The transcript's system lines (queued, claimed, handed back, ended), each posted once when its
change happens, shown to the customer and to agents; and the bot's answer after a hand back."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from support import answered, conversations, events, jobs, replies
from support.handoff import agents
from support.handoff.escalation import CUSTOMER_REQUEST, conversation_escalate
from support.handoff.transcript import ENDED_TEXT, QUEUED_TEXT
from support.models import AgentProfile, Conversation, Message
from support.models_integrations import WebhookEvent
from tests.agents.conftest import QueuedFactory, SentEvents
from tests.fakes import FakeChatModel

pytestmark = pytest.mark.django_db


def lines(conv: Conversation) -> list[tuple[str, str]]:
    """The visible system lines of the conversation: (kind, text), in order."""
    rows = conv.messages.filter(role=Message.Role.SYSTEM, internal=False).order_by("pk")
    return list(rows.values_list("reason", "text"))


def customer_lines(sent: SentEvents, conv: Conversation) -> list[tuple[str, str]]:
    frames = sent.frames(events.conversation_group(conv.pk), "message")
    return [(f["message"]["kind"], f["message"]["text"]) for f in frames if f["message"]["kind"]]


def say(conv: Conversation, text: str, client_id: str) -> Message:
    return conversations.message_post(
        conversation_id=conv.pk, text=text, client_id=client_id
    ).message


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The answers queued (message ids) instead of generated."""
    ids: list[int] = []
    monkeypatch.setattr(
        jobs, "reply_generate_enqueue", lambda *, message_id, countdown=0: ids.append(message_id)
    )
    return ids


# --- one line per change -------------------------------------------------------------------------
def test_each_change_posts_its_line_once(
    queued: QueuedFactory,
    agent: Any,
    other_agent: Any,
    sent: SentEvents,
    enqueued: list[int],
    django_capture_on_commit_callbacks: Any,
) -> None:
    AgentProfile.objects.create(user=agent, display_name="Alex from Support")
    conv = queued()
    assert lines(conv) == [("queued", QUEUED_TEXT)]
    # Escalating a queued conversation again (the customer presses the button twice) adds nothing.
    conversation_escalate(conversation_id=conv.pk, reasons=(CUSTOMER_REQUEST,))
    assert lines(conv) == [("queued", QUEUED_TEXT)]

    with django_capture_on_commit_callbacks(execute=True):
        agents.escalation_claim(conversation_id=conv.pk, agent=agent)
        agents.escalation_claim(conversation_id=conv.pk, agent=agent)  # claiming again: harmless
    claimed = ("claimed", "You're now talking to Alex from Support.")
    assert lines(conv)[1:] == [claimed]
    # Given to another agent: the customer learns the new name.
    with django_capture_on_commit_callbacks(execute=True):
        agents.escalation_assign(conversation_id=conv.pk, agent=agent, to_agent_id=other_agent.pk)
    assert lines(conv)[2:] == [("claimed", "You're now talking to Sam.")]

    with django_capture_on_commit_callbacks(execute=True):
        agents.conversation_hand_back(conversation_id=conv.pk, agent=other_agent)
    assert lines(conv)[3:] == [("handed_back", "Sam handed you back to the assistant.")]

    with django_capture_on_commit_callbacks(execute=True):
        agents.conversation_resolve(conversation_id=conv.pk, agent=other_agent)
        agents.conversation_resolve(conversation_id=conv.pk, agent=other_agent)  # idempotent
    assert lines(conv)[4:] == [("ended", ENDED_TEXT)]

    # Every line reached the customer once, in order, and the agents too.
    assert customer_lines(sent, conv) == lines(conv)
    agent_ids = [f["message"]["id"] for f in sent.frames(events.AGENTS_GROUP, "message")]
    visible = conv.messages.filter(role=Message.Role.SYSTEM, internal=False)
    assert set(visible.exclude(reason="queued").values_list("pk", flat=True)) <= set(agent_ids)
    # Named by display name, never by login; the person who acted is the line's author.
    assert all("alex" not in text and "sam" not in text for _, text in lines(conv))
    ended = visible.get(reason="ended")
    assert ended.author == other_agent


def test_a_release_posts_no_line(queued: QueuedFactory, agent: Any) -> None:
    conv = queued()
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.escalation_release(conversation_id=conv.pk, agent=agent)
    assert [kind for kind, _ in lines(conv)] == ["queued", "claimed"]


def test_resolving_a_bot_conversation_says_it_ended(agent: Any) -> None:
    conv = conversations.conversation_start()
    agents.conversation_resolve(conversation_id=conv.pk, agent=agent)
    assert lines(conv) == [("ended", ENDED_TEXT)]


def test_lines_are_in_the_history_and_the_workspace_but_no_webhook(
    queued: QueuedFactory, agent: Any
) -> None:
    conv = queued()
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    conv.refresh_from_db()
    welcome = conversations.welcome_frame(conv, "token", resumed=True)
    shown = [(m["role"], m["kind"]) for m in welcome["history"]]
    assert shown == [("customer", None), ("system", "queued"), ("system", "claimed")]
    workspace = agents.conversation_workspace_get(conversation_id=conv.pk, agent=agent)
    kinds = [(i.message.reason, i.message.internal) for i in workspace.transcript]
    assert ("queued", False) in kinds and ("claimed", False) in kinds
    # Webhooks report the change (conversation.escalated, .claimed), never the line itself.
    reported = WebhookEvent.objects.filter(conversation_id=conv.pk)
    assert {"conversation.escalated", "conversation.claimed"} <= {e.type for e in reported}
    messages = [e.payload["data"]["message"] for e in reported.filter(type="message.created")]
    assert all(m["role"] != "system" for m in messages)


def test_lines_are_not_answers(queued: QueuedFactory, agent: Any) -> None:
    conv = queued(question="How do I reset my router?")
    question = conv.messages.get(role=Message.Role.CUSTOMER)
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    # The queued and claimed lines came after the question: it is still unanswered...
    assert answered.answered_upto(conversation_id=conv.pk, escalations=False) == 0
    # ... and an agent's reply answers it.
    agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="Hold the reset button.")
    assert answered.answered_upto(conversation_id=conv.pk, escalations=False) == question.pk


# --- after a hand back: the latest unanswered message -------------------------------------------
def test_a_hand_back_answers_only_the_latest_queued_message(
    queued: QueuedFactory, agent: Any, enqueued: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    conv = queued(question="I want to talk to a person")
    older = say(conv, "How do I reset my router?", "q2")
    latest = say(conv, "And what does ERR-4032 mean?", "q3")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        agents.conversation_hand_back(conversation_id=conv.pk, agent=agent)
    assert enqueued == [latest.pk]
    conv.refresh_from_db()
    burst = replies.burst_collect(conversation=conv, message=latest)
    assert burst is not None and burst.question == "And what does ERR-4032 mean?"
    # The older one is settled by the hand back: no separate answer, not part of the question.
    assert replies.burst_collect(conversation=conv, message=older) is None
    assert "reset my router" in " ".join(t.text for t in burst.history)
    # The lines are no history for the model.
    assert all(t.role != "system" for t in burst.history)


def test_a_hand_back_after_the_agent_answered_generates_nothing(
    queued: QueuedFactory, agent: Any, enqueued: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    conv = queued(question="I want to talk to a person")
    say(conv, "How do I reset my router?", "q2")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="Hold the reset button.")
    with django_capture_on_commit_callbacks(execute=True):
        agents.conversation_hand_back(conversation_id=conv.pk, agent=agent)
    assert enqueued == []


def test_a_hand_back_does_not_answer_the_request_for_a_person(
    queued: QueuedFactory, agent: Any, enqueued: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    # The message that was handed over had its outcome (the person); answering it would only
    # hand it over again.
    conv = queued(question="I want to talk to a person")
    with django_capture_on_commit_callbacks(execute=True):
        agents.conversation_hand_back(conversation_id=conv.pk, agent=agent)
    assert enqueued == []


def test_a_message_after_the_hand_back_is_answered_for_itself(
    queued: QueuedFactory, agent: Any, enqueued: list[int]
) -> None:
    conv = queued(question="I want to talk to a person")
    say(conv, "How do I reset my router?", "q2")
    agents.conversation_hand_back(conversation_id=conv.pk, agent=agent)
    later = say(conv, "What does ERR-4032 mean?", "q3")
    conv.refresh_from_db()
    burst = replies.burst_collect(conversation=conv, message=later)
    # The question left from before the hand back is answered with it (one answer for both).
    assert burst is not None
    assert burst.question == "How do I reset my router? What does ERR-4032 mean?"


@pytest.mark.django_db(transaction=True)
def test_after_a_hand_back_the_bot_answers_the_latest_question(
    chat_env: FakeChatModel, agent: Any
) -> None:
    conv = conversations.conversation_start()
    say(conv, "I want to talk to a person", "h")
    assert Conversation.objects.get(pk=conv.pk).status == Conversation.Status.QUEUED
    older = say(conv, "Hello?", "q1")
    latest = say(conv, "What does ERR-4032 mean?", "q2")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.conversation_hand_back(conversation_id=conv.pk, agent=agent)  # eager task
    answers = list(conv.messages.filter(role=Message.Role.BOT))
    assert [a.in_reply_to_id for a in answers] == [latest.pk]
    assert chat_env.calls == 1
    # The question is the latest message alone ("Hello?" is only history).
    asked = [line for line in chat_env.prompts[-1].splitlines() if line.startswith("Question:")]
    assert asked == ["Question: What does ERR-4032 mean?"]
    assert not conv.messages.filter(role=Message.Role.BOT, in_reply_to=older).exists()
    assert answered.next_question_id(conversation_id=conv.pk) is None


def test_the_workspace_marks_the_lines_the_customer_saw(queued: QueuedFactory, agent: Any) -> None:
    conv = queued()
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    client = Client()
    client.force_login(agent)
    page = client.get(reverse("admin:support_agent_conversation", args=[conv.pk]))
    html = page.content.decode()
    assert 'data-kind="queued"' in html and 'data-kind="claimed"' in html
    assert html.count("Customer saw") == 2  # the internal log line ("Alex claimed") is not
    assert "Alex claimed the conversation." in html
