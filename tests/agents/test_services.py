"""The agent services against the database: claim, release, assign, reply, notes, resolve,
hand back, the queue, canned responses."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from django.db import connection

from support import conversations, events
from support.exceptions import AlreadyClaimed, ConversationClosed, InvalidMessage
from support.handoff import agents
from support.handoff.transcript import QUEUED_TEXT
from support.models import CannedResponse, Conversation, Escalation, Feedback, Message
from tests.agents.conftest import QueuedFactory, SentEvents
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _group(conv: Conversation) -> str:
    return events.conversation_group(conv.pk)


def test_claim_gives_the_conversation_to_the_agent_and_tells_the_customer(
    queued: QueuedFactory, agent: Any, sent: SentEvents, django_capture_on_commit_callbacks: Any
) -> None:
    conv = queued()
    with django_capture_on_commit_callbacks(execute=True):
        esc = agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.AGENT and conv.assigned_agent == agent
    assert esc.state == Escalation.State.CLAIMED and esc.claimed_by == agent and esc.claimed_at
    status = sent.frames(_group(conv), "status")[-1]
    assert status["status"] == "agent" and status["agent_name"] == "Alex"
    assert "Alex joined" in status["text"]
    queue = sent.frames(events.AGENTS_GROUP, "queue")[-1]
    assert queue["conversation_id"] == conv.pk.hex and queue["status"] == "agent"
    # An audit line for agents, never for the customer...
    log = conv.messages.get(role=Message.Role.SYSTEM, internal=True)
    assert "Alex claimed" in log.text
    # ... and the line the customer sees, with the agent's display name.
    lines = [f["message"] for f in sent.frames(_group(conv), "message")]
    assert [(m["role"], m["kind"], m["text"]) for m in lines] == [
        ("system", "queued", QUEUED_TEXT),
        ("system", "claimed", "You're now talking to Alex."),
    ]


def test_second_claim_loses_and_is_told_who_won(
    queued: QueuedFactory, agent: Any, other_agent: Any
) -> None:
    conv = queued()
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    with pytest.raises(AlreadyClaimed, match="Alex already claimed"):
        agents.escalation_claim(conversation_id=conv.pk, agent=other_agent)
    # Claiming again yourself is harmless.
    assert agents.escalation_claim(conversation_id=conv.pk, agent=agent).claimed_by == agent
    assert Escalation.objects.get().claimed_by == agent


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not os.environ.get("DATABASE_URL"), reason="row locks need PostgreSQL")
def test_two_agents_claiming_at_once_exactly_one_wins(queued: QueuedFactory) -> None:
    contenders = [UserFactory(groups=["Support agents"], username=f"a{i}") for i in range(6)]
    for round_ in range(5):
        conv = queued(name=f"Customer {round_}")
        barrier = threading.Barrier(len(contenders))
        results: list[tuple[str, Any]] = []

        def claim(
            user: Any, conv_id: Any = conv.pk, barrier: Any = barrier, results: Any = results
        ) -> None:
            try:
                barrier.wait()
                agents.escalation_claim(conversation_id=conv_id, agent=user)
                results.append(("won", user.pk))
            except AlreadyClaimed as exc:
                results.append(("lost", exc.message))
            finally:
                connection.close()

        threads = [threading.Thread(target=claim, args=(u,)) for u in contenders]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        winners = [r for r in results if r[0] == "won"]
        assert len(winners) == 1, results
        assert len(results) == len(contenders)
        conv.refresh_from_db()
        assert conv.assigned_agent_id == winners[0][1]
        assert Escalation.objects.get(conversation=conv).claimed_by_id == winners[0][1]


def test_release_puts_it_back_at_its_place_and_customers_hear_their_position(
    queued: QueuedFactory, agent: Any, sent: SentEvents, django_capture_on_commit_callbacks: Any
) -> None:
    first, second = queued(name="First"), queued(name="Second")
    agents.escalation_claim(conversation_id=first.pk, agent=agent)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        agents.escalation_release(conversation_id=first.pk, agent=agent)
    first.refresh_from_db()
    assert first.status == Conversation.Status.QUEUED and first.assigned_agent is None
    assert sent.frames(_group(first), "status")[-1]["queue_position"] == 1
    assert sent.frames(_group(second), "status")[-1]["queue_position"] == 2


def test_only_the_holder_releases_replies_or_resolves(
    queued: QueuedFactory, agent: Any, other_agent: Any
) -> None:
    conv = queued()
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    with pytest.raises(agents.NotAssigned, match="Alex has this conversation"):
        agents.escalation_release(conversation_id=conv.pk, agent=other_agent)
    with pytest.raises(agents.NotAssigned):
        agents.agent_reply_post(conversation_id=conv.pk, agent=other_agent, text="Hi")
    with pytest.raises(agents.NotAssigned):
        agents.conversation_resolve(conversation_id=conv.pk, agent=other_agent)
    with pytest.raises(agents.NotAssigned):
        agents.conversation_hand_back(conversation_id=conv.pk, agent=other_agent)
    # Notes are for everyone.
    assert agents.agent_note_post(conversation_id=conv.pk, agent=other_agent, text="FYI").internal


def test_reply_needs_a_claim(queued: QueuedFactory, agent: Any) -> None:
    conv = queued()
    with pytest.raises(agents.NotAssigned, match="Claim the conversation"):
        agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="Hello")


def test_assign_to_another_agent_and_never_to_a_non_agent(
    queued: QueuedFactory,
    agent: Any,
    other_agent: Any,
    knowledge_admin: Any,
    sent: SentEvents,
    django_capture_on_commit_callbacks: Any,
) -> None:
    conv = queued()
    with pytest.raises(agents.NotAnAgent):
        agents.escalation_assign(
            conversation_id=conv.pk, agent=agent, to_agent_id=knowledge_admin.pk
        )
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        agents.escalation_assign(conversation_id=conv.pk, agent=agent, to_agent_id=other_agent.pk)
    conv.refresh_from_db()
    assert conv.assigned_agent == other_agent and conv.status == Conversation.Status.AGENT
    assert sent.frames(_group(conv), "status")[-1]["agent_name"] == "Sam"
    # Now Alex no longer holds it.
    with pytest.raises(agents.NotAssigned):
        agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="Hi")


def test_reply_reaches_the_customer_and_notes_never_do(
    queued: QueuedFactory, agent: Any, sent: SentEvents, django_capture_on_commit_callbacks: Any
) -> None:
    conv = queued()
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        reply = agents.agent_reply_post(
            conversation_id=conv.pk, agent=agent, text="  I fixed the invoice.\r\nSorry!  "
        )
        note = agents.agent_note_post(
            conversation_id=conv.pk, agent=agent, text="Customer was double-billed; refunded."
        )
    assert reply.role == "agent" and reply.author == agent and not reply.internal
    assert reply.text == "I fixed the invoice.\nSorry!"
    to_customer = sent.frames(_group(conv), "message")
    assert [f["message"]["id"] for f in to_customer] == [reply.pk]
    assert to_customer[0]["message"]["author_name"] == "Alex"
    to_agents = [e for e in sent.to(events.AGENTS_GROUP) if e["type"] == events.MESSAGE_CREATED]
    assert {(e["payload"]["message"]["id"], e["internal"]) for e in to_agents} == {
        (reply.pk, False),
        (note.pk, True),
    }
    assert all(e["conversation_id"] == conv.pk.hex for e in to_agents)
    # A resumed widget never shows the note either.
    welcome = conversations.welcome_frame(conv, "token", resumed=True)
    texts = [m["text"] for m in welcome["history"]]
    assert "I fixed the invoice.\nSorry!" in texts
    assert not any("double-billed" in t for t in texts)
    with pytest.raises(InvalidMessage):
        agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="   ")


def test_resolve_closes_and_tells_the_customer(
    queued: QueuedFactory, agent: Any, sent: SentEvents, django_capture_on_commit_callbacks: Any
) -> None:
    conv = queued()
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        agents.conversation_resolve(conversation_id=conv.pk, agent=agent)
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.RESOLVED and conv.resolved_at
    esc = Escalation.objects.get()
    assert esc.state == Escalation.State.RESOLVED and esc.resolved_at
    assert sent.frames(_group(conv), "status")[-1]["status"] == "resolved"
    # Idempotent, and the customer cannot write into it any more.
    agents.conversation_resolve(conversation_id=conv.pk, agent=agent)
    with pytest.raises(ConversationClosed):
        conversations.message_post(conversation_id=conv.pk, text="hello?", client_id="late")


def test_hand_back_returns_the_conversation_to_the_bot(
    queued: QueuedFactory, agent: Any, sent: SentEvents, django_capture_on_commit_callbacks: Any
) -> None:
    conv = queued()
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    with django_capture_on_commit_callbacks(execute=True):
        agents.conversation_hand_back(conversation_id=conv.pk, agent=agent)
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.BOT and conv.assigned_agent is None
    assert Escalation.objects.get().state == Escalation.State.HANDED_BACK
    status = sent.frames(_group(conv), "status")[-1]
    assert status["status"] == "bot" and "assistant" in status["text"]
    with pytest.raises(agents.NotQueued):
        agents.conversation_hand_back(conversation_id=conv.pk, agent=agent)
    # The customer can ask for a person again: a new escalation.
    conversations.handoff_request(conversation_id=conv.pk)
    assert Escalation.objects.filter(conversation=conv).count() == 2


def test_queue_lists_waiting_oldest_first_with_what_an_agent_needs(
    queued: QueuedFactory, agent: Any
) -> None:
    old = queued(question="Where is my parcel?", name="Old", email="old@example.com")
    new = queued(question="Refund please", name="New")
    mine = queued(name="Mine")
    agents.escalation_claim(conversation_id=mine.pk, agent=agent)
    snapshot = agents.escalation_queue_list()
    assert [i.conversation_id for i in snapshot.waiting] == [old.pk, new.pk]
    assert snapshot.count == agents.escalation_queue_count() == 2
    first = snapshot.waiting[0]
    assert first.first_question == "Where is my parcel?"
    assert first.customer_email == "old@example.com"
    assert first.reasons == ("Customer asked for a person",)
    assert first.wait_seconds >= 0 and first.wait_text
    assert [(i.conversation_id, i.claimed_by) for i in snapshot.active] == [(mine.pk, "Alex")]
    data = snapshot.as_dict()
    assert data["count"] == 2 and data["waiting"][0]["conversation_id"] == old.pk.hex


def test_canned_responses_fill_known_placeholders_only(queued: QueuedFactory, agent: Any) -> None:
    conv = queued(name="Jordan")
    CannedResponse.objects.create(
        title="Greeting",
        text="Hi {customer_name}, {agent_name} from {company_name} here. {unknown} "
        "{customer_name.__class__} {0}",
    )
    CannedResponse.objects.create(title="Old", text="unused", enabled=False)
    (canned,) = agents.canned_responses_render(conversation=conv, agent=agent)
    assert canned.text == (
        "Hi Jordan, Alex from Brightwave here. {unknown} {customer_name.__class__} {0}"
    )


def test_workspace_shows_everything_including_notes_and_passages(
    queued: QueuedFactory, agent: Any
) -> None:
    conv = queued()
    bot = conv.messages.create(
        role="bot",
        text="Check the billing page [1].",
        citations=[{"n": 1, "document_id": 3, "chunk_id": 7, "title": "Billing", "heading": "B"}],
        retrieved=[
            {
                "title": "Billing",
                "heading": "Billing › Invoices",
                "score": 0.7,
                "text": "Invoices are sent monthly.",
            }
        ],
        retrieval_confidence=0.7,
        action="answer",
    )
    Feedback.objects.create(message=bot, value="down", comment="wrong")
    agents.agent_note_post(conversation_id=conv.pk, agent=agent, text="internal")
    ws = agents.conversation_workspace_get(conversation_id=conv.pk, agent=agent)
    assert ws.reasons == ("Customer asked for a person",)
    assert "claim" in ws.actions and "reply" not in ws.actions
    items = {i.message.pk: i for i in ws.transcript}
    assert items[bot.pk].citations[0]["url"] == "/kb/3/#chunk-7"
    assert items[bot.pk].retrieved[0]["text"] == "Invoices are sent monthly."
    assert items[bot.pk].feedback == "down" and items[bot.pk].feedback_comment == "wrong"
    assert any(i.message.internal and i.message.text == "internal" for i in ws.transcript)
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    ws = agents.conversation_workspace_get(conversation_id=conv.pk, agent=agent)
    assert {"reply", "release", "resolve", "hand_back", "suggest"} <= ws.actions
