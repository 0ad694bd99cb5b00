"""The end-of-chat rating over /api/v1/ and in the admin."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from support.models import Conversation
from tests.api.conftest import Api, assert_problem, make_api
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _ended_api_conversation(agent: Any) -> tuple[str, Api]:
    staff = make_api(agent, ["read", "write"])
    created = staff.post("/api/v1/conversations/", {"customer_name": "Nia"}).json()
    cid = created["conversation"]["id"]
    Conversation.objects.filter(pk=cid).update(status=Conversation.Status.RESOLVED)
    return cid, Api(created["customer_token"])


def test_the_customer_token_rates_an_ended_conversation(agent: Any) -> None:
    cid, customer = _ended_api_conversation(agent)
    r = customer.post(f"/api/v1/conversations/{cid}/rating/", {"rating": 4, "comment": "Fast"})
    assert r.status_code == 200, r.content
    body = r.json()
    assert (body["rating"], body["rating_comment"]) == (4, "Fast") and body["rated_at"]
    again = customer.post(f"/api/v1/conversations/{cid}/rating/", {"rating": 2})
    assert again.json()["rating"] == 2  # a second rating replaces the first
    conv = Conversation.objects.get(pk=cid)
    assert (conv.rating, conv.rating_comment) == (2, "")


def test_bad_ratings_are_problem_documents(agent: Any) -> None:
    cid, customer = _ended_api_conversation(agent)
    path = f"/api/v1/conversations/{cid}/rating/"
    assert_problem(customer.post(path, {"rating": 6}), 422, "invalid_rating")
    assert_problem(customer.post(path, {"rating": "lots"}), 422, "validation_failed")
    assert_problem(customer.post(path, {}), 422, "validation_failed")
    assert_problem(customer.post(path, {"rating": 3, "comment": "z" * 1001}), 422, "invalid_rating")
    Conversation.objects.filter(pk=cid).update(status=Conversation.Status.BOT)
    assert_problem(customer.post(path, {"rating": 3}), 409, "not_resolved")
    assert Conversation.objects.get(pk=cid).rating is None


def test_only_the_customer_or_a_write_token_on_an_api_conversation_rates(
    agent: Any, agent_api: Api
) -> None:
    widget = Conversation.objects.create(status=Conversation.Status.RESOLVED)
    r = agent_api.post(f"/api/v1/conversations/{widget.pk.hex}/rating/", {"rating": 5})
    assert_problem(r, 403, "permission_denied")
    cid, customer = _ended_api_conversation(agent)
    r = customer.post(f"/api/v1/conversations/{widget.pk.hex}/rating/", {"rating": 5})
    assert_problem(r, 404, "conversation_not_found")  # another conversation than the token's
    reader = make_api(agent, ["read"])
    assert_problem(reader.post(f"/api/v1/conversations/{cid}/rating/", {"rating": 5}), 403,
                   "scope_missing")  # fmt: skip
    assert agent_api.post(f"/api/v1/conversations/{cid}/rating/", {"rating": 5}).status_code == 200


def test_the_admin_conversation_page_shows_the_rating() -> None:
    conv = Conversation.objects.create(
        status=Conversation.Status.RESOLVED, rating=2, rating_comment="Took <b>ages</b>"
    )
    client = Client()
    client.force_login(UserFactory(username="root", is_superuser=True))
    page = client.get(f"/admin/support/conversation/{conv.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Rating" in html and "Took &lt;b&gt;ages&lt;/b&gt;" in html
    # Shown, not editable: the rating is the customer's.
    assert 'name="rating"' not in html and 'name="rating_comment"' not in html
    listing = client.get("/admin/support/conversation/", {"rating": 2})
    assert listing.status_code == 200 and conv.pk.hex[:8] in listing.content.decode()
