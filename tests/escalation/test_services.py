"""The selector and the wire-up: message_post, the worker's check before answering, reply_store."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from support import backends, conversations, events
from support.answers.cite import DECLINE_TEXT
from support.answers.types import Draft
from support.handoff import agents
from support.handoff.escalation import (
    CheckStage,
    conversation_state_get,
    escalation_apply,
    escalation_check,
    escalation_preview,
    sensitive_topics_list,
)
from support.handoff.escalation_rules import AnswerOutcome, PastTurn, Thresholds
from support.handoff.transcript import LineKind, transcript_line_post
from support.models import Conversation, Escalation, Feedback, Message, SensitiveTopic
from support.replies import reply_generate, reply_store
from tests.factories import ConversationFactory, MessageFactory, agent_user

from .conftest import BagOfWordsEncoder

pytestmark = pytest.mark.django_db


class Sent:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def frames(self, group: str, kind: str) -> list[dict[str, Any]]:
        return [e["payload"] for g, e in self.events if g == group and e["payload"]["type"] == kind]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    recorder = Sent()
    monkeypatch.setattr(events, "group_send", lambda g, e: recorder.events.append((g, e)))
    return recorder


@pytest.fixture
def no_answers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the answers message_post queues instead of generating them."""
    queued: list[int] = []
    monkeypatch.setattr(conversations, "_queue_answer", queued.append)
    return queued


def post(conv: Conversation, text: str, client_id: str = "c-1") -> Message:
    return conversations.message_post(
        conversation_id=conv.pk, text=text, client_id=client_id
    ).message


@pytest.fixture
def agent() -> Any:
    return agent_user(username="sam", first_name="Sam")


def draft(action: str = "answer", reason: str = "grounded", grounded: bool = True) -> Draft:
    text = DECLINE_TEXT if action == "escalate" else "Hold the reset button [1]."
    return Draft(text, action, reason, (), (), 0.9, 0.9, grounded, "v1")


# --- the seeded topics and the selector ----------------------------------------------------------
def test_migration_seeds_the_default_topics() -> None:
    names = set(SensitiveTopic.objects.values_list("name", flat=True))
    assert {"Legal threat", "Account deletion", "Security incident", "Large refund"} <= names
    refund = SensitiveTopic.objects.get(name="Large refund")
    assert refund.amount_threshold == Decimal("500")
    assert all(t.customer_message for t in SensitiveTopic.objects.all())


def test_disabled_topics_are_not_loaded() -> None:
    SensitiveTopic.objects.filter(name="Legal threat").update(enabled=False)
    names = [t.name for t in sensitive_topics_list()]
    assert "Legal threat" not in names
    assert "Account deletion" in names
    topic = next(t for t in sensitive_topics_list() if t.name == "Account deletion")
    assert "delete my account" in topic.keywords  # one per line, stripped


def test_conversation_state_get_reads_turns_feedback_and_settings() -> None:
    conv = ConversationFactory()
    q = MessageFactory(conversation=conv, text="How do I reset it?")
    a = MessageFactory(
        conversation=conv, role="bot", text="Hold it.", action="answer", in_reply_to=q
    )
    Feedback.objects.create(message=a, value="down")
    MessageFactory(conversation=conv, role="agent", text="note", internal=True)
    new = MessageFactory(conversation=conv, text="still broken")
    MessageFactory(conversation=conv, text="later message")
    with override_settings(SUPPORT_ESCALATE_AFTER_FAILURES=3):
        state = conversation_state_get(conv.pk, new.text, before_message_id=new.pk)
    assert state.text == "still broken"
    assert state.turns == (
        PastTurn("customer", "How do I reset it?"),
        PastTurn("bot", "Hold it.", action="answer", feedback="down"),
    )
    assert state.thresholds.failures_in_a_row == 3
    assert {t.name for t in state.topics} >= {"Legal threat", "Large refund"}


def test_thresholds_follow_the_settings() -> None:
    with override_settings(
        SUPPORT_ESCALATE_NEGATIVE_SENTIMENT=-0.3, SUPPORT_ESCALATE_REPEAT_SIMILARITY=0.8
    ):
        state = conversation_state_get(ConversationFactory().pk, "x")
    assert state.thresholds.negative_sentiment == -0.3
    assert state.thresholds.repeat_similarity == 0.8
    assert state.thresholds.request_similarity == Thresholds().request_similarity


# --- message_post --------------------------------------------------------------------------------
def test_asking_for_a_person_escalates_without_an_answer(
    sent: Sent, no_answers: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    conv = ConversationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        msg = post(conv, "Can I talk to a real person please?")
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
    escalation = conv.escalations.get()
    assert escalation.reasons == ["customer_request"]
    assert escalation.trigger_message_id == msg.pk
    assert no_answers == []
    assert sent.frames(events.conversation_group(conv.pk), "status")[0]["status"] == "queued"


def test_an_ordinary_question_is_answered(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    msg = post(conv, "My user agent is Firefox, is it supported?")
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.BOT
    assert not conv.escalations.exists()
    assert no_answers == [msg.pk]


def test_a_sensitive_topic_sends_its_message_then_escalates(
    sent: Sent, no_answers: list[int], django_capture_on_commit_callbacks: Any
) -> None:
    conv = ConversationFactory()
    with django_capture_on_commit_callbacks(execute=True):
        post(conv, "I want a refund of 1,200 EUR for the broken TV")
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
    assert conv.escalations.get().reasons == ["sensitive_topic"]
    notice = conv.messages.get(role=Message.Role.SYSTEM, reason="notice")
    assert notice.text == SensitiveTopic.objects.get(name="Large refund").customer_message
    group = events.conversation_group(conv.pk)
    kinds = [e["payload"]["type"] for g, e in sent.events if g == group]
    # The customer's message, the notice, the queued line, the status.
    assert kinds == ["message", "message", "message", "status"]
    lines = [f["message"] for f in sent.frames(group, "message")[1:]]
    assert [(m["role"], m["kind"]) for m in lines] == [("system", "notice"), ("system", "queued")]
    assert no_answers == []


def test_a_small_refund_is_answered(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    post(conv, "I want a refund of 40 EUR")
    assert not conv.escalations.exists()
    assert len(no_answers) == 1


def test_frustration_escalates(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    post(conv, "This is unacceptable, you are useless")
    assert conv.escalations.get().reasons == ["frustration"]
    assert no_answers == []


def test_two_thumbs_down_in_a_row_escalate_on_the_next_message(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    for n in range(2):
        q = MessageFactory(conversation=conv, text=f"question {n} about the router")
        a = MessageFactory(
            conversation=conv, role="bot", text="...", action="answer", in_reply_to=q
        )
        conversations.feedback_set(conversation_id=conv.pk, message_id=a.pk, value="down")
    post(conv, "and what about the cable?")
    assert conv.escalations.get().reasons == ["repeated_failure"]
    assert no_answers == []


def test_messages_while_queued_are_not_decided_again(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    post(conv, "talk to a human", client_id="a")
    post(conv, "I'm going to sue you", client_id="b")
    assert conv.escalations.count() == 1
    # No sensitive-topic notice: only the queued line and the acknowledgement.
    lines = conv.messages.filter(role=Message.Role.SYSTEM).order_by("pk")
    assert list(lines.values_list("reason", flat=True)) == ["queued", "ack"]


def test_the_repeated_question_check(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    q = MessageFactory(conversation=conv, text="How do I reset my router to factory settings?")
    MessageFactory(conversation=conv, role="bot", text="Hold it.", action="answer", in_reply_to=q)
    post(conv, "how do I reset my router to factory settings")
    assert conv.escalations.get().reasons == ["frustration"]


# --- the worker: embedding checks before answering -----------------------------------------------
def test_the_worker_runs_the_embedding_checks_before_answering(
    bow_encoder: BagOfWordsEncoder, sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    SensitiveTopic.objects.create(
        name="Break-in",
        examples="someone broke into my profile yesterday",
        customer_message="A person will look into this.",
    )
    conv = ConversationFactory()
    with override_settings(SUPPORT_DEBOUNCE_S=0), django_capture_on_commit_callbacks(execute=True):
        backends.set_backend("embedder", bow_encoder)  # settings changes reset the backends
        # No keyword matches: message_post (rules only) queues an answer; the worker's check
        # (the fake embedder: same words, similarity 1) escalates before any generation.
        msg = post(conv, "someone broke into my profile yesterday")
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
    assert conv.escalations.get().reasons == ["sensitive_topic"]
    notice = conv.messages.get(role=Message.Role.SYSTEM, reason="notice")
    assert notice.text == "A person will look into this."
    assert not conv.messages.filter(role=Message.Role.BOT).exists()
    assert "someone broke into my profile yesterday" in bow_encoder.encoded
    # Run again (a redelivered task): the conversation is no longer the bot's.
    assert reply_generate(message_id=msg.pk) == "silent"


def test_the_worker_check_does_nothing_for_an_ordinary_question(
    bow_encoder: BagOfWordsEncoder,
) -> None:
    conv = ConversationFactory()
    msg = MessageFactory(conversation=conv, text="How do I reset my router?")
    decision = escalation_check(message_id=msg.pk, stage=CheckStage.PREPARED)
    assert not decision.escalate
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.BOT


# --- reply_store ---------------------------------------------------------------------------------
def test_a_decline_is_stored_and_the_bot_keeps_the_conversation(
    sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    # Issue 12: a decline offers a person instead of handing over (it used to queue).
    conv = ConversationFactory()
    q = MessageFactory(conversation=conv, text="What is the airspeed of a swallow?")
    with django_capture_on_commit_callbacks(execute=True):
        reply = reply_store(message_id=q.pk, draft=draft("escalate", "low_confidence", False))
    assert reply is not None and reply.text == DECLINE_TEXT
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.BOT
    assert not conv.escalations.exists()
    group = events.conversation_group(conv.pk)
    kinds = [e["payload"]["type"] for g, e in sent.events if g == group]
    assert kinds == ["reply.done"]


def test_a_second_decline_in_a_row_hands_over(
    sent: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    conv = ConversationFactory()
    q1 = MessageFactory(conversation=conv, text="What is the capital of France?")
    reply_store(message_id=q1.pk, draft=draft("escalate", "low_confidence", False))
    q2 = MessageFactory(conversation=conv, text="Who won the world cup in 2018?")
    with django_capture_on_commit_callbacks(execute=True):
        reply_store(message_id=q2.pk, draft=draft("escalate", "no_facts", False))
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
    escalation = conv.escalations.get()
    assert escalation.reasons == ["low_confidence", "repeated_failure"]
    assert escalation.trigger_message_id == q2.pk


def test_yes_after_a_decline_hands_over(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    q = MessageFactory(conversation=conv, text="How do I make a warranty claim?")
    reply_store(message_id=q.pk, draft=draft("escalate", "low_confidence", False))
    yes = post(conv, "yes please")
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
    escalation = conv.escalations.get()
    assert escalation.reasons == ["customer_request"] and escalation.trigger_message_id == yes.pk
    assert no_answers == []


def test_a_question_after_a_decline_is_answered(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    q = MessageFactory(conversation=conv, text="How do I make a warranty claim?")
    reply_store(message_id=q.pk, draft=draft("escalate", "low_confidence", False))
    again = post(conv, "yes, how do I send the router back for repair?")
    assert not conv.escalations.exists()
    assert no_answers == [again.pk]


def test_a_good_answer_does_not_escalate() -> None:
    conv = ConversationFactory()
    q = MessageFactory(conversation=conv, text="How do I reset my router?")
    assert reply_store(message_id=q.pk, draft=draft()) is not None
    assert not conv.escalations.exists()


def test_a_quoted_fallback_does_not_escalate() -> None:
    conv = ConversationFactory()
    q = MessageFactory(conversation=conv, text="How do I reset my router?")
    reply_store(message_id=q.pk, draft=draft("extractive", "ungrounded_generation", True))
    assert not conv.escalations.exists()


def test_a_decline_after_a_thumbs_down_records_both_reasons() -> None:
    conv = ConversationFactory()
    q1 = MessageFactory(conversation=conv, text="first question about the router")
    a1 = MessageFactory(conversation=conv, role="bot", text="...", action="answer", in_reply_to=q1)
    Feedback.objects.create(message=a1, value="down")
    q2 = MessageFactory(conversation=conv, text="second question")
    reply_store(message_id=q2.pk, draft=draft("escalate", "low_confidence", False))
    assert conv.escalations.get().reasons == ["low_confidence", "repeated_failure"]


def test_system_lines_between_two_declines_do_not_end_the_run(no_answers: list[int]) -> None:
    conv = ConversationFactory()
    q1 = MessageFactory(conversation=conv, text="What is the capital of France?")
    reply_store(message_id=q1.pk, draft=draft("escalate", "low_confidence", False))
    # A line that is no answer and no failure (a rule's notice that did not hand over, say).
    transcript_line_post(conversation=conv, kind=LineKind.NOTICE, text="Just so you know.")
    q2 = MessageFactory(conversation=conv, text="Who won the world cup in 2018?")
    reply_store(message_id=q2.pk, draft=draft("escalate", "no_facts", False))
    assert conv.escalations.get().reasons == ["low_confidence", "repeated_failure"]


def test_a_decline_after_a_hand_back_is_the_first_of_a_new_run(
    agent: Any, no_answers: list[int]
) -> None:
    conv = ConversationFactory()
    q1 = MessageFactory(conversation=conv, text="How do I make a warranty claim?")
    reply_store(message_id=q1.pk, draft=draft("escalate", "low_confidence", False))
    post(conv, "yes please", client_id="yes")
    queued = post(conv, "Where do I send the broken router?", client_id="q")
    agents.conversation_hand_back(conversation_id=conv.pk, agent=agent)
    # The bot answers the queued message after the hand back; the HANDED_BACK line comes
    # after that message but before the answer, and ends the failures in a row.
    reply_store(message_id=queued.pk, draft=draft("escalate", "low_confidence", False))
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.BOT
    assert conv.escalations.count() == 1


def test_reply_store_is_stale_after_an_escalation() -> None:
    conv = ConversationFactory()
    q = MessageFactory(conversation=conv, text="talk to a human")
    decision = escalation_check(message_id=q.pk, stage=CheckStage.RECEIVED)
    escalation_apply(conversation_id=conv.pk, decision=decision, trigger_message_id=q.pk)
    assert reply_store(message_id=q.pk, draft=draft()) is None
    assert Escalation.objects.filter(conversation=conv).count() == 1


# --- escalation_preview (ask --json, escalation_check) -------------------------------------------
def test_preview_writes_nothing(bow_encoder: BagOfWordsEncoder) -> None:
    before = (Conversation.objects.count(), Message.objects.count(), Escalation.objects.count())
    decision = escalation_preview(text="Please delete my account")
    assert decision.reasons == ("sensitive_topic",)
    assert decision.topics == ("Account deletion",)
    after = (Conversation.objects.count(), Message.objects.count(), Escalation.objects.count())
    assert before == after


def test_preview_with_an_answer() -> None:
    answer = AnswerOutcome("escalate", "low_confidence", grounded=False)
    decision = escalation_preview(text="What is love?", answer=answer, similarity=None)
    assert not decision.escalate and decision.reasons == ()  # a decline alone (issue 12)
    decision = escalation_preview(text="I want a human", answer=answer, similarity=None)
    assert decision.reasons == ("customer_request", "low_confidence")
