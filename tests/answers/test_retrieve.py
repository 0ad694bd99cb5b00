"""Each turn is answered for itself: the history shapes the search only for a message that
refers to it, and only while the result is still about the message."""

from __future__ import annotations

import pytest

from support.answers.retrieve import context_wins, covers, needs_context
from support.retrieval import Passage, SearchResult


def _result(confidence: float, *texts: str) -> SearchResult:
    passages = tuple(
        Passage(i, i, f"d{i}.md", f"Doc {i}", "", (), None, "", t, 0.5, 0.5, 1.0, i)
        for i, t in enumerate(texts, 1)
    )
    return SearchResult("q", passages, confidence, 1, 1.0)


@pytest.mark.parametrize(
    "text",
    [
        "How long does it take?",
        "and for my wife?",
        "What about kids?",
        "Can they apply online?",
        "Is that free?",
        "the requirements?",
    ],
)
def test_messages_that_refer_to_the_conversation(text: str) -> None:
    assert needs_context(text)


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "How do I reset my router to factory settings?",
        "Can I take my plan when moving house?",
        "What does error code ERR-4032 mean?",
    ],
)
def test_messages_that_stand_alone(text: str) -> None:
    assert not needs_context(text)


def test_the_contextual_search_wins_only_when_more_confident_and_still_about_the_message() -> None:
    alone = _result(0.2, "Gift cards never expire.")
    about = _result(0.8, "Refunds take 5 days for a gift card bought online.")
    elsewhere = _result(0.9, "All plans have unlimited data.")
    assert context_wins("and how long does it take for refunds?", alone, about)
    # More confident, but about the earlier question: the message's own words are not there.
    assert not covers(elsewhere, "and what about refunds for gift cards?")
    assert not context_wins("and what about refunds for gift cards?", alone, elsewhere)
    # A message that stands alone is never searched with the history.
    assert not context_wins("What is the capital of France?", alone, about)
    assert not context_wins("how long does it take?", _result(0.95, "x"), about)
