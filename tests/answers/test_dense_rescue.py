"""decide's dense rescue (support.answers.decide.DENSE_RESCUE) with fake vectors: a question
declined for low retrieval confidence is answered when a sentence holding half of its words
also means it; the sentences are embedded only for such a question."""

from __future__ import annotations

import numpy as np
import pytest

from support.answers import fact_ranker
from support.answers.decide import DENSE_RESCUE, decide, decline_signals, dense_fact_score
from support.answers.reasons import AnswerReason
from support.answers.types import Question, Retrieved, Route
from support.retrieval import SearchResult
from tests.factories import passage

LATE_FEE = (
    "If a payment fails we try again after 5 days. "
    "After two failed attempts a late fee of 7.50 euros is added."
)
QUESTION = "how much is the fee if I pay late?"  # its terms: "fee", "pay", "late"


@pytest.fixture(autouse=True)
def _no_cached_vectors() -> None:
    fact_ranker.reset()  # the sentence cache is keyed by text alone


def _retrieved(confidence: float, query: str = QUESTION) -> Retrieved:
    return Retrieved(SearchResult(query, (passage(1, LATE_FEE),), confidence, 1, 0.0))


class Vectors:
    """The question on axis 0; the late-fee sentence at `cosine` to it, the others orthogonal.
    Records what it was asked to embed."""

    def __init__(self, cosine: float) -> None:
        self.cosine = cosine
        self.encoded: list[str] = []

    def question(self, text: str) -> np.ndarray:
        return np.array([1.0, 0.0], dtype=np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        self.encoded += texts
        c = self.cosine
        rows = [[c, np.sqrt(1 - c * c)] if "late fee" in t else [0.0, 1.0] for t in texts]
        return np.array(rows, dtype=np.float32)


def _decide(confidence: float, vectors: Vectors | None) -> object:
    return decide(
        Question(QUESTION),
        _retrieved(confidence),
        min_confidence=0.3,
        generate=True,
        question_vector=vectors.question if vectors else None,
        encode=vectors.encode if vectors else None,
    )


def test_a_low_confidence_question_a_sentence_means_is_answered() -> None:
    vectors = Vectors(cosine=0.9)
    decision = _decide(0.1, vectors)
    assert decision.route is Route.GENERATE
    assert decision.dense_fact is not None and decision.dense_fact >= DENSE_RESCUE
    assert any("7.50" in f.text for f in decision.facts)
    # Only the sentences whose word share could reach the bar were embedded.
    assert vectors.encoded == [LATE_FEE.split(". ")[1]]


def test_a_low_confidence_question_no_sentence_means_is_declined() -> None:
    decision = _decide(0.1, Vectors(cosine=0.2))
    assert decision.route is Route.DECLINE
    assert decision.reason is AnswerReason.LOW_CONFIDENCE
    assert decision.dense_fact is not None and decision.dense_fact < DENSE_RESCUE


def test_without_the_embedder_the_confidence_gate_declines() -> None:
    decision = _decide(0.1, None)
    assert decision.route is Route.DECLINE and decision.dense_fact is None


def test_a_confident_question_embeds_nothing() -> None:
    vectors = Vectors(cosine=0.9)
    decision = _decide(0.8, vectors)
    assert decision.route is Route.GENERATE
    assert decision.dense_fact is None and vectors.encoded == []


def test_a_question_no_sentence_holds_half_of_is_not_weighed() -> None:
    vectors = Vectors(cosine=1.0)
    off_topic = "what is the capital of France?"
    decision = decide(
        Question(off_topic),
        _retrieved(0.1, off_topic),
        min_confidence=0.3,
        generate=True,
        question_vector=vectors.question,
        encode=vectors.encode,
    )
    assert decision.route is Route.DECLINE and decision.dense_fact is None
    assert vectors.encoded == []


def test_the_score_is_word_share_times_cosine() -> None:
    vectors = Vectors(cosine=0.6)
    search = _retrieved(0.1).search
    score = dense_fact_score(QUESTION, search, vectors.question(QUESTION), vectors.encode)
    # The late-fee sentence holds "fee" and "late" of the question's 3 terms.
    assert score == pytest.approx(2 / 3 * 0.6, abs=1e-6)


def test_signals_judge_the_facts_of_a_low_confidence_decline() -> None:
    decision = _decide(0.1, None)
    assert decision.facts == ()
    signals = decline_signals(Question(QUESTION), _retrieved(0.1).search, dense_fact=0.42)
    assert signals["top_fact"] == pytest.approx(decision.top_score) and signals["top_fact"] > 0
    assert signals["dense_fact"] == 0.42
    assert "dense_fact" not in decline_signals(Question(QUESTION), _retrieved(0.1).search)
