"""/metrics: protected (token or reports staff) and exposing the series from the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from support import roles
from support.models import Escalation
from support.reports.metrics import metrics_reset, metrics_snapshot
from tests.factories import UserFactory, agent_user
from tests.reports.scenario import Builder, build_day

pytestmark = pytest.mark.django_db
TOKEN = "scraper-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def fresh_ledger() -> Iterator[None]:
    metrics_reset()
    yield
    metrics_reset()


def samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrape(client: Client, **headers: str) -> Any:
    return client.get("/metrics", headers=headers)


def test_anonymous_and_a_wrong_token_are_refused(settings: Any) -> None:
    settings.SUPPORT_METRICS_TOKEN = TOKEN
    response = scrape(Client())
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert scrape(Client(), Authorization="Bearer not-the-token").status_code == 401
    assert b"support_" not in response.content


def test_without_a_token_setting_no_bearer_gets_in(settings: Any) -> None:
    settings.SUPPORT_METRICS_TOKEN = ""
    assert scrape(Client(), Authorization="Bearer ").status_code == 401


def test_an_agent_is_refused_and_a_manager_reads_them() -> None:
    agent = Client()
    agent.force_login(agent_user())
    assert scrape(agent).status_code == 403
    manager = Client()
    manager.force_login(UserFactory(groups=[roles.SUPPORT_MANAGERS]))
    response = scrape(manager)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")


def test_the_series_count_what_the_tables_hold(settings: Any) -> None:
    settings.SUPPORT_METRICS_TOKEN = TOKEN
    build_day()
    # One conversation waiting in the queue now.
    b = Builder()
    waiting = b.conversation("waiting", timezone.now() - timedelta(minutes=5))
    b.customer(waiting, timezone.now() - timedelta(minutes=5))
    b.escalation(waiting, timezone.now() - timedelta(minutes=4), ["frustration"])
    response = scrape(Client(), Authorization=f"Bearer {TOKEN}")
    assert response.status_code == 200
    got = samples(response.content.decode())
    replies = "support_bot_replies_total"
    # Day D's six bot replies and c5's second answer: six answers and one decline.
    assert got[(replies, (("action", "answer"),))] == 6
    assert got[(replies, (("action", "escalate"),))] == 1
    assert got[(replies, (("action", "extractive"),))] == 0
    reasons = "support_escalations_total"
    assert got[(reasons, (("reason", "customer_request"),))] == 1
    assert got[(reasons, (("reason", "low_confidence"),))] == 1
    assert got[(reasons, (("reason", "frustration"),))] == 1
    assert got[(reasons, (("reason", "busy"),))] == 0
    # TTFT of 0.6, 0.4 and 0.8 s.
    assert got[("support_answer_ttft_seconds_count", ())] == 3
    assert got[("support_answer_ttft_seconds_sum", ())] == pytest.approx(1.8)
    assert got[("support_answer_ttft_seconds_bucket", (("le", "0.5"),))] == 1
    assert got[("support_answer_ttft_seconds_bucket", (("le", "1.0"),))] == 3
    assert got[("support_answer_ttft_seconds_bucket", (("le", "+Inf"),))] == 3
    # c3 waited 4 minutes for its claim.
    assert got[("support_queue_wait_seconds_count", ())] == 1
    assert got[("support_queue_wait_seconds_sum", ())] == pytest.approx(240.0)
    assert got[("support_queue_wait_seconds_bucket", (("le", "120.0"),))] == 0
    assert got[("support_queue_wait_seconds_bucket", (("le", "300.0"),))] == 1
    assert got[("support_queue_depth", (("state", "waiting"),))] == 1
    assert got[("support_queue_depth", (("state", "with_agent"),))] == 0
    assert ("support_answers_pending", ()) in got


def test_counters_grow_with_new_rows_between_scrapes() -> None:
    b = Builder()
    now = timezone.now()
    conv = b.conversation("c", now - timedelta(hours=2))
    q = b.customer(conv, now - timedelta(hours=2))
    b.answer(conv, q, now - timedelta(hours=2), ttft_ms=300)
    first = metrics_snapshot(now=now).totals
    assert first.answers["answer"] == 1
    # A reply stored a second ago is counted at once (read afresh), and once settled it stays
    # counted exactly once.
    q2 = b.customer(conv, now - timedelta(seconds=2))
    b.answer(conv, q2, now - timedelta(seconds=1), action="escalate", reason="no_facts")
    second = metrics_snapshot(now=now).totals
    assert (second.answers["answer"], second.answers["escalate"]) == (1, 1)
    later = metrics_snapshot(now=now + timedelta(minutes=5)).totals
    again = metrics_snapshot(now=now + timedelta(minutes=6)).totals
    assert later.answers == again.answers == {"answer": 1, "escalate": 1}
    assert later.ttft.count == 1
    # A claim long after the hand-over is counted when it happens.
    esc = b.escalation(conv, now - timedelta(minutes=30), ["customer_request"])
    Escalation.objects.filter(pk=esc.pk).update(claimed_at=now + timedelta(minutes=7))
    claimed = metrics_snapshot(now=now + timedelta(minutes=20)).totals
    assert claimed.queue_wait.count == 1
    assert claimed.queue_wait.sum_s == pytest.approx(37 * 60)
    assert metrics_snapshot(now=now + timedelta(minutes=30)).totals.queue_wait.count == 1
