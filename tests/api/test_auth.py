"""Tokens, scopes, roles, customer tokens, rate limits and problem documents."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from support import conversations
from support.api.tokens import token_create, token_revoke
from support.models import ApiToken, Conversation
from tests.api.conftest import Api, assert_problem, make_api

pytestmark = pytest.mark.django_db


def test_no_token_bad_token_revoked_and_expired(agent: Any) -> None:
    assert_problem(Api(None).get("/api/v1/conversations/"), 401, "not_authenticated")
    assert_problem(Api("sbt_nope_nope").get("/api/v1/conversations/"), 401, "token_invalid")
    r = Api(None).get("/api/v1/conversations/", headers={"Authorization": "Basic YTpi"})
    assert_problem(r, 401, "token_invalid")
    new = token_create(user=agent, name="t", scopes=["read"])
    api = Api(new.plaintext)
    assert api.get("/api/v1/conversations/").status_code == 200
    forged = new.plaintext[:-4] + "AAAA"
    assert_problem(Api(forged).get("/api/v1/conversations/"), 401, "token_invalid")
    token_revoke(token_id=new.token.pk)
    assert_problem(api.get("/api/v1/conversations/"), 401, "token_revoked")
    expired = token_create(
        user=agent, name="old", scopes=["read"], expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert_problem(Api(expired.plaintext).get("/api/v1/conversations/"), 401, "token_revoked")


def test_tokens_are_stored_hashed_with_last_use(agent: Any) -> None:
    new = token_create(user=agent, name="crm", scopes=["read"])
    secret = new.plaintext.rsplit("_", 1)[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM support_apitoken")
        rows = cursor.fetchall()
    assert not any(secret in str(value) for row in rows for value in row)
    assert new.token.last_used_at is None
    Api(new.plaintext).get("/api/v1/conversations/")
    assert ApiToken.objects.get(pk=new.token.pk).last_used_at is not None


def test_admin_creates_a_token_shown_once_and_revokes_it(admin_user: Any, agent: Any) -> None:
    client = Client()
    client.force_login(admin_user)
    response = client.post(
        "/admin/support/apitoken/add/",
        {"user": agent.pk, "name": "crm sync", "scopes": ["read", "agent"]},
        follow=True,
    )
    page = response.content.decode()
    shown = re.findall(r"sbt_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}", page)
    assert len(shown) == 1
    token = ApiToken.objects.get(name="crm sync")
    assert token.scopes == ["read", "agent"] and token.user == agent
    assert Api(shown[0]).get("/api/v1/escalations/").status_code == 200
    # Not shown again on the token's page.
    again = client.get(f"/admin/support/apitoken/{token.pk}/change/").content.decode()
    assert shown[0] not in again
    client.post(
        "/admin/support/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
    )
    assert_problem(Api(shown[0]).get("/api/v1/escalations/"), 401, "token_revoked")


def test_scopes_and_roles(agent: Any, kadmin: Any) -> None:
    read_only = make_api(agent, ["read"])
    conv = conversations.conversation_start()
    r = read_only.post(f"/api/v1/conversations/{conv.pk.hex}/close/")
    assert_problem(r, 403, "scope_missing")
    # A knowledge admin's token, whatever its scopes, reads no conversations (their role).
    k = make_api(kadmin, ["read", "write", "agent", "knowledge"])
    assert_problem(k.get("/api/v1/conversations/"), 403, "permission_denied")
    assert_problem(k.get("/api/v1/escalations/"), 403, "permission_denied")
    assert k.get("/api/v1/documents/").status_code == 200
    # An agent does not manage the knowledge base.
    a = make_api(agent, ["read", "write", "agent", "knowledge"])
    r = a.post("/api/v1/documents/", {"file": b""}, multipart=True)
    assert_problem(r, 403, "permission_denied")
    # Webhooks are for whoever holds the webhook permissions (superusers by default).
    assert_problem(a.get("/api/v1/webhooks/"), 403, "permission_denied")


def test_customer_token_reaches_only_its_conversation(agent: Any) -> None:
    staff = make_api(agent, ["read", "write"])
    created = staff.post("/api/v1/conversations/", {"customer_name": "Ida"})
    assert created.status_code == 201
    body = created.json()
    own = body["conversation"]["id"]
    customer = Api(body["customer_token"])
    other = conversations.conversation_start(customer_name="Someone else")
    assert customer.get(f"/api/v1/conversations/{own}/").status_code == 200
    assert_problem(
        customer.get(f"/api/v1/conversations/{other.pk.hex}/"), 404, "conversation_not_found"
    )
    assert_problem(
        customer.get(f"/api/v1/conversations/{other.pk.hex}/messages/"),
        404,
        "conversation_not_found",
    )
    listed = customer.get("/api/v1/conversations/").json()["results"]
    assert [c["id"] for c in listed] == [own]
    assert_problem(customer.get("/api/v1/escalations/"), 403, "permission_denied")
    assert_problem(customer.get("/api/v1/documents/"), 403, "permission_denied")
    r = customer.post(f"/api/v1/conversations/{own}/messages/", {"role": "agent", "text": "hi"})
    assert_problem(r, 403, "scope_missing")


def test_rate_limit_per_token(agent: Any) -> None:
    limited = make_api(agent, ["read"], rate_limit_per_minute=3)
    other = make_api(agent, ["read"], rate_limit_per_minute=3)
    for _ in range(3):
        assert limited.get("/api/v1/conversations/").status_code == 200
    r = limited.get("/api/v1/conversations/")
    body = assert_problem(r, 429, "rate_limited")
    assert int(r["Retry-After"]) >= 1 and body["retry_after"] >= 1
    assert other.get("/api/v1/conversations/").status_code == 200  # per token


def test_every_error_is_a_problem_document(agent_api: Api) -> None:
    assert_problem(agent_api.get("/api/v1/nothing-here/"), 404, "not_found")
    assert_problem(agent_api.delete("/api/v1/conversations/"), 405, "method_not_allowed")
    r = agent_api.post("/api/v1/conversations/", "{not json", content_type="application/json")
    assert_problem(r, 400, "bad_request")
    r = agent_api.post("/api/v1/conversations/", {"customer_email": "not an address"})
    body = assert_problem(r, 422, "validation_failed")
    assert "customer_email" in body["errors"]
    r = agent_api.post("/api/v1/conversations/", "x", content_type="text/csv")
    assert_problem(r, 415, "unsupported_media_type")
    r = agent_api.get("/api/v1/conversations/", created_after="yesterday")
    assert_problem(r, 422, "validation_failed")
    # Problem types resolve to a description.
    described = Client().get("/api/v1/problems/rate_limited/").json()
    assert described["status"] == 429


def test_domain_errors_map_to_stable_codes(agent_api: Api, agent: Any) -> None:
    conv = conversations.conversation_start()
    r = agent_api.post(f"/api/v1/escalations/{conv.pk.hex}/claim/")
    assert_problem(r, 409, "not_queued")
    Conversation.objects.filter(pk=conv.pk).update(status="resolved")
    staff = make_api(agent, ["read", "write"])
    conv2 = staff.post("/api/v1/conversations/", {}).json()["conversation"]["id"]
    Conversation.objects.filter(pk=conv2).update(status="resolved")
    r = staff.post(f"/api/v1/conversations/{conv2}/messages/", {"text": "hello?"})
    assert_problem(r, 409, "conversation_closed")


def test_server_errors_are_problems_too(agent_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from support.api import views

    def broken(**_: Any) -> Any:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(views.conversations, "conversation_start", broken)
    with override_settings(DEBUG_PROPAGATE_EXCEPTIONS=False):
        r = agent_api.post("/api/v1/conversations/", {})
    body = assert_problem(r, 500, "server_error")
    assert "fire" not in body["detail"]  # no internals leak
