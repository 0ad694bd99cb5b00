"""The process-wide similarity: example phrasings embedded once, cache dropped with the backend."""

from __future__ import annotations

import numpy as np
import pytest

from support import backends
from support.handoff.escalation_rules import (
    REQUEST_EXAMPLES,
    ConversationState,
    EmbeddingSimilarity,
    embedding_similarity,
    escalation_decide,
)

from .conftest import BagOfWordsEncoder


def test_cosine_of_unit_vectors() -> None:
    encoder = BagOfWordsEncoder()
    sim = EmbeddingSimilarity(lambda: encoder)
    scores = sim("reset the router", ["reset the router", "pay an invoice"])
    assert scores.shape == (2,)
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] < 0.5
    assert sim("x", []).shape == (0,)


def test_examples_are_embedded_once_per_process() -> None:
    encoder = BagOfWordsEncoder()
    sim = EmbeddingSimilarity(lambda: encoder)
    sim("talk to a person", REQUEST_EXAMPLES)
    first = len(encoder.encoded)
    assert first == len(REQUEST_EXAMPLES) + 1
    sim("another message with a person", REQUEST_EXAMPLES)
    assert len(encoder.encoded) == first + 1  # only the new message
    sim("talk to a person", REQUEST_EXAMPLES)
    assert len(encoder.encoded) == first + 1  # fully cached


def test_the_cache_is_bounded() -> None:
    encoder = BagOfWordsEncoder()
    sim = EmbeddingSimilarity(lambda: encoder, max_entries=3)
    for n in range(10):
        sim(f"message {n}", ["a", "b"])
    assert len(sim._cache) == 3


def test_a_new_backend_drops_the_cache() -> None:
    first, second = BagOfWordsEncoder(), BagOfWordsEncoder()
    current = [first]
    sim = EmbeddingSimilarity(lambda: current[0])
    sim("hello", ["world"])
    current[0] = second
    sim("hello", ["world"])
    assert second.encoded == ["hello", "world"]


def test_the_default_similarity_uses_the_embedder_backend(bow_encoder: BagOfWordsEncoder) -> None:
    text = "i just want to talk, is that possible"  # the rules miss it: the embedding runs
    escalation_decide(ConversationState(text=text))
    assert text in bow_encoder.encoded
    assert set(REQUEST_EXAMPLES) <= set(bow_encoder.encoded)
    backends.reset_backends()
    embedding_similarity.clear()


def test_rules_only_never_touches_the_embedder(bow_encoder: BagOfWordsEncoder) -> None:
    escalation_decide(ConversationState(text="I would like a person on the line"), similarity=None)
    assert bow_encoder.encoded == []


def test_vectors_keep_the_callers_order() -> None:
    encoder = BagOfWordsEncoder()
    sim = EmbeddingSimilarity(lambda: encoder)
    sim.vectors(["b"])
    rows = sim.vectors(["a", "b", "a"])
    assert np.allclose(rows[0], rows[2])
    assert np.allclose(rows[1], encoder.encode(["b"])[0])
