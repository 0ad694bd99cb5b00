"""Every state change the webhooks report writes its event at its call site, in its own
transaction, numbered per conversation."""

from __future__ import annotations

from typing import Any

import pytest

from support import conversations, knowledge
from support.handoff import agents
from support.handoff.escalation import CUSTOMER_REQUEST, conversation_escalate
from support.models import Message, WebhookDelivery, WebhookEvent, WebhookSubscription
from support.replies import reply_store
from support.webhooks import subscriptions
from tests.factories import UserFactory, agent_user

pytestmark = pytest.mark.django_db


def kinds(conversation_id: Any = None) -> list[str]:
    rows = WebhookEvent.objects.order_by("created_at", "sequence")
    if conversation_id is not None:
        rows = rows.filter(conversation_id=conversation_id)
    return list(rows.values_list("type", flat=True))


def test_conversation_lifecycle_events_in_order(chat_env: Any) -> None:
    conv = conversations.conversation_start(customer_name="Kai")
    posted = conversations.message_post(
        conversation_id=conv.pk, text="How do I reset my router?", client_id="q1"
    )
    from support.answers.pipeline import answer_compose

    draft = answer_compose(question="How do I reset my router?")
    reply = reply_store(message_id=posted.message.pk, draft=draft)
    assert reply is not None
    conversations.feedback_set(conversation_id=conv.pk, message_id=reply.pk, value="down")
    conversation_escalate(conversation_id=conv.pk, reasons=(CUSTOMER_REQUEST,))
    agent = agent_user(username="lee")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="Lee here.")
    agents.agent_note_post(conversation_id=conv.pk, agent=agent, text="internal: not reported")
    agents.conversation_resolve(conversation_id=conv.pk, agent=agent)
    observed = kinds(conv.pk)
    assert observed[0] == "conversation.created"
    for kind in (
        "message.created",
        "feedback.created",
        "conversation.escalated",
        "conversation.claimed",
        "conversation.resolved",
    ):
        assert kind in observed
    roles = [
        e.payload["data"]["message"]["role"]
        for e in WebhookEvent.objects.filter(conversation_id=conv.pk, type="message.created")
    ]
    assert roles[:2] == ["customer", "bot"] and "agent" in roles
    assert not any(
        "internal" in e.payload["data"]["message"]["text"]
        for e in WebhookEvent.objects.filter(type="message.created")
    )
    sequences = list(
        WebhookEvent.objects.filter(conversation_id=conv.pk)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert sequences == list(range(1, len(sequences) + 1))
    assert observed.index("conversation.claimed") < observed.index("conversation.resolved")
    assert Message.objects.filter(internal=True).exists()


def test_document_ready_and_failed(kb_env: Any) -> None:
    good = knowledge.document_upload(filename="a.md", data=b"# A\n\nSome text.\n", queue=False)
    knowledge.document_ingest(document_id=good.pk, rebuild_index=False)
    empty = knowledge.document_upload(filename="b.md", data=b"#\n\n   \n# \n", queue=False)
    knowledge.document_ingest(document_id=empty.pk, rebuild_index=False)
    events = {e.payload["data"]["document"]["id"]: e.type for e in WebhookEvent.objects.all()}
    assert events == {good.pk: "document.ready", empty.pk: "document.failed"}
    assert WebhookEvent.objects.get(type="document.failed").payload["data"]["document"]["error"]


def test_deliveries_only_for_subscribed_enabled_events() -> None:
    owner = UserFactory(username="o", is_superuser=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subscriptions, "url_check", lambda url: url)
        wanted = subscriptions.subscription_create(
            owner=owner, url="https://a.example/h", events=["conversation.created"]
        )
        other = subscriptions.subscription_create(
            owner=owner, url="https://b.example/h", events=["document.ready"]
        )
        off = subscriptions.subscription_create(
            owner=owner, url="https://c.example/h", events=["conversation.created"]
        )
    WebhookSubscription.objects.filter(pk=off.pk).update(enabled=False)
    conversations.conversation_start()
    subs = set(WebhookDelivery.objects.values_list("subscription_id", flat=True))
    assert subs == {wanted.pk} and other.pk not in subs


def test_subscriptions_follow_the_owners_role() -> None:
    from support.webhooks.subscriptions import EventNotAllowed

    kadmin = UserFactory(username="k", groups=["Knowledge admins"])
    with pytest.raises(EventNotAllowed):
        subscriptions.events_check(["message.created"], kadmin)
    assert subscriptions.events_check(["document.ready"], kadmin) == ["document.ready"]
