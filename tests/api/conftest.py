"""API clients with real tokens (created by the token service, sent as Bearer headers)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from support.api.tokens import token_create
from tests.chat.conftest import chat_env  # noqa: F401  (fixture)
from tests.factories import UserFactory, agent_user, knowledge_admin_user
from tests.knowledge.conftest import kb_env, real_embedder  # noqa: F401  (fixtures)


class Api:
    """A test client that sends one token and decodes JSON (and problem) answers."""

    def __init__(self, token: str | None) -> None:
        self.client = Client()
        self.token = token

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        out = dict(headers or {})
        if self.token:
            out.setdefault("Authorization", f"Bearer {self.token}")
        return out

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(path, params, headers=self._headers(headers))

    def post(
        self, path: str, data: Any = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> Any:
        if "content_type" not in kw and not isinstance(data, dict | type(None)):
            kw["content_type"] = "application/json"
        if isinstance(data, dict) and "content_type" not in kw and not kw.pop("multipart", False):
            data = json.dumps(data)
            kw["content_type"] = "application/json"
        return self.client.post(path, data, headers=self._headers(headers), **kw)

    def patch(self, path: str, data: Any, headers: dict[str, str] | None = None) -> Any:
        return self.client.patch(
            path, json.dumps(data), content_type="application/json", headers=self._headers(headers)
        )

    def delete(self, path: str) -> Any:
        return self.client.delete(path, headers=self._headers(None))


def make_api(user: Any, scopes: Sequence[str], **kw: Any) -> Api:
    return Api(token_create(user=user, name="test", scopes=scopes, **kw).plaintext)


@pytest.fixture(autouse=True)
def _fresh_rate_counters() -> None:
    cache.clear()


@pytest.fixture
def agent() -> Any:
    return agent_user(username="alex", first_name="Alex")


@pytest.fixture
def agent_api(agent: Any) -> Api:
    return make_api(agent, ["read", "write", "agent"])


@pytest.fixture
def kadmin() -> Any:
    return knowledge_admin_user(username="kim")


@pytest.fixture
def knowledge_api(kadmin: Any) -> Api:
    return make_api(kadmin, ["read", "knowledge"])


@pytest.fixture
def admin_user() -> Any:
    return UserFactory(username="root", is_superuser=True)


@pytest.fixture
def admin_api(admin_user: Any) -> Api:
    return make_api(admin_user, ["read", "write", "knowledge", "agent"])


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"].endswith(f"/api/v1/problems/{code}/")
    assert body["title"] and body["detail"]
    return dict(body)
