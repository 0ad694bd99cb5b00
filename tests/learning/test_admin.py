"""The review queue in the admin: counts per state, filters, bulk approve / reject, editing the
answer (redacted again) and the grounding, who approved what and when; redacted text only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from support.learning.grounding import chunk_key
from support.models import Chunk, Example, ExampleGrounding, KnowledgeDocument
from tests.factories import agent_user, knowledge_admin_user

pytestmark = pytest.mark.django_db

LIST = reverse("admin:support_example_changelist")


def change_url(example: Example) -> str:
    return reverse("admin:support_example_change", args=[example.pk])


def make(**fields: Any) -> Example:
    values: dict[str, Any] = {
        "question": "How do I reset my router?",
        "answer": "Hold the reset button.",
        "source": Example.Source.AGENT_REPLY,
        "split_key": "k",
    }
    values.update(fields)
    return Example.objects.create(**values)


def ground(example: Example, chunk: Chunk) -> ExampleGrounding:
    return ExampleGrounding.objects.create(
        example=example,
        document=chunk.document,
        chunk=chunk,
        chunk_key=chunk_key(chunk.text),
        chunk_order=chunk.order,
        text=chunk.text,
        method=Example.GroundingMethod.INFERRED,
        score=0.7,
    )


@pytest.fixture
def reviewer() -> Client:
    client = Client()
    client.force_login(knowledge_admin_user(username="kim"))
    return client


def test_the_queue_counts_filters_and_shows_who_reviewed(
    kb: dict[str, KnowledgeDocument], reviewer: Client
) -> None:
    router = kb["router.md"].chunks.first()
    billing = kb["billing.md"].chunks.first()
    assert router is not None and billing is not None
    a = make(question="I'm [email], how do I reset my router?")
    ground(a, router)
    b = make(source=Example.Source.IMPORT, external_id="x-1", answer="Refunds take 5 days.")
    ground(b, billing)
    make(
        source=Example.Source.RATED_HELPFUL,
        state=Example.State.APPROVED,
        reviewed_at="2026-01-02T03:04:05Z",
    )

    page = reviewer.get(LIST)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Waiting for review: <strong>2</strong>" in html
    assert "Approved: <strong>1</strong>" in html and "Rejected: <strong>0</strong>" in html
    assert "I&#x27;m [email], how do I reset my router?" in html  # redacted, escaped
    assert "Approved by automatically, 2026-01-02 03:04" in html

    def ids(query: str) -> set[int]:
        return {e.pk for e in reviewer.get(LIST + query).context["cl"].result_list}

    assert ids("?source__exact=import") == {b.pk}
    assert ids("?state__exact=pending") == {a.pk, b.pk}
    assert ids(f"?document={kb['router.md'].pk}") == {a.pk}


def test_bulk_approve_and_reject_record_the_reviewer(kb: Any, reviewer: Client) -> None:
    a, b, c = make(), make(), make()
    response = reviewer.post(
        LIST, {"action": "approve_examples", "_selected_action": [a.pk, b.pk]}, follow=True
    )
    assert "2 example(s) approved." in response.content.decode()
    reviewer.post(LIST, {"action": "reject_examples", "_selected_action": [b.pk, c.pk]})
    a.refresh_from_db()
    b.refresh_from_db()
    c.refresh_from_db()
    assert a.state == Example.State.APPROVED and a.reviewed_by is not None
    assert a.reviewed_by.username == "kim" and a.reviewed_at is not None
    assert b.state == c.state == Example.State.REJECTED
    html = reviewer.get(LIST).content.decode()
    assert "Approved by kim" in html and "Rejected by kim" in html


def _form(example: Example, **data: Any) -> dict[str, Any]:
    rows = list(example.grounding.all())
    post: dict[str, Any] = {
        "answer": example.answer,
        "grounding-TOTAL_FORMS": str(len(rows) + 1),
        "grounding-INITIAL_FORMS": str(len(rows)),
        "grounding-MIN_NUM_FORMS": "0",
        "grounding-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        post[f"grounding-{i}-id"] = str(row.pk)
        post[f"grounding-{i}-example"] = str(example.pk)
        post[f"grounding-{i}-chunk"] = str(row.chunk_id or "")
    post[f"grounding-{len(rows)}-example"] = str(example.pk)
    post.update(data)
    return post


def test_editing_the_answer_redacts_it_and_the_grounding_can_be_chosen(
    kb: dict[str, KnowledgeDocument], reviewer: Client
) -> None:
    router = kb["router.md"].chunks.first()
    billing = kb["billing.md"].chunks.first()
    assert router is not None and billing is not None
    example = make()
    ground(example, router)
    page = reviewer.get(change_url(example))
    assert page.status_code == 200 and "Save and approve" in page.content.decode()

    # The reviewer rewrites the answer (with a phone number in it) and swaps the chunk.
    data = _form(example, answer="Press reset for 10 s, or call me on 555-123-4567.")
    data["grounding-0-DELETE"] = "on"
    data["grounding-1-chunk"] = str(billing.pk)
    response = reviewer.post(change_url(example), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    example.refresh_from_db()
    assert example.answer == "Press reset for 10 s, or call me on [phone]."
    assert example.state == Example.State.PENDING  # editing is no approval
    rows = list(example.grounding.all())
    assert [(r.chunk_id, r.method) for r in rows] == [(billing.pk, "reviewer")]
    assert example.grounding_method == "reviewer" and not example.knowledge_gap

    # No chunk left: a knowledge gap.
    data = _form(example)
    data["grounding-0-DELETE"] = "on"
    reviewer.post(change_url(example), data)
    example.refresh_from_db()
    assert example.knowledge_gap and not example.grounding.exists()

    # Save and approve.
    reviewer.post(change_url(example), _form(example, _approve="1"))
    example.refresh_from_db()
    assert example.state == Example.State.APPROVED and example.reviewed_by is not None


def test_agents_and_anonymous_users_see_no_examples(kb: Any) -> None:
    example = make()
    agent = Client()
    agent.force_login(agent_user(username="alex"))
    assert agent.get(LIST).status_code == 403
    assert agent.get(change_url(example)).status_code == 403
    assert Client().get(LIST).status_code == 302  # to the login page
