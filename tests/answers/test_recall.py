"""Answer memory's matching rule and its stage in the pipeline, with fakes: a question memory of
hand-made vectors, scripted searches and a scripted model (docs/learning.md, "Answer memory")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.test import override_settings

from support import backends
from support.answers.pipeline import answer_compose
from support.learning.answer_memory import answer_match
from support.models import Example
from support.retrieval import Passage, SearchResult
from support.search.memory import MemoryKeys, QuestionMemory
from tests.factories import passage
from tests.fakes import FakeChatModel

REFUNDS = (
    "Refunds reach your original payment method within 5 business days after we receive the item."
)
GIFT_CARDS = "Gift cards never expire and can be used for any order in our online shop."
QUESTION = "How long do refunds take to reach my original payment method?"
APPROVED = "Refunds reach your original payment method within 5 business days."


def _unit(*xs: float) -> np.ndarray:
    v = np.asarray(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


# Key 0 (the refunds question) names chunk 10, key 1 (another question) chunk 20.
KEY_VECTORS = np.stack([_unit(1, 0, 0, 0), _unit(0, 1, 0, 0)])
CLOSE = _unit(1, 0.2, 0, 0)  # cosine 0.98 to key 0, 0.20 to key 1
FAR = _unit(1, 0, 1, 0)  # cosine 0.71 to key 0


def _memory(example_ids: tuple[int, int] = (1, 2)) -> QuestionMemory:
    return QuestionMemory.build(
        MemoryKeys(
            example_ids=np.asarray(example_ids, dtype=np.int64),
            texts=(QUESTION, "Do gift cards expire?"),
            vectors=KEY_VECTORS,
            chunk_ids=((10,), (20,)),
        )
    )


def _passage(chunk_id: int, text: str, rank: int) -> Passage:
    return passage(chunk_id, text, rank=rank)


def _passages(*chunks: int) -> tuple[Passage, ...]:
    texts = {10: REFUNDS, 20: GIFT_CARDS}
    return tuple(
        _passage(c, texts.get(c, f"Unrelated page number {c} about delivery slots."), rank)
        for rank, c in enumerate(chunks, start=1)
    )


# -- the rule ------------------------------------------------------------------------------------
def test_a_close_question_whose_chunk_was_retrieved_matches() -> None:
    match = answer_match(
        memory=_memory(),
        query_vector=CLOSE,
        passages=_passages(30, 10, 20),
        min_similarity=0.9,
        top=3,
    )
    assert match is not None
    assert (match.example_id, match.chunk_id, match.rank) == (1, 10, 2)
    assert match.similarity == pytest.approx(float(CLOSE @ KEY_VECTORS[0]))


def test_the_same_question_with_retrieval_on_another_chunk_does_not_match() -> None:
    # Retrieval found chunk 20, which the less similar key names: the most similar key's chunk
    # is missing, so nothing matches (a weaker key is no fallback).
    assert (
        answer_match(
            memory=_memory(),
            query_vector=KEY_VECTORS[0],
            passages=_passages(20, 30, 40),
            min_similarity=0.9,
            top=3,
        )
        is None
    )


def test_a_chunk_only_the_key_itself_lifted_does_not_match() -> None:
    # Question memory ranked chunk 10 first because of the key; by its own text it is 4th.
    kwargs = {"memory": _memory(), "query_vector": CLOSE, "min_similarity": 0.9, "top": 3}
    passages = _passages(10, 30, 40)
    assert answer_match(passages=passages, own_ranking=(30, 40, 50, 10), **kwargs) is None
    match = answer_match(passages=passages, own_ranking=(30, 10, 40), **kwargs)
    assert match is not None and match.rank == 1  # cited where the passages have it


def test_the_chunk_must_be_among_the_top_passages() -> None:
    kwargs = {"memory": _memory(), "query_vector": CLOSE, "min_similarity": 0.9}
    assert answer_match(passages=_passages(30, 40, 50, 10), top=3, **kwargs) is None
    assert answer_match(passages=_passages(30, 40, 50, 10), top=4, **kwargs) is not None


def test_a_less_similar_question_does_not_match() -> None:
    kwargs = {"memory": _memory(), "passages": _passages(10), "top": 3}
    assert answer_match(query_vector=FAR, min_similarity=0.9, **kwargs) is None
    assert answer_match(query_vector=FAR, min_similarity=0.7, **kwargs) is not None


def test_no_memory_or_no_vector_matches_nothing() -> None:
    passages = _passages(10)
    assert (
        answer_match(memory=None, query_vector=CLOSE, passages=passages, min_similarity=0.5, top=3)
        is None
    )
    assert (
        answer_match(
            memory=_memory(), query_vector=None, passages=passages, min_similarity=0.5, top=3
        )
        is None
    )


# -- the stage in the pipeline -------------------------------------------------------------------
@pytest.fixture
def env(tmp_path: Path, db: None) -> Iterator[FakeChatModel]:
    """No index on disk (the decline rules' vocabulary checks find none), a scripted model."""
    fake = FakeChatModel(answer="Refunds take a while [1].")
    with override_settings(
        SUPPORT_DATA_DIR=tmp_path,
        MEDIA_ROOT=tmp_path / "media",
        SUPPORT_ANSWER_MEMORY=True,
        SUPPORT_ANSWER_MEMORY_MIN_SIMILARITY=0.9,
    ):
        backends.set_backend("chat_model", fake)
        yield fake
    backends.reset_backends()


def _example(answer: str = APPROVED, **fields: object) -> Example:
    values: dict[str, object] = {
        "question": QUESTION,
        "answer": answer,
        "source": Example.Source.AGENT_REPLY,
        "state": Example.State.APPROVED,
        "reviewed_at": "2026-12-02T10:00:00Z",
        "split_key": "k",
        **fields,
    }
    return Example.objects.create(**values)


def _search(
    memory: QuestionMemory | None,
    *chunks: int,
    vector: np.ndarray = CLOSE,
    confidence: float = 0.8,
    query: str = QUESTION,
) -> SearchResult:
    return SearchResult(
        query=query,
        passages=_passages(*chunks),
        confidence=confidence,
        index_version=1,
        elapsed_ms=1.0,
        query_vector=vector,
        memory=memory,
    )


def test_a_matched_approved_answer_is_the_reply_streamed_and_cited(env: FakeChatModel) -> None:
    example = _example()
    pieces: list[str] = []
    draft = answer_compose(
        question=QUESTION,
        search=_search(_memory((example.pk, 0)), 30, 10),
        on_delta=pieces.append,
    )
    assert draft.reason == "learned" and draft.action == "answer" and draft.source == "learned"
    assert draft.learned_example_id == example.pk
    assert draft.text == "Refunds reach your original payment method within 5 business days [2]."
    assert [c["chunk_id"] for c in draft.citations] == [10]
    assert "".join(pieces) == draft.text  # streamed
    assert env.calls == 0  # nothing generated
    assert draft.trace["source"] == "learned"
    assert draft.trace["recall"]["accepted"] is True
    assert draft.trace["recall"]["example_id"] == example.pk


def test_retrieval_on_another_chunk_gets_the_ordinary_answer(env: FakeChatModel) -> None:
    example = _example()
    draft = answer_compose(
        question=QUESTION, search=_search(_memory((example.pk, 0)), 30, 20, vector=KEY_VECTORS[0])
    )
    assert draft.reason != "learned" and draft.source == "knowledge_base"
    assert "recall" not in draft.trace
    # The same search with the example's chunk among the passages: answered from memory.
    found = answer_compose(
        question=QUESTION, search=_search(_memory((example.pk, 0)), 30, 10, vector=KEY_VECTORS[0])
    )
    assert found.reason == "learned"


def test_an_unanswerable_question_is_declined_even_when_it_matches(env: FakeChatModel) -> None:
    # Low retrieval confidence and no sentence holding the question's words: the knowledge
    # base does not answer it, however close an approved question is.
    example = _example()
    asked = "Do you refund concert tickets bought abroad?"
    draft = answer_compose(
        question=asked,
        search=_search(_memory((example.pk, 0)), 10, confidence=0.05, query=asked),
    )
    assert draft.action == "escalate" and draft.reason == "low_confidence"
    assert draft.source == "knowledge_base" and "recall" not in draft.trace


def test_a_confident_search_without_a_covering_sentence_may_be_answered(
    env: FakeChatModel,
) -> None:
    # Retrieval is confident, but no sentence holds half of the question's words (no_facts):
    # the approved answer says what the sentences cannot, and still passes the check.
    example = _example()
    asked = "When will my money come back after returning the jacket?"
    memory = _memory((example.pk, 0))
    draft = answer_compose(question=asked, search=_search(memory, 10, confidence=0.6, query=asked))
    assert draft.reason == "learned" and draft.citations[0]["chunk_id"] == 10
    with override_settings(SUPPORT_ANSWER_MEMORY=False):
        plain = answer_compose(
            question=asked, search=_search(memory, 10, confidence=0.6, query=asked)
        )
    assert plain.action == "escalate" and plain.reason == "no_facts"
    weak = answer_compose(question=asked, search=_search(memory, 10, confidence=0.1, query=asked))
    assert weak.action == "escalate" and weak.reason == "low_confidence"


def test_an_unknown_product_name_is_declined_even_when_it_matches(
    env: FakeChatModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = _example()
    monkeypatch.setattr("support.answers.decide.unknown_identifiers", lambda text: ["VADIP"])
    draft = answer_compose(question=QUESTION, search=_search(_memory((example.pk, 0)), 10))
    assert draft.action == "escalate" and draft.reason == "unknown_term"


def test_an_approved_answer_the_chunk_contradicts_is_not_repeated(env: FakeChatModel) -> None:
    # The page says 5 business days now: an answer approved when it said 2 fails the fact check.
    example = _example(answer="Refunds reach your original payment method within 2 business days.")
    draft = answer_compose(question=QUESTION, search=_search(_memory((example.pk, 0)), 10))
    assert draft.reason != "learned" and "2 business days" not in draft.text
    assert draft.trace["recall"]["accepted"] is False
    assert draft.trace["recall"]["problem"].startswith("claim:")


def test_a_rejected_or_held_back_example_answers_nothing(env: FakeChatModel) -> None:
    rejected = _example(state=Example.State.REJECTED)
    held = _example(held_back=True, split_key="h")
    for example in (rejected, held):
        draft = answer_compose(question=QUESTION, search=_search(_memory((example.pk, 0)), 10))
        assert draft.reason != "learned"


def test_answer_memory_can_be_switched_off(env: FakeChatModel) -> None:
    example = _example()
    with override_settings(SUPPORT_ANSWER_MEMORY=False):
        draft = answer_compose(question=QUESTION, search=_search(_memory((example.pk, 0)), 10))
    assert draft.reason != "learned" and "recall" not in draft.trace


def test_a_follow_up_searched_with_the_turn_before_is_not_matched(env: FakeChatModel) -> None:
    example = _example()
    search = _search(_memory((example.pk, 0)), 10, query=f"I returned a jacket. {QUESTION}")
    draft = answer_compose(question=QUESTION, search=search)
    assert draft.reason != "learned"


def test_the_threshold_is_the_setting(env: FakeChatModel) -> None:
    example = _example()
    search = _search(_memory((example.pk, 0)), 10, vector=FAR)  # cosine 0.71
    assert answer_compose(question=QUESTION, search=search).reason != "learned"
    with override_settings(SUPPORT_ANSWER_MEMORY_MIN_SIMILARITY=0.7):
        assert answer_compose(question=QUESTION, search=search).reason == "learned"
