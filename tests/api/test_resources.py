"""The resources of /api/v1/ against the real services and database."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.test import AsyncClient, Client

from support import conversations
from support.handoff.escalation import CUSTOMER_REQUEST, conversation_escalate
from support.models import (
    Conversation,
    IdempotencyRecord,
    KnowledgeDocument,
    Message,
    WebhookDelivery,
    WebhookSubscription,
)
from tests.api.conftest import Api, assert_problem, make_api

pytestmark = pytest.mark.django_db


def follow_pages(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    response = api.get(path, **params).json()
    pages = 0
    while True:
        pages += 1
        seen.extend(response["results"])
        if not response["next"]:
            break
        nxt = urlsplit(response["next"])
        assert nxt.scheme in ("http", "https") and nxt.path == path
        response = api.client.get(f"{nxt.path}?{nxt.query}", headers=api._headers(None)).json()
        assert pages < 50
    return seen


def test_conversation_list_filters_and_cursor_pages(agent_api: Api) -> None:
    made = [conversations.conversation_start(customer_name=f"c{i}") for i in range(5)]
    Conversation.objects.filter(pk=made[0].pk).update(status="resolved")
    everything = follow_pages(agent_api, "/api/v1/conversations/", page_size=2)
    assert [c["id"] for c in everything] == [c.pk.hex for c in reversed(made)]
    resolved = agent_api.get("/api/v1/conversations/", status="resolved").json()["results"]
    assert [c["id"] for c in resolved] == [made[0].pk.hex]
    page = agent_api.get("/api/v1/conversations/", page_size=2).json()
    assert page["next"] and page["previous"] is None and len(page["results"]) == 2
    one = agent_api.get(f"/api/v1/conversations/{made[1].pk.hex}/").json()
    assert one["customer_name"] == "c1" and one["url"].endswith(f"/{made[1].pk.hex}/")


def test_handoff_claim_reply_hand_back_close(agent_api: Api, agent: Any) -> None:
    staff = make_api(agent, ["read", "write"])
    created = staff.post("/api/v1/conversations/", {"customer_name": "Nia"}).json()
    cid = created["conversation"]["id"]
    customer = Api(created["customer_token"])
    posted = customer.post(
        f"/api/v1/conversations/{cid}/messages/", {"text": "Can a person help?", "client_id": "a1"}
    )
    assert posted.status_code == 201
    again = customer.post(
        f"/api/v1/conversations/{cid}/messages/", {"text": "Can a person help?", "client_id": "a1"}
    )
    assert again.status_code == 200 and again.json()["id"] == posted.json()["id"]
    status = customer.post(f"/api/v1/conversations/{cid}/handoff/").json()
    assert status["status"] == "queued"
    queue = agent_api.get("/api/v1/escalations/").json()
    assert [i["conversation_id"] for i in queue["waiting"]] == [cid]
    claimed = agent_api.post(f"/api/v1/escalations/{cid}/claim/").json()
    assert claimed["status"] == "agent" and claimed["assigned_agent"] == "Alex"
    reply = agent_api.post(
        f"/api/v1/conversations/{cid}/messages/", {"role": "agent", "text": "Hello, I'm Alex."}
    )
    assert reply.status_code == 201 and reply.json()["role"] == "agent"
    texts = [m["text"] for m in follow_pages(customer, f"/api/v1/conversations/{cid}/messages/")]
    assert "Hello, I'm Alex." in texts and "Can a person help?" in texts
    listed = follow_pages(customer, f"/api/v1/conversations/{cid}/messages/")
    assert not any(m["internal"] for m in listed)
    # The transcript's lines, by kind (docs/protocol.md); other messages have none.
    lines = [m["kind"] for m in listed if m["role"] == "system"]
    assert lines == ["queued", "claimed"]
    assert all(m["kind"] is None for m in listed if m["role"] != "system")
    # `source` is a bot answer's (docs/protocol.md): null for every other role.
    assert all(m["source"] is None for m in listed if m["role"] != "bot")
    answer = Message.objects.create(
        conversation_id=Conversation.objects.get(pk=cid).pk,
        role="bot",
        text="An approved answer.",
        trace={"source": "learned"},
    )
    listed = follow_pages(customer, f"/api/v1/conversations/{cid}/messages/")
    assert [m["source"] for m in listed if m["id"] == answer.pk] == ["learned"]
    back = agent_api.post(f"/api/v1/conversations/{cid}/hand-back/").json()
    assert back["status"] == "bot"
    conversation_escalate(
        conversation_id=Conversation.objects.get(pk=cid).pk, reasons=(CUSTOMER_REQUEST,)
    )
    agent_api.post(f"/api/v1/escalations/{cid}/claim/")
    closed = agent_api.post(f"/api/v1/conversations/{cid}/close/").json()
    assert closed["status"] == "resolved" and closed["resolved_at"]


def test_customer_messages_need_the_api_channel_for_staff(agent_api: Api) -> None:
    widget = conversations.conversation_start()  # a widget conversation: not for a staff token
    r = agent_api.post(f"/api/v1/conversations/{widget.pk.hex}/messages/", {"text": "hi"})
    assert_problem(r, 403, "permission_denied")


def test_documents_lifecycle(
    knowledge_api: Api, kb_env: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    f = SimpleUploadedFile("guide.md", b"# Guide\n\nHold the reset button for ten seconds.\n")
    with django_capture_on_commit_callbacks(execute=True):
        r = knowledge_api.client.post(
            "/api/v1/documents/",
            {"file": f, "title": "Guide"},
            headers=knowledge_api._headers(None),
        )
    assert r.status_code == 201, r.content
    doc_id = r.json()["id"]
    assert r["Location"].endswith(f"/api/v1/documents/{doc_id}/")
    doc = knowledge_api.get(f"/api/v1/documents/{doc_id}/").json()
    assert doc["status"] == "ready" and doc["chunk_count"] >= 1  # ingested by the (eager) worker
    dup = SimpleUploadedFile("copy.md", b"# Guide\n\nHold the reset button for ten seconds.\n")
    r = knowledge_api.client.post(
        "/api/v1/documents/", {"file": dup}, headers=knowledge_api._headers(None)
    )
    assert_problem(r, 409, "duplicate")
    bad = SimpleUploadedFile("evil.pdf", b"MZ\x90\x00 not a pdf")
    r = knowledge_api.client.post(
        "/api/v1/documents/", {"file": bad}, headers=knowledge_api._headers(None)
    )
    assert r.status_code == 422 and r.json()["code"]
    listed = knowledge_api.get("/api/v1/documents/", status="ready").json()["results"]
    assert [d["id"] for d in listed] == [doc_id]
    assert knowledge_api.post(f"/api/v1/documents/{doc_id}/disable/").json()["status"] == "disabled"
    assert knowledge_api.post(f"/api/v1/documents/{doc_id}/enable/").json()["status"] == "ready"
    assert knowledge_api.post(f"/api/v1/documents/{doc_id}/reindex/").json()["status"] in (
        "pending",
        "ready",
    )
    assert knowledge_api.delete(f"/api/v1/documents/{doc_id}/").status_code == 204
    assert not KnowledgeDocument.objects.filter(pk=doc_id).exists()
    assert_problem(knowledge_api.get(f"/api/v1/documents/{doc_id}/"), 404, "not_found")


def test_webhooks_crud_deliveries_redeliver_rotate(
    admin_api: Api, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SUPPORT_WEBHOOK_ALLOW_PRIVATE = False
    r = admin_api.post(
        "/api/v1/webhooks/", {"url": "http://127.0.0.1:8000/hook", "events": ["message.created"]}
    )
    assert_problem(r, 422, "webhook_url_forbidden")
    r = admin_api.post(
        "/api/v1/webhooks/", {"url": "https://hooks.example.com/x", "events": ["nope"]}
    )
    assert_problem(r, 422, "validation_failed")
    settings.SUPPORT_WEBHOOK_ALLOW_PRIVATE = True
    created = admin_api.post(
        "/api/v1/webhooks/",
        {"url": "http://127.0.0.1:9/hook", "events": ["conversation.created"], "name": "crm"},
    )
    assert created.status_code == 201
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    listed = admin_api.get("/api/v1/webhooks/").json()["results"]
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]
    changed = admin_api.patch(f"/api/v1/webhooks/{hook['id']}/", {"name": "crm-2"}).json()
    assert changed["name"] == "crm-2"
    rotated = admin_api.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret/").json()
    assert rotated["secret"] != hook["secret"] and rotated["rotation_ends_at"]
    settings.SUPPORT_WEBHOOK_TIMEOUT_S = 0.5
    with django_capture_on_commit_callbacks(execute=True):
        conversations.conversation_start()  # port 9 refuses: the delivery waits for a retry
    deliveries = admin_api.get(f"/api/v1/webhooks/{hook['id']}/deliveries/").json()["results"]
    assert len(deliveries) == 1 and deliveries[0]["state"] == "pending"
    did = deliveries[0]["id"]
    detail = admin_api.get(f"/api/v1/webhooks/{hook['id']}/deliveries/{did}/").json()
    assert detail["payload"]["type"] == "conversation.created"
    assert detail["log"][0]["outcome"] == "retry" and detail["log"][0]["error"]
    with django_capture_on_commit_callbacks(execute=True):
        r = admin_api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{did}/redeliver/")
    assert r.status_code == 202
    assert WebhookDelivery.objects.get(pk=did).log.filter(manual=True).count() == 1
    assert admin_api.delete(f"/api/v1/webhooks/{hook['id']}/").status_code == 204
    assert not WebhookSubscription.objects.exists()


def test_idempotency_key_replays_the_first_response(agent: Any) -> None:
    api = make_api(agent, ["read", "write"])
    key = {"Idempotency-Key": "create-7f3a"}
    first = api.post("/api/v1/conversations/", {"customer_name": "Once"}, headers=key)
    second = api.post("/api/v1/conversations/", {"customer_name": "Once"}, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.content == second.content and second["Idempotent-Replayed"] == "true"
    assert second["Location"] == first["Location"]
    assert Conversation.objects.filter(customer_name="Once").count() == 1
    r = api.post("/api/v1/conversations/", {"customer_name": "Other"}, headers=key)
    assert_problem(r, 422, "idempotency_key_reused")
    # Another token's key space is its own.
    other = make_api(agent, ["read", "write"])
    assert (
        other.post("/api/v1/conversations/", {"customer_name": "Once"}, headers=key).status_code
        == 201
    )
    # A request still running with the key: the retry is told to wait.
    record = IdempotencyRecord.objects.filter(key="create-7f3a").order_by("created_at").first()
    assert record is not None
    IdempotencyRecord.objects.filter(pk=record.pk).update(state="in_progress")
    r = api.post("/api/v1/conversations/", {"customer_name": "Once"}, headers=key)
    assert_problem(r, 409, "idempotency_in_progress")
    # Errors are replayed as well (a 4xx is the answer to that request).
    bad = {"Idempotency-Key": "bad-1"}
    one = api.post("/api/v1/conversations/", {"customer_email": "x"}, headers=bad)
    two = api.post("/api/v1/conversations/", {"customer_email": "x"}, headers=bad)
    assert one.status_code == two.status_code == 422 and two["Idempotent-Replayed"] == "true"


def test_idempotency_records_expire(agent: Any, settings: Any) -> None:
    from support.api.idempotency import idempotency_purge

    settings.SUPPORT_IDEMPOTENCY_TTL_S = 1
    api = make_api(agent, ["read", "write"])
    api.post("/api/v1/conversations/", {}, headers={"Idempotency-Key": "k"})
    IdempotencyRecord.objects.update(expires_at="2000-01-01T00:00:00Z")
    assert idempotency_purge() == 1
    again = api.post("/api/v1/conversations/", {}, headers={"Idempotency-Key": "k"})
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Conversation.objects.count() == 2


def test_ask_returns_the_json_of_ask_json(agent: Any, chat_env: Any, capsys: Any) -> None:
    api = make_api(agent, ["read"])
    r = api.post("/api/v1/ask/", {"question": "How do I reset my router?"})
    assert r.status_code == 200, r.content
    body = r.json()
    call_command("ask", "How do I reset my router?", "--json")
    cli = json.loads(capsys.readouterr().out)
    assert set(body) == set(cli)
    for key in ("answer", "action", "citations", "confidence", "grounded", "prompt_version"):
        assert body[key] == cli[key], key
    assert body["citations"] and body["answer"]


@pytest.mark.django_db(transaction=True)
async def test_ask_streams_server_sent_events(chat_env: Any) -> None:
    from asgiref.sync import sync_to_async

    from tests.factories import agent_user

    user = await sync_to_async(agent_user)(username="streamer")
    from support.api.tokens import token_create

    new = await sync_to_async(token_create)(user=user, name="sse", scopes=["read"])
    client = AsyncClient()
    response = await client.post(
        "/api/v1/ask/",
        json.dumps({"question": "How do I reset my router?", "stream": True}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {new.plaintext}", "Accept": "text/event-stream"},
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
    frames = [f for f in raw.split("\n\n") if f.startswith("event:")]
    kinds = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert kinds[-1] == "answer" and "delta" in kinds
    streamed = "".join(
        json.loads(f.split("data: ", 1)[1])["delta"] for f in frames if f.startswith("event: delta")
    )
    final = json.loads(frames[-1].split("data: ", 1)[1])
    assert final["answer"] and streamed.strip()
    assert final["citations"]


def test_schema_and_docs_page() -> None:
    client = Client()
    schema = client.get("/api/v1/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    doc = (
        json.loads(schema.content)
        if schema["Content-Type"].startswith("application/json")
        else None
    )
    if doc is None:
        import yaml  # type: ignore[import-untyped]

        doc = yaml.safe_load(schema.content)
    assert doc["openapi"].startswith("3.")
    paths = set(doc["paths"])
    for expected in (
        "/api/v1/conversations/",
        "/api/v1/conversations/{conversation_id}/messages/",
        "/api/v1/documents/",
        "/api/v1/escalations/",
        "/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver/",
        "/api/v1/ask/",
    ):
        assert expected in paths
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200 and b"swagger" in page.content.lower()
    assert "Content-Security-Policy" in page


def test_message_posted_by_agent_needs_the_claim(agent_api: Api) -> None:
    conv = conversations.conversation_start()
    r = agent_api.post(
        f"/api/v1/conversations/{conv.pk.hex}/messages/", {"role": "agent", "text": "hi"}
    )
    assert_problem(r, 409, "not_assigned")
    assert not Message.objects.filter(conversation=conv).exists()
