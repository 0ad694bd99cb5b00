"""Admin and page hardening (issue #8, controls 5 and 7): login throttling, the
Content-Security-Policy of every page we serve, production cookie and header settings, and
escaping of customer-written text in the agent workspace, the admin and emails."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client, override_settings
from django.urls import reverse

from support.handoff import agents
from support.models import Chunk, Conversation, Feedback, KnowledgeDocument, Message
from tests.agents.conftest import make_queued
from tests.conftest import REPO_ROOT
from tests.factories import KnowledgeDocumentFactory, UserFactory, agent_user

LOGIN = "/admin/login/"
HOSTILE = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


# ---------------------------------------------------------------------- login throttling


def _try(client: Client, username: str, password: str, ip: str) -> int:
    response = client.post(
        LOGIN, {"username": username, "password": password, "next": "/admin/"}, REMOTE_ADDR=ip
    )
    return response.status_code


@pytest.mark.django_db
@override_settings(AXES_FAILURE_LIMIT=3)
def test_logins_lock_out_after_n_failures_per_username_and_ip() -> None:
    UserFactory(username="kim", password="right-password-123")
    UserFactory(username="sam", password="right-password-456")
    attacker = "203.0.113.9"
    for _ in range(2):
        assert _try(Client(), "kim", "guess", attacker) == 200  # the form again, with an error
    assert _try(Client(), "kim", "guess", attacker) == 429  # the third failure locks
    # Locked: even the right password is refused from there, and nobody is logged in.
    client = Client()
    assert _try(client, "kim", "right-password-123", attacker) == 429
    assert "_auth_user_id" not in client.session
    # Per username AND address: the real kim elsewhere, and sam from the same address, log in.
    assert _try(Client(), "kim", "right-password-123", "198.51.100.7") == 302
    assert _try(Client(), "sam", "right-password-456", attacker) == 302


@pytest.mark.django_db
@override_settings(AXES_FAILURE_LIMIT=3, AXES_COOLOFF_TIME=timedelta(seconds=1))
def test_a_lockout_expires_and_a_good_login_resets_the_count() -> None:
    UserFactory(username="kim", password="right-password-123")
    ip = "203.0.113.10"
    for _ in range(2):
        _try(Client(), "kim", "guess", ip)
    assert _try(Client(), "kim", "right-password-123", ip) == 302  # resets the failures
    for _ in range(2):
        assert _try(Client(), "kim", "guess", ip) == 200
    assert _try(Client(), "kim", "guess", ip) == 429
    time.sleep(1.2)
    assert _try(Client(), "kim", "right-password-123", ip) == 302


def test_the_lockout_is_configured_per_username_and_ip(settings: Any) -> None:
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert settings.MIDDLEWARE[-1] == "axes.middleware.AxesMiddleware"
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]
    assert settings.AXES_FAILURE_LIMIT == 5


# ---------------------------------------------------------------------- content security policy


def _policy(response: Any) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {
        part.split()[0]: " ".join(part.split()[1:]) for part in header.split(";") if part.strip()
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script" and "src" not in values and values.get("type") != "application/json":
            self.problems.append("inline <script>")
        for name, value in attrs:
            if name.startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
            if (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=javascript:...>")


def _assert_no_inline_code(html: str) -> None:
    """No inline script, event-handler attribute or javascript: URL in any tag."""
    tags = _Tags()
    tags.feed(html)
    assert not tags.problems, tags.problems


def _assert_strict(response: Any, *, host: str = "testserver") -> str:
    policy = _policy(response)
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'"
    assert policy["base-uri"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["form-action"] == "'self'"
    assert policy["connect-src"] == f"'self' wss://{host} ws://{host}"
    nonce = re.fullmatch(r"'self' 'nonce-([\w-]{16,})'", policy["style-src"])
    assert nonce is not None
    html = response.content.decode()
    _assert_no_inline_code(html)
    for tag in re.findall(r"<style\b[^>]*>", html, re.I):
        assert f'nonce="{nonce.group(1)}"' in tag
    return nonce.group(1)


@pytest.mark.django_db
def test_the_demo_page_has_a_strict_policy_and_a_fresh_nonce() -> None:
    first, second = Client().get("/"), Client().get("/")
    nonce = _assert_strict(first)
    assert nonce != _assert_strict(second)
    # The widget's script tag carries it, for the widget's own stylesheet fallback.
    assert re.search(rf'<script src="[^"]*widget\.js" nonce="{nonce}"', first.content.decode())
    assert first["X-Frame-Options"] == "DENY"
    assert "camera=()" in first["Permissions-Policy"]


@pytest.mark.django_db
def test_citation_pages_have_a_strict_policy_and_escape_document_text() -> None:
    doc = KnowledgeDocumentFactory(
        status=KnowledgeDocument.Status.READY, title=HOSTILE, source_url="javascript:alert(3)"
    )
    Chunk.objects.create(document=doc, order=0, text=HOSTILE, heading_path=[HOSTILE])
    response = Client().get(f"/kb/{doc.pk}/")
    assert response.status_code == 200
    _assert_strict(response)
    html = response.content.decode()
    assert HOSTILE not in html and "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html


@pytest.mark.django_db
def test_admin_pages_have_a_strict_policy_and_no_inline_scripts() -> None:
    response = Client().get(LOGIN)
    _assert_strict(response)
    agent = agent_user(username="alex")
    conv = make_queued(question=HOSTILE, name=HOSTILE)
    client = Client()
    client.force_login(agent)
    for url in (
        reverse("admin:index"),
        reverse("admin:support_escalationqueue_changelist"),
        reverse("admin:support_agent_conversation", args=[conv.pk]),
        reverse("admin:support_knowledgedocument_changelist"),
    ):
        page = client.get(url)
        assert page.status_code in (200, 403), url
        if page.status_code == 200:
            _assert_strict(page)


@override_settings(ALLOWED_HOSTS=["support.example.com"])
@pytest.mark.django_db
def test_websockets_may_connect_only_to_the_page_host_over_tls_when_secure() -> None:
    response = Client().get("/", HTTP_HOST="support.example.com", secure=True)
    assert _policy(response)["connect-src"] == "'self' wss://support.example.com"


def test_json_and_static_responses_need_no_policy() -> None:
    assert "Content-Security-Policy" not in Client().get("/healthz")


# ---------------------------------------------------------------------- production settings


def _production(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SUPPORT_", "AXES_"))
        and k not in ("DATABASE_URL", "REDIS_URL")
    }
    clean.update(
        DJANGO_SETTINGS_MODULE="chatbot.settings.production",
        DJANGO_SECRET_KEY="s" * 30 + "-a-production-like-secret-for-this-test-0123456789",
        DATABASE_URL="postgres://support@127.0.0.1:5432/unused",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="support.example.com",
        SUPPORT_DATA_DIR=str(tmp_path / "var"),
        **env,
    )
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=clean, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


_SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
names = ["SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
         "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT",
         "SECURE_CONTENT_TYPE_NOSNIFF", "X_FRAME_OPTIONS", "SECURE_PROXY_SSL_HEADER",
         "SECURE_REFERRER_POLICY", "MIDDLEWARE", "DEBUG"]
print(json.dumps({n: getattr(s, n) for n in names}))
"""


def test_check_deploy_passes_without_warnings_under_production_settings(tmp_path: Path) -> None:
    proc = _production(tmp_path, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues (0 silenced)." in proc.stdout


def test_production_cookies_and_headers_are_secure(tmp_path: Path) -> None:
    proc = _production(tmp_path, "-c", _SHOW_SETTINGS)
    assert proc.returncode == 0, proc.stderr
    values = json.loads(proc.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SESSION_COOKIE_HTTPONLY"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["SECURE_SSL_REDIRECT"] and values["SECURE_CONTENT_TYPE_NOSNIFF"]
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["SECURE_REFERRER_POLICY"] == "same-origin"
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert "support.security.ContentSecurityPolicyMiddleware" in values["MIDDLEWARE"]
    # Not behind a TLS proxy: a client's X-Forwarded-Proto is not trusted.
    direct = _production(tmp_path, "-c", _SHOW_SETTINGS, BEHIND_TLS_PROXY="false")
    assert json.loads(direct.stdout.strip().splitlines()[-1])["SECURE_PROXY_SSL_HEADER"] is None


# ---------------------------------------------------------------------- escaping


@pytest.mark.django_db
def test_customer_text_is_escaped_in_the_agent_workspace_and_admin() -> None:
    agent = agent_user(username="alex")
    conv = make_queued(question=HOSTILE, name=HOSTILE, email="kim@example.com")
    bot = Message.objects.create(
        conversation=conv,
        role="bot",
        text=HOSTILE,
        action="answer",
        retrieved=[{"title": HOSTILE, "heading": HOSTILE, "text": HOSTILE, "score": 0.5}],
        citations=[{"n": 1, "document_id": 1, "chunk_id": 1, "title": HOSTILE, "heading": HOSTILE}],
    )
    Feedback.objects.create(message=bot, value="down", comment=HOSTILE)
    client = Client()
    client.force_login(agent)
    pages = [
        reverse("admin:support_escalationqueue_changelist"),
        reverse("admin:support_agent_conversation", args=[conv.pk]),
    ]
    superuser = UserFactory(username="root", is_superuser=True)
    root = Client()
    root.force_login(superuser)
    admin_pages = [
        reverse("admin:support_conversation_change", args=[conv.pk]),
        reverse("admin:support_conversation_changelist"),
    ]
    for page_client, urls in ((client, pages), (root, admin_pages)):
        for url in urls:
            html = page_client.get(url).content.decode()
            assert HOSTILE not in html, url
            assert "<script>alert(2)" not in html and 'onerror="alert(1)"' not in html, url
    # JSON is data (agent.js puts it into the page with textContent), never sniffed as HTML.
    data = client.get(reverse("admin:support_agent_queue_json"))
    assert data["Content-Type"] == "application/json"
    assert data["X-Content-Type-Options"] == "nosniff"
    assert data.json()["waiting"][0]["customer_name"] == HOSTILE


@pytest.mark.django_db
def test_document_errors_are_escaped_in_the_admin() -> None:
    KnowledgeDocumentFactory(status=KnowledgeDocument.Status.FAILED, error=HOSTILE, title=HOSTILE)
    root = Client()
    root.force_login(UserFactory(username="root", is_superuser=True))
    html = root.get(reverse("admin:support_knowledgedocument_changelist")).content.decode()
    assert HOSTILE not in html and "&lt;script&gt;alert(2)&lt;/script&gt;" in html


@pytest.mark.django_db
def test_reply_emails_escape_customer_and_agent_text() -> None:
    agent = agent_user(username="alex", first_name="<b>Alex</b>")
    conv = make_queued(question=HOSTILE, name=HOSTILE, email="kim@example.com")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    agents.agent_reply_post(
        conversation_id=conv.pk, agent=agent, text=f"Hi! {HOSTILE}", send_email=True
    )
    (sent,) = mail.outbox
    html = sent.alternatives[0][0]
    assert HOSTILE not in html and "<b>Alex</b>" not in html
    # The customer's name, the question and the reply.
    assert html.count("&lt;script&gt;alert(2)&lt;/script&gt;") == 3
    assert f"Hi! {HOSTILE}" in sent.body  # plain text stays as written
    assert "\n" not in sent.subject and sent.to == ["kim@example.com"]
    assert Conversation.objects.get(pk=conv.pk).status == "agent"
