"""Where examples come from: an agent's reply in an escalated conversation that ends resolved
(the real chat flow over websockets, and the service against the database), and a bot answer
the customer rated helpful."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from support import conversations
from support.handoff import agents
from support.handoff.escalation import CUSTOMER_REQUEST, conversation_escalate
from support.learning.examples import (
    example_from_feedback,
    examples_from_conversation,
    exchange_of_agent_reply,
)
from support.models import Conversation, Example, Feedback, KnowledgeDocument, Message
from tests.agents.test_websockets import (
    action,
    chat_socket,
    kind,
    latest_conversation,
    login,
    post,
    until,
)
from tests.fakes import FakeChatModel

ERR_ANSWER = (
    "Error ERR-4032 means the fibre line is down; we fix it remotely within 4 hours. "
    "Text me on 555-123-4567 if it is not back by then."
)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_an_agent_answer_in_the_real_chat_flow_becomes_a_pending_example(
    chat_env: FakeChatModel, agent: Any
) -> None:
    customer = await chat_socket()
    await customer.send_json_to(
        {"type": "message", "text": "What does error ERR-4032 on my router mean?", "client_id": "1"}
    )
    await until(customer, kind("reply.done"), seconds=30)  # the bot's turn
    await customer.send_json_to(
        {"type": "message", "text": "I want to talk to a person", "client_id": "2"}
    )
    await until(customer, kind("status", status="queued"))
    conv = await latest_conversation()
    alex = await login(agent)
    assert (await post(alex, action(conv.pk, "claim"))).status_code == 200
    reply = await post(alex, action(conv.pk, "reply"), {"text": ERR_ANSWER})
    assert reply.json()["ok"] is True
    assert not await Example.objects.aexists()  # nothing until the conversation is resolved
    await post(alex, action(conv.pk, "resolve"))
    await until(customer, kind("status", status="resolved"))
    await customer.disconnect()

    example = await Example.objects.select_related("answer_message").aget()
    assert example.source == Example.Source.AGENT_REPLY
    assert example.state == Example.State.PENDING and example.reviewed_at is None
    assert example.conversation_id == conv.pk and example.split_key == conv.pk.hex
    # The customer only asked for a person after the bot's turn: the question is what the
    # bot was asked, and nothing came before it.
    assert example.question == "What does error ERR-4032 on my router mean?"
    assert example.history == []
    assert example.answer == ERR_ANSWER.replace("555-123-4567", "[phone]")
    assert example.redactions == 1
    assert example.answer_message.text == ERR_ANSWER  # the conversation itself is untouched
    assert not example.knowledge_gap
    assert example.grounding_method == Example.GroundingMethod.INFERRED
    grounding = [g async for g in example.grounding.select_related("document")]
    assert grounding and grounding[0].document.original_filename == "router.md"
    assert "ERR-4032" in grounding[0].text


def _escalated(question: str) -> Conversation:
    conv = conversations.conversation_start(customer_name="Jordan")
    msg = conv.messages.create(role="customer", text=question, client_id="q")
    conversation_escalate(
        conversation_id=conv.pk, reasons=(CUSTOMER_REQUEST,), trigger_message_id=msg.pk
    )
    return conv


@pytest.mark.django_db
def test_the_resolve_service_queues_it_on_commit(
    chat_env: FakeChatModel, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conv = _escalated("How do I reset my router?")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.agent_reply_post(
        conversation_id=conv.pk,
        agent=agent,
        text="Hold the reset button on the back for 10 seconds until the light blinks orange.",
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        agents.conversation_resolve(conversation_id=conv.pk, agent=agent)
        assert not Example.objects.exists()
    for callback in callbacks:
        callback()
    example = Example.objects.get()
    assert example.question == "How do I reset my router?" and example.history == []
    assert example.held_back in (True, False)
    # Idempotent: a redelivered task finds the example and makes no second one.
    assert examples_from_conversation(conversation_id=conv.pk) == example
    assert Example.objects.count() == 1


@pytest.mark.django_db
def test_with_learning_off_resolving_and_rating_make_no_example(
    chat_env: FakeChatModel, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conv = _escalated("How do I reset my router?")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="Hold the reset button.")
    with (
        override_settings(SUPPORT_LEARN_FROM_CONVERSATIONS=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        agents.conversation_resolve(conversation_id=conv.pk, agent=agent)
    assert not Example.objects.exists()


@pytest.mark.django_db
@override_settings(SUPPORT_EXAMPLES_AUTO_APPROVE=["agent_reply"])
def test_agent_replies_can_be_approved_automatically(no_index: None, agent: Any) -> None:
    conv = _escalated("Where is my parcel?")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="It left the depot today.")
    agents.conversation_resolve(conversation_id=conv.pk, agent=agent)
    example = examples_from_conversation(conversation_id=conv.pk)
    assert example is not None and example.state == Example.State.APPROVED
    assert example.reviewed_by is None and example.reviewed_at is not None
    # Nothing in the (empty) knowledge base supports it: a gap, not a retrieval example.
    assert example.knowledge_gap and not example.grounding.exists()


@pytest.mark.django_db
def test_no_example_without_an_agent_answer_or_before_resolution(
    no_index: None, agent: Any
) -> None:
    conv = _escalated("Hello?")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="I can help.")
    assert examples_from_conversation(conversation_id=conv.pk) is None  # not resolved yet
    other = _escalated("a person please")
    agents.escalation_claim(conversation_id=other.pk, agent=agent)
    agents.conversation_resolve(conversation_id=other.pk, agent=agent)
    assert examples_from_conversation(conversation_id=other.pk) is None  # no agent reply
    never = conversations.conversation_start()
    Conversation.objects.filter(pk=never.pk).update(status=Conversation.Status.RESOLVED)
    assert examples_from_conversation(conversation_id=never.pk) is None  # never escalated
    assert not Example.objects.exists()


def _messages(*turns: tuple[str, str]) -> list[Message]:
    conv = conversations.conversation_start()
    return [conv.messages.create(role=role, text=text) for role, text in turns]


@pytest.mark.django_db
def test_the_exchange_is_cut_at_the_last_bot_turn() -> None:
    msgs = _messages(
        ("customer", "hi"),
        ("bot", "Hello! How can I help?"),
        ("customer", "my invoice is wrong"),
        ("agent", "Which invoice?"),
        ("customer", "the one from May"),
        ("agent", "Fixed it."),
        ("agent", "You will get a new one today."),
        ("customer", "thanks!"),
    )
    found = exchange_of_agent_reply(msgs)
    assert found is not None
    exchange, reply = found
    assert exchange.question == "my invoice is wrong\nthe one from May"
    assert exchange.answer == "Fixed it.\n\nYou will get a new one today."
    assert reply == msgs[6]
    assert exchange.history == (
        {"role": "user", "text": "hi"},
        {"role": "agent", "text": "Hello! How can I help?"},
    )


@pytest.mark.django_db
def test_a_request_for_a_person_is_no_question() -> None:
    # The bot failed on the question; the customer only asked for a person after it.
    msgs = _messages(
        ("customer", "hello"),
        ("bot", "Hi!"),
        ("customer", "Can I change the date of my delivery?"),
        ("bot", "Sorry, I do not know that. Would you like to talk to a person?"),
        ("customer", "yes"),
        ("customer", "agent please"),
        ("agent", "Yes, any time up to a day before delivery."),
    )
    exchange, _reply = exchange_of_agent_reply(msgs)  # type: ignore[misc]
    assert exchange.question == "Can I change the date of my delivery?"
    assert exchange.history == ({"role": "user", "text": "hello"}, {"role": "agent", "text": "Hi!"})
    assert exchange_of_agent_reply(_messages(("customer", "human please"), ("agent", "Hi"))) is None


def _rated_answer(chat_env: FakeChatModel, value: str) -> Message:
    conv = conversations.conversation_start()
    question = conv.messages.create(role="customer", text="How do I reset my router?")
    chunk = KnowledgeDocument.objects.get(original_filename="router.md").chunks.first()
    assert chunk is not None
    answer = conv.messages.create(
        role="bot",
        text="Hold the reset button on the back for 10 seconds [1].",
        in_reply_to=question,
        action=Message.Action.ANSWER,
        citations=[{"n": 1, "chunk_id": chunk.pk, "document_id": chunk.document_id}],
    )
    conversations.feedback_set(conversation_id=conv.pk, message_id=answer.pk, value=value)
    return answer


@pytest.mark.django_db
def test_a_bot_answer_rated_helpful_becomes_an_approved_example(
    chat_env: FakeChatModel, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        answer = _rated_answer(chat_env, "up")
    example = Example.objects.get()
    assert example.source == Example.Source.RATED_HELPFUL and example.answer_message == answer
    assert example.state == Example.State.APPROVED  # the default setting
    assert example.question == "How do I reset my router?"
    assert example.answer == "Hold the reset button on the back for 10 seconds."  # no [1]
    assert example.grounding_method == Example.GroundingMethod.CITED
    assert [g.chunk_id for g in example.grounding.all()] == [answer.citations[0]["chunk_id"]]

    # The customer changes their mind: an example nobody reviewed is withdrawn.
    with django_capture_on_commit_callbacks(execute=True):
        conversations.feedback_set(
            conversation_id=answer.conversation_id, message_id=answer.pk, value="down"
        )
    example.refresh_from_db()
    assert example.state == Example.State.REJECTED and example.reviewed_by is None
    assert example_from_feedback(message_id=answer.pk) == example
    assert Example.objects.count() == 1


@pytest.mark.django_db
@override_settings(SUPPORT_EXAMPLES_AUTO_APPROVE=[])
def test_rated_helpful_waits_for_review_when_the_setting_says_so(chat_env: FakeChatModel) -> None:
    answer = _rated_answer(chat_env, "up")
    example = example_from_feedback(message_id=answer.pk)
    assert example is not None and example.state == Example.State.PENDING


@pytest.mark.django_db
def test_a_thumbs_down_or_a_decline_makes_no_example(chat_env: FakeChatModel) -> None:
    answer = _rated_answer(chat_env, "down")
    assert example_from_feedback(message_id=answer.pk) is None
    # A decline is no answer to learn from, even with a thumbs up stored on it.
    Message.objects.filter(pk=answer.pk).update(action=Message.Action.ESCALATE)
    Feedback.objects.filter(message=answer).update(value="up")
    assert example_from_feedback(message_id=answer.pk) is None
    assert not Example.objects.exists()
