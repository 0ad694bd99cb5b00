"""The report page in the admin: the numbers of the hand-built day, who may see it, the CSV
export (the same rows as the page's tables) and the inline SVG charts."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client

from support import roles
from tests.factories import UserFactory, agent_user, knowledge_admin_user
from tests.reports.scenario import build_day

pytestmark = pytest.mark.django_db
URL = "/admin/support/reportday/"
DAY = {"start": "2026-03-10", "end": "2026-03-10"}
SVG_NS = "{http://www.w3.org/2000/svg}"


class Tables(HTMLParser):
    """The cells of each `data-report-table` section's table, as the browser shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._key: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and a.get("data-report-table"):
            self._key = a["data-report-table"]
            self.tables[self._key] = []
        elif self._key and tag == "tr":
            self._row = []
        elif self._row is not None and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._key:
            self.tables[self._key].append(self._row)
            self._row = None
        elif tag == "table":
            self._key = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def page_tables(html: str) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(html)
    return parser.tables


@pytest.fixture
def day(settings: Any) -> dict[str, Any]:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    settings.SUPPORT_REPORT_VCPU_HOUR_PRICE = 0.036
    return build_day()


@pytest.fixture
def manager() -> Client:
    client = Client()
    client.force_login(UserFactory(groups=[roles.SUPPORT_MANAGERS]))
    return client


def test_the_page_shows_the_days_numbers(day: dict[str, Any], manager: Client) -> None:
    response = manager.get(URL, DAY)
    assert response.status_code == 200
    tables = page_tables(response.content.decode())
    summary = {row[0]: row[1:] for row in tables["summary"][1:]}
    # The figures of tests/reports/test_measures.py, as the page shows them.
    assert summary["conversations"] == ["7", ""]
    assert summary["opened without a message"] == ["1", ""]
    assert summary["bot involvement"] == ["6", "85.71"]
    assert summary["bot resolutions"] == ["4", "66.67"]
    assert summary["confirmed"][0] == "1" and summary["assumed"][0] == "3"
    assert summary["reopened"][0] == "1"
    assert summary["handed over"] == ["1", "14.29"]
    assert summary["durable bot resolutions"] == ["3", "75"]
    reasons = {row[0]: row[1:] for row in tables["reasons"][1:]}
    assert reasons["customer_request"] == ["1", "100"]
    assert reasons["frustration"] == ["0", "0"]
    actions = {row[0]: row[1] for row in tables["actions"][1:]}
    # Bot replies of day D: c1 c2 c3 (a decline) c4 c5 c8 (c5's second answer is on day 11).
    assert actions["answer"] == "5" and actions["escalate"] == "1"
    agents = tables["agents"][1:]
    assert [row[:5] for row in agents] == [["Sam", "1", "1", "1", "1"]]
    hours = {row[0]: row[1] for row in tables["hours"][1:]}
    assert hours["10:00"] == "1" and hours["22:00"] == "1"
    ratings = {row[0]: row[1] for row in tables["ratings"][1:]}
    assert ratings == {"1": "0", "2": "0", "3": "0", "4": "0", "5": "1"}
    html = response.content.decode()
    assert "Bot resolution rate" in html and "66.7 %" in html


def test_a_channel_filter_narrows_the_numbers(day: dict[str, Any], manager: Client) -> None:
    response = manager.get(URL, {**DAY, "channel": "api"})
    summary = {row[0]: row[1:] for row in page_tables(response.content.decode())["summary"][1:]}
    assert summary["conversations"] == ["1", ""]  # c5


def test_each_csv_holds_the_rows_of_its_table_on_the_page(
    day: dict[str, Any], manager: Client
) -> None:
    tables = page_tables(manager.get(URL, DAY).content.decode())
    assert set(tables) >= {"summary", "days", "hours", "reasons", "actions", "speed", "agents"}
    for key, shown in tables.items():
        response = manager.get(f"{URL}{key}.csv", DAY)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/csv")
        assert f"report-{key}-2026-03-10-2026-03-10.csv" in response["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        assert rows == shown, key
    assert manager.get(f"{URL}nonsense.csv", DAY).status_code == 404


def test_the_charts_are_well_formed_svg_with_a_title(day: dict[str, Any], manager: Client) -> None:
    html = manager.get(URL, DAY).content.decode()
    charts = re.findall(r"<svg [^>]*class=\"report-chart\".*?</svg>", html, flags=re.S)
    assert len(charts) >= 7
    for markup in charts:
        root = ET.fromstring(markup)
        assert root.tag == f"{SVG_NS}svg"
        title = root.find(f"{SVG_NS}title")
        assert title is not None and title.text
        assert root.get("aria-label") == title.text
        assert root.get("role") == "img"
    reasons = next(c for c in charts if "Handed-over conversations per reason" in c)
    assert "customer_request: 1" in reasons


def test_an_agents_name_is_escaped_in_the_charts(settings: Any, manager: Client) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    built = build_day()
    built["agent"].first_name = "<b>Sam & co</b>"
    built["agent"].save()
    html = manager.get(URL, DAY).content.decode()
    assert "<b>Sam" not in html
    for markup in re.findall(r"<svg [^>]*class=\"report-chart\".*?</svg>", html, flags=re.S):
        ET.fromstring(markup)


def test_bad_filters_are_explained_not_a_crash(manager: Client) -> None:
    response = manager.get(URL, {"start": "2026-03-10", "end": "2026-03-01"})
    assert response.status_code == 200
    assert "ends before it starts" in response.content.decode()
    response = manager.get(URL, {"start": "yesterday", "end": "2026-03-01"})
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert manager.get(f"{URL}summary.csv", {"start": "x"}).status_code == 404


def test_the_default_range_is_the_last_30_days(manager: Client) -> None:
    response = manager.get(URL)
    assert response.status_code == 200
    assert len(page_tables(response.content.decode())["days"]) == 31  # header + 30 days


@pytest.mark.parametrize("who", ["agent", "knowledge_admin", "not_staff"])
def test_refused_without_the_permission(who: str) -> None:
    user = {
        "agent": agent_user,
        "knowledge_admin": knowledge_admin_user,
        "not_staff": lambda: UserFactory(is_staff=False),
    }[who]()
    client = Client()
    client.force_login(user)
    response = client.get(URL, DAY)
    if who == "not_staff":
        assert response.status_code == 302 and "/login/" in response["Location"]
    else:
        assert response.status_code == 403
        assert client.get(f"{URL}summary.csv", DAY).status_code == 403
        assert b"Support report" not in client.get("/admin/").content


def test_refused_to_anonymous() -> None:
    response = Client().get(URL, DAY)
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert Client().get(f"{URL}summary.csv", DAY).status_code == 302


def test_the_admin_index_links_the_page_for_a_manager(manager: Client) -> None:
    assert URL.encode() in manager.get("/admin/").content


# --- the per-answer trace ----------------------------------------------------------------------
@pytest.fixture
def answered() -> dict[str, Any]:
    from support.models import Chunk, Conversation, Message
    from tests.factories import KnowledgeDocumentFactory

    doc = KnowledgeDocumentFactory(title="Billing guide")
    chunk = Chunk.objects.create(
        document=doc, order=0, text="Refunds take <em>five</em> working days to arrive."
    )
    other = Chunk.objects.create(document=doc, order=1, text="Invoices are sent monthly.")
    conv = Conversation.objects.create()
    question = Message.objects.create(
        conversation=conv, role=Message.Role.CUSTOMER, text="How long does a refund take?"
    )
    fact = "Refunds take five working days to arrive."
    trace = {
        "query": "how long does a refund take",
        "index_version": 7,
        "confidence": 0.8123,
        "passages": [
            {"chunk_id": chunk.pk, "document_id": doc.pk, "title": "Billing guide",
             "score": 0.8123, "dense": 0.71, "lexical": 0.55},
            {"chunk_id": other.pk, "document_id": doc.pk, "title": "Billing guide",
             "score": 0.4012, "dense": 0.39, "lexical": 0.0},
        ],
        "decide": {"route": "generate", "reason": None, "top_fact": 0.66, "signals": {"gap": 0.4}},
        "facts": [{"n": 1, "chunk_id": chunk.pk, "score": 0.66, "text": fact}],
        "generate": {"prompt_version": "answer_v3", "prompt_tokens": 312, "text": "Five days [1].",
                     "shown": True, "leaked": False, "failed": False, "problem": "", "tokens": 9},
        "check": {"reason": "grounded", "support": 0.91, "problem": None},
        "timings": {"retrieval_ms": 41.5, "ttft_ms": 610.0, "total_ms": 1450.0},
        "cpu_ms": 1234.5,
    }  # fmt: skip
    bot = Message.objects.create(
        conversation=conv,
        role=Message.Role.BOT,
        text="Refunds take five working days [1].",
        in_reply_to=question,
        action=Message.Action.ANSWER,
        reason="grounded",
        prompt_version="answer_v3",
        retrieval_confidence=0.8123,
        citations=[{"n": 1, "chunk_id": chunk.pk, "document_id": doc.pk}],
        timings={"retrieval_ms": 41.5, "ttft_ms": 610.0, "total_ms": 1450.0},
        trace=trace,
    )
    return {"bot": bot, "question": question, "chunk": chunk, "fact": fact, "conv": conv}


def trace_url(message: Any) -> str:
    return f"/admin/support/message/{message.pk}/trace/"


@pytest.mark.parametrize("who", ["superuser", "agent"])
def test_the_trace_shows_what_produced_the_answer(answered: dict[str, Any], who: str) -> None:
    client = Client()
    user = agent_user() if who == "agent" else UserFactory(is_superuser=True)
    client.force_login(user)
    response = client.get(trace_url(answered["bot"]))
    assert response.status_code == 200
    html = response.content.decode()
    t = response.context["t"]
    assert t.query == "how long does a refund take"
    assert [(p.chunk_id, p.score, p.cited) for p in t.passages] == [
        (answered["chunk"].pk, 0.8123, True),
        (answered["chunk"].pk + 1, 0.4012, False),
    ]
    assert "How long does a refund take?" in html
    # The passage's text is escaped, never markup; the fact and the decisions are shown.
    assert "Refunds take &lt;em&gt;five&lt;/em&gt; working days" in html
    assert "Invoices are sent monthly." in html
    assert answered["fact"] in html
    assert "0.8123" in html and "0.4012" in html
    assert "answer_v3" in html and "1234.5 ms" in html
    assert 'data-trace-stage="decide"' in html and 'data-trace-stage="check"' in html
    assert "ttft_ms" in html and "610.0" in html


def test_bot_messages_link_their_trace(answered: dict[str, Any]) -> None:
    client = Client()
    client.force_login(UserFactory(is_superuser=True))
    link = trace_url(answered["bot"]).encode()
    conversation = client.get(f"/admin/support/conversation/{answered['conv'].pk}/change/")
    assert conversation.status_code == 200 and link in conversation.content
    listing = client.get("/admin/support/message/")
    assert link in listing.content
    # Only bot messages have one.
    assert trace_url(answered["question"]).encode() not in listing.content
    assert client.get(trace_url(answered["question"])).status_code == 404


def test_the_trace_is_refused_to_non_staff_and_roles_without_messages(
    answered: dict[str, Any],
) -> None:
    url = trace_url(answered["bot"])
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    not_staff = Client()
    not_staff.force_login(UserFactory(is_staff=False))
    assert not_staff.get(url).status_code == 302
    for user in (knowledge_admin_user(), UserFactory(groups=[roles.SUPPORT_MANAGERS])):
        client = Client()
        client.force_login(user)
        assert client.get(url).status_code == 403


def test_an_old_answer_without_a_trace_still_opens(answered: dict[str, Any]) -> None:
    bot = answered["bot"]
    type(bot).objects.filter(pk=bot.pk).update(trace={}, retrieved=[{"chunk_id": None}])
    client = Client()
    client.force_login(UserFactory(is_superuser=True))
    response = client.get(trace_url(bot))
    assert response.status_code == 200
    assert "no recorded decisions" in response.content.decode()


# --- the document and agent filters -------------------------------------------------------------
def cite(conv: Any, *document_ids: int) -> None:
    from support.models import Message

    citations = [
        {"n": n, "document_id": d, "chunk_id": 100 + n, "title": f"doc {d}", "score": 0.5}
        for n, d in enumerate(document_ids, start=1)
    ]
    Message.objects.filter(conversation=conv, role=Message.Role.BOT).update(citations=citations)


def test_the_document_filter_keeps_the_conversations_citing_it(
    day: dict[str, Any], manager: Client
) -> None:
    from tests.factories import KnowledgeDocumentFactory

    billing, other = KnowledgeDocumentFactory(title="Billing"), KnowledgeDocumentFactory()
    cite(day["c1"], billing.pk)  # confirmed bot resolution
    cite(day["c4"], other.pk, billing.pk)  # thumbs down
    cite(day["c2"], other.pk)
    response = manager.get(URL, {**DAY, "document": billing.pk})
    tables = page_tables(response.content.decode())
    summary = {row[0]: row[1:] for row in tables["summary"][1:]}
    assert summary["conversations"] == ["2", ""]
    assert summary["bot resolutions"] == ["1", "50"]
    assert summary["thumbs up"][0] == "1" and summary["thumbs down"][0] == "1"
    assert "conversations citing “Billing”" in response.content.decode()
    csv_rows = list(
        csv.reader(io.StringIO(manager.get(f"{URL}summary.csv", {**DAY, "document": billing.pk})
                               .content.decode()))
    )  # fmt: skip
    assert csv_rows == tables["summary"]
    # The rollup is untouched by a filtered report: the whole day still reads 7.
    whole = page_tables(manager.get(URL, DAY).content.decode())["summary"]
    assert {row[0]: row[1] for row in whole[1:]}["conversations"] == "7"


def test_the_agent_filter_keeps_the_conversations_the_agent_worked(
    day: dict[str, Any], manager: Client
) -> None:
    response = manager.get(URL, {**DAY, "agent": day["agent"].pk})
    tables = page_tables(response.content.decode())
    summary = {row[0]: row[1:] for row in tables["summary"][1:]}
    assert summary["conversations"] == ["1", ""]  # c3
    assert summary["handed over"] == ["1", "100"]
    assert summary["resolved by a person"][0] == "1"
    assert [row[:5] for row in tables["agents"][1:]] == [["Sam", "1", "1", "1", "1"]]
    nobody = UserFactory()
    summary = page_tables(manager.get(URL, {**DAY, "agent": nobody.pk}).content.decode())
    assert {row[0]: row[1] for row in summary["summary"][1:]}["conversations"] == "0"


def test_an_unknown_document_or_agent_is_a_form_error(manager: Client) -> None:
    response = manager.get(URL, {**DAY, "document": 999999, "agent": "x"})
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
