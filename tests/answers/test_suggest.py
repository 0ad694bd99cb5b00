"""A decline's suggested topics (support.answers.suggest) and the decline itself (issue 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support import backends
from support.answers.cite import DECLINE_TEXT
from support.answers.pipeline import answer_compose
from support.answers.suggest import MAX_TOPIC_CHARS, topics_suggest
from support.ask import ask_result
from tests.fakes import FakeChatModel


def passage(doc: int, chunk: int, title: str, *path: str) -> dict[str, Any]:
    return {
        "document_id": doc,
        "chunk_id": chunk,
        "title": title,
        "heading": " › ".join((title, *path)),
        "text": "...",
    }


def test_the_sections_of_the_two_best_distinct_documents() -> None:
    passages = [
        passage(1, 11, "Troubleshooting", "Factory reset"),
        passage(1, 12, "Troubleshooting", "Restarting the router"),
        passage(2, 21, "Billing", "Late fees"),
        passage(3, 31, "Moving house"),
    ]
    assert topics_suggest(passages) == (
        {"text": "Factory reset", "title": "Troubleshooting", "document_id": 1, "chunk_id": 11},
        {"text": "Late fees", "title": "Billing", "document_id": 2, "chunk_id": 21},
    )


def test_the_deepest_heading_or_else_the_title() -> None:
    passages = [
        passage(1, 11, "Getting started", "Activation", "Engineer visit"),
        passage(2, 21, "Moving house"),
    ]
    assert [s["text"] for s in topics_suggest(passages)] == ["Engineer visit", "Moving house"]


def test_an_faq_question_is_the_topic_and_long_ones_are_cut() -> None:
    question = "Can I keep my old phone number when I switch to you from another provider? " * 2
    passages = [passage(5, 51, "Frequently asked questions", question.strip())]
    (only,) = topics_suggest(passages)
    assert only["text"].startswith("Can I keep my old phone number")
    assert len(only["text"]) <= MAX_TOPIC_CHARS and only["text"].endswith("…")


def test_same_topic_twice_and_passages_without_a_document_are_skipped() -> None:
    passages = [
        {"title": "No id", "heading": "No id › X"},
        passage(1, 11, "Router", "Reset"),
        passage(2, 21, "Router (old)", "Reset"),
        passage(3, 31, "Billing", "Invoices"),
    ]
    assert [s["text"] for s in topics_suggest(passages)] == ["Reset", "Invoices"]
    assert topics_suggest([]) == ()


@pytest.mark.django_db
def test_a_decline_offers_a_person_and_the_closest_topics(kb: Path) -> None:
    fake = FakeChatModel(answer="Anything.")
    backends.set_backend("chat_model", fake)
    draft = answer_compose(question="What is the boiling point of mercury in kelvin?")
    assert draft.action == "escalate" and fake.calls == 0
    assert draft.text == DECLINE_TEXT
    assert draft.text == "I'm not sure about that — could you rephrase, or shall I get a person?"
    titles = {s["title"] for s in draft.suggestions}
    assert titles == {"Returns and refunds", "Gift cards"}  # both documents, one topic each
    texts = {s["text"] for s in draft.suggestions}
    assert texts & {"Returning an item", "Refund timing"} and "Gift cards" in texts
    # ask --json carries them; a decline alone hands over to nobody.
    report = ask_result(draft, "What is the boiling point of mercury in kelvin?")
    assert report["suggestions"] == list(draft.suggestions)
    assert report["action"] == "escalate" and report["reasons"] == []


@pytest.mark.django_db
def test_an_answer_has_no_suggestions(kb: Path) -> None:
    backends.set_backend("chat_model", FakeChatModel(answer="Within 30 days of delivery [1]."))
    draft = answer_compose(question="How many days do I have to return an item?")
    assert draft.action in ("answer", "extractive") and draft.suggestions == ()
