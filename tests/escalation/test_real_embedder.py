"""The whole decision with the real embedder (all-MiniLM-L6-v2) and the seeded topics."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from decimal import Decimal

import pytest

from support.handoff.escalation_rules import (
    CUSTOMER_REQUEST,
    ConversationState,
    EmbeddingSimilarity,
    TopicRule,
    escalation_decide,
)

from .test_decide import MUST_NOT_ESCALATE, REQUESTS


@pytest.fixture(scope="module")
def similarity() -> Iterator[EmbeddingSimilarity]:
    from support.search.embedder import EmbedderUnavailable, SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    try:
        embedder.encode(["warm up"])
    except EmbedderUnavailable as exc:  # pragma: no cover - the model package is a dependency
        pytest.skip(str(exc))
    yield EmbeddingSimilarity(lambda: embedder)


@pytest.fixture(scope="module")
def seeded_topics() -> tuple[TopicRule, ...]:
    mig = importlib.import_module("support.migrations.0003_sensitivetopic")
    return tuple(
        TopicRule(
            name=t["name"],
            keywords=tuple(k for k in t["keywords"].splitlines() if k.strip()),
            examples=tuple(e for e in t["examples"].splitlines() if e.strip()),
            amount_threshold=Decimal(t["amount_threshold"]) if t.get("amount_threshold") else None,
            customer_message=t["customer_message"],
        )
        for t in mig.DEFAULT_TOPICS
    )


@pytest.mark.parametrize("text", REQUESTS)
def test_requests(text: str, similarity: EmbeddingSimilarity) -> None:
    decision = escalation_decide(ConversationState(text=text), similarity=similarity)
    assert CUSTOMER_REQUEST in decision.reasons


@pytest.mark.parametrize("text", MUST_NOT_ESCALATE)
def test_ordinary_messages(
    text: str, similarity: EmbeddingSimilarity, seeded_topics: tuple[TopicRule, ...]
) -> None:
    state = ConversationState(text=text, topics=seeded_topics)
    decision = escalation_decide(state, similarity=similarity)
    assert not decision.escalate, decision.reasons


# Requests the rules do not read; the closeness to the example phrasings does.
@pytest.mark.parametrize(
    "text",
    [
        "hook me up with an agent",
        "I'd like to have a word with one of your staff",
        "I want to talk to someone who knows",
        "Prefiero un humano",
    ],
)
def test_requests_only_the_embeddings_catch(text: str, similarity: EmbeddingSimilarity) -> None:
    assert not escalation_decide(ConversationState(text=text), similarity=None).escalate
    decision = escalation_decide(ConversationState(text=text), similarity=similarity)
    assert decision.reasons == (CUSTOMER_REQUEST,)


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("I will take legal action against your company", "Legal threat"),
        ("please erase my data and close my account", "Account deletion"),
        ("someone logged into my account from another country", "Security incident"),
        ("I want my money back, I paid 899 euros", "Large refund"),
    ],
)
def test_seeded_topics(
    text: str, topic: str, similarity: EmbeddingSimilarity, seeded_topics: tuple[TopicRule, ...]
) -> None:
    state = ConversationState(text=text, topics=seeded_topics)
    assert topic in escalation_decide(state, similarity=similarity).topics
