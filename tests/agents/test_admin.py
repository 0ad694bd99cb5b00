"""The workspace's admin views: who may see them, what they show, thin actions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from support import roles
from support.handoff import agents
from support.models import CannedResponse, Conversation, Escalation, Holiday
from tests.agents.conftest import QueuedFactory

pytestmark = pytest.mark.django_db

QUEUE = "admin:support_escalationqueue_changelist"
QUEUE_JSON = "admin:support_agent_queue_json"


def conv_url(conv: Conversation) -> str:
    return reverse("admin:support_agent_conversation", args=[conv.pk])


def action_url(conv: Conversation, action: str) -> str:
    return reverse("admin:support_agent_action", args=[conv.pk, action])


def login(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_support_agents_group_has_the_workspace_permission(agent: Any) -> None:
    assert agents.is_support_agent(agent)
    assert "work_escalations" in roles.ROLE_PERMISSIONS[roles.SUPPORT_AGENTS]
    assert "work_escalations" not in roles.ROLE_PERMISSIONS[roles.KNOWLEDGE_ADMINS]


def test_agent_sees_the_queue_with_badge_in_header_and_index(
    queued: QueuedFactory, agent: Any
) -> None:
    queued(question="Where is my parcel?")
    queued()
    client = login(agent)
    page = client.get(reverse(QUEUE))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Escalation queue" in html and "Where is my parcel?" in html
    assert 'data-agent-badge aria-label="2 waiting">2<' in html
    assert 'id="agent-workspace-config"' in html and "support/agent.js" in html
    index = client.get(reverse("admin:index")).content.decode()
    assert 'data-agent-badge aria-label="2 waiting">2<' in index
    assert reverse(QUEUE) in index  # the app list entry too
    data = client.get(reverse(QUEUE_JSON)).json()
    assert data["count"] == 2 and data["waiting"][0]["url"].startswith(reverse(QUEUE))


@pytest.mark.parametrize("who", ["knowledge_admin", "plain_staff"])
def test_staff_without_the_permission_get_403_everywhere(
    who: str, request: pytest.FixtureRequest, queued: QueuedFactory
) -> None:
    conv = queued()
    client = login(request.getfixturevalue(who))
    assert client.get(reverse(QUEUE)).status_code == 403
    assert client.get(reverse(QUEUE_JSON)).status_code == 403
    assert client.get(conv_url(conv)).status_code == 403
    for action in ("claim", "reply", "note", "resolve", "hand-back", "suggest"):
        assert client.post(action_url(conv, action), {"text": "x"}).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert "data-agent-badge" not in index and "agent.js" not in index
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED and not conv.messages.filter(role="agent")


def test_customers_cannot_reach_the_workspace(queued: QueuedFactory) -> None:
    conv = queued()
    anonymous = Client()
    for url in (reverse(QUEUE), reverse(QUEUE_JSON), conv_url(conv)):
        response = anonymous.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    response = anonymous.post(action_url(conv, "reply"), {"text": "hi"})
    assert response.status_code in (302, 403)
    assert not conv.messages.filter(role="agent").exists()


def test_claim_reply_note_resolve_through_the_views(
    queued: QueuedFactory, agent: Any, django_capture_on_commit_callbacks: Any
) -> None:
    conv = queued(question="I was <b>double</b> charged", name="<script>x</script>")
    client = login(agent)
    page = client.get(conv_url(conv)).content.decode()
    assert "I was &lt;b&gt;double&lt;/b&gt; charged" in page and "<b>double</b>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x</script>" not in page
    assert "Customer asked for a person" in page
    assert 'name="text"' not in page.split("Internal note")[0]  # no reply box before claiming

    response = client.post(action_url(conv, "claim"))
    assert response.status_code == 302 and response["Location"] == conv_url(conv)
    page = client.get(conv_url(conv)).content.decode()
    assert "Reply to" in page and "Hand back to bot" in page and "Resolve" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            action_url(conv, "reply"), {"text": "Refunded."}, HTTP_ACCEPT="application/json"
        )
    assert response.status_code == 200 and response.json()["ok"] is True
    response = client.post(action_url(conv, "note"), {"text": "<i>note</i>"})
    assert response.status_code == 302
    page = client.get(conv_url(conv)).content.decode()
    assert "Refunded." in page and "&lt;i&gt;note&lt;/i&gt;" in page and "Internal note ·" in page

    response = client.post(action_url(conv, "reply"), {"text": ""}, HTTP_ACCEPT="application/json")
    assert response.status_code == 409 and response.json()["code"] == "bad_frame"
    assert client.get(action_url(conv, "reply")).status_code == 405

    response = client.post(action_url(conv, "resolve"))
    assert response.status_code == 302 and response["Location"] == reverse(QUEUE)
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.RESOLVED


def test_a_losing_claim_is_told_who_has_it(
    queued: QueuedFactory, agent: Any, other_agent: Any
) -> None:
    conv = queued()
    assert login(agent).post(action_url(conv, "claim")).status_code == 302
    loser = login(other_agent)
    response = loser.post(action_url(conv, "claim"), follow=True)
    assert "Alex already claimed this conversation." in response.content.decode()
    response = loser.post(action_url(conv, "claim"), HTTP_ACCEPT="application/json")
    assert response.status_code == 409 and response.json()["code"] == "already_claimed"
    assert Escalation.objects.get().claimed_by == agent


def test_assign_release_and_hand_back_views(
    queued: QueuedFactory, agent: Any, other_agent: Any
) -> None:
    conv = queued()
    client = login(agent)
    page = client.get(conv_url(conv)).content.decode()
    assert f'<option value="{other_agent.pk}">Sam</option>' in page
    client.post(action_url(conv, "assign"), {"agent": other_agent.pk})
    conv.refresh_from_db()
    assert conv.assigned_agent == other_agent
    response = client.post(action_url(conv, "release"), follow=True)
    assert "Sam has this conversation." in response.content.decode()
    sam = login(other_agent)
    assert sam.post(action_url(conv, "release")).status_code == 302
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED
    assert sam.post(action_url(conv, "hand-back")).status_code == 302
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.BOT
    assert client.post(action_url(conv, "bogus")).status_code == 404


def test_canned_responses_are_managed_by_agents_and_inserted_filled(
    queued: QueuedFactory, agent: Any
) -> None:
    client = login(agent)
    response = client.post(
        reverse("admin:support_cannedresponse_add"),
        {"title": "Hello", "text": "Hi {customer_name}, this is {agent_name}.", "enabled": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert CannedResponse.objects.get().title == "Hello"
    conv = queued(name="Jordan")
    client.post(action_url(conv, "claim"))
    page = client.get(conv_url(conv)).content.decode()
    data = page.split('id="agent-canned" type="application/json">')[1].split("</script>")[0]
    assert json.loads(data)[0]["text"] == "Hi Jordan, this is Alex."
    # Holidays: agents may look, not change.
    Holiday.objects.create(date="2026-12-25", name="Christmas")
    assert client.get(reverse("admin:support_holiday_changelist")).status_code == 200
    assert client.get(reverse("admin:support_holiday_add")).status_code == 403


def test_bot_answer_shows_citations_passages_and_thumbs(queued: QueuedFactory, agent: Any) -> None:
    conv = queued()
    bot = conv.messages.create(
        role="bot",
        text="Hold the reset button [1].",
        citations=[
            {
                "n": 1,
                "document_id": 4,
                "chunk_id": 9,
                "title": "Router guide",
                "heading": "Router guide › Reset",
            }
        ],
        retrieved=[
            {
                "title": "Router guide",
                "heading": "Router guide › Reset",
                "score": 0.81,
                "text": "Hold <reset> for 10 seconds.",
            }
        ],
        retrieval_confidence=0.81,
        action="answer",
    )
    from support.models import Feedback

    Feedback.objects.create(message=bot, value="up")
    page = login(agent).get(conv_url(conv)).content.decode()
    assert 'href="/kb/4/#chunk-9"' in page and "Router guide › Reset" in page
    assert "Retrieved passages (1)" in page and "Hold &lt;reset&gt; for 10 seconds." in page
    assert "Customer: helpful" in page and "confidence 0.81" in page
