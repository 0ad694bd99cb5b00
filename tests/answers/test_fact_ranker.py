"""The learned fact ranker (support.answers.fact_ranker, support.learning.fact_train) with fake
vectors: its features, its choice in `decide`, its versioned folders, and training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from support.answers import fact_ranker
from support.answers.decide import decide
from support.answers.fact_ranker import (
    FACT_RANKERS,
    FEATURES,
    FactRanker,
    PastQuestions,
    candidate_features,
    ranker_load,
    ranker_save,
    sentence_key,
    served_ranker,
)
from support.answers.facts import fact_candidates, facts_select
from support.answers.types import Question, Retrieved, Route
from support.learning import fact_train
from support.learning.fact_train import Sample
from support.retrieval import Passage, SearchResult
from tests.factories import passage

DIM = 8
ROUTER = (
    "Hold the reset button for ten seconds to restart the router. "
    "The router lights turn green when the line is up. "
    "Call support when the lights stay red."
)


def _passage(n: int, text: str) -> Passage:
    return passage(n, text)


def _unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


def _ranker(weights: dict[str, float], past: PastQuestions | None = None) -> FactRanker:
    coef = np.array([weights.get(name, 0.0) for name in FEATURES])
    return FactRanker(
        mean=np.zeros(len(FEATURES)),
        scale=np.ones(len(FEATURES)),
        coef=coef,
        intercept=0.0,
        past=past or PastQuestions.empty(DIM),
        meta={},
    )


def _encode(texts: list[str]) -> np.ndarray:
    # Sentence i of ROUTER gets axis i: the question vector picks which one is "closest".
    order = [s for s in ROUTER.split(". ")]
    return np.stack(
        [
            _unit(next((i for i, s in enumerate(order) if s.rstrip(".") in t), DIM - 1))
            for t in texts
        ]
    )


def test_candidates_hold_every_sentence_and_selection_keeps_the_eligible_ones() -> None:
    passages = [_passage(1, ROUTER)]
    cands = fact_candidates(question="How do I restart the router?", passages=passages)
    assert [c.position for c in cands] == [0, 1, 2]
    assert [c.eligible for c in cands] == [True, True, False]  # the last shares no word
    chosen = facts_select(question="How do I restart the router?", passages=passages)
    assert [f.text for f in chosen] == [c.fact.text for c in cands if c.eligible]


def test_span_memory_scores_the_sentence_past_questions_were_answered_with() -> None:
    cands = fact_candidates(question="Why are the lights red?", passages=[_passage(1, ROUTER)])
    label = sentence_key(cands[2].fact.text)
    past = PastQuestions(
        np.stack([_unit(0), _unit(1)]),
        ("Call support.", "Unrelated."),
        (label, ""),
        ("conv-a", "conv-b"),
    )
    vectors = _encode([c.fact.text for c in cands])
    feats = candidate_features(
        candidates=cands, question_vector=_unit(0), sentence_vectors=vectors, past=past, today=0
    )
    memory = feats[:, FEATURES.index("memory_cosine")]
    assert memory.tolist() == [0.0, 0.0, 1.0]
    assert feats[2, FEATURES.index("memory_count")] == pytest.approx(np.log1p(1))
    # Its own conversation's exchange never counts (training).
    own = candidate_features(
        candidates=cands,
        question_vector=_unit(0),
        sentence_vectors=vectors,
        past=past,
        today=0,
        group="conv-a",
    )
    assert own[:, FEATURES.index("memory_cosine")].tolist() == [0.0, 0.0, 0.0]
    assert feats[:, FEATURES.index("today")].tolist() == [1.0, 0.0, 0.0]


def _search(query: str = "How do I restart the router?", confidence: float = 0.9) -> Retrieved:
    return Retrieved(SearchResult(query, (_passage(1, ROUTER),), confidence, 1, 0.0))


def test_decide_quotes_the_rankers_pick_and_keeps_the_route() -> None:
    question = Question("How do I restart the router?")
    lexical = decide(question, _search(), min_confidence=0.3, generate=False)
    assert lexical.route is Route.QUOTE
    # A ranker that wants the sentence closest to the question vector (axis 1: "lights").
    ranker = _ranker({"cosine": 5.0})
    learned = decide(
        question,
        _search(),
        min_confidence=0.3,
        generate=False,
        ranker=ranker,
        question_vector=lambda _: _unit(1),
        encode=_encode,
    )
    assert learned.route is lexical.route and learned.top_score == lexical.top_score
    chosen = [f for f in learned.facts if f.chosen]
    assert [f.text for f in chosen] == ["The router lights turn green when the line is up."]
    from support.answers.cite import cite

    assert cite(_search(), lexical).text.startswith("Hold the reset button")
    assert cite(_search(), learned).text.startswith("The router lights turn green")


def test_a_declined_question_stays_declined() -> None:
    question = Question("How do I restart the modem router?")  # 2 of its 3 terms: no full cover
    low = _search(question.text, confidence=0.1)
    ranker = _ranker({"cosine": 5.0})
    plain = decide(question, low, min_confidence=0.3, generate=False)
    learned = decide(
        question,
        low,
        min_confidence=0.3,
        generate=False,
        ranker=ranker,
        # Close to no sentence: decide's dense rescue does not apply, the ranker alone is tried.
        question_vector=lambda _: _unit(DIM - 2),
        encode=_encode,
    )
    assert plain.route is Route.DECLINE and learned.route is Route.DECLINE
    assert learned.facts == plain.facts and learned.reason is plain.reason


def test_a_ranker_round_trips_and_is_served_only_once_published(tmp_path: Path) -> None:
    past = PastQuestions(np.stack([_unit(2)]), ("Call support.",), ("call support",), ("g",))
    ranker = _ranker({"cosine": 1.5, "memory_cosine": 2.0}, past)
    fact_ranker.reset()
    assert served_ranker(tmp_path) is None
    version = FACT_RANKERS.next_version(tmp_path)
    staging = FACT_RANKERS.staging_dir(tmp_path, version)
    ranker_save(ranker, staging)
    FACT_RANKERS.install(tmp_path, staging, version)
    assert served_ranker(tmp_path) is None  # installed, not published
    FACT_RANKERS.publish(tmp_path, version)
    served = served_ranker(tmp_path)
    assert served is not None
    loaded = ranker_load(FACT_RANKERS.folder(tmp_path, version))
    assert np.allclose(loaded.coef, ranker.coef)
    assert loaded.past.answers == ("Call support.",) and loaded.past.label_keys == ("call support",)
    assert np.allclose(served.past.vectors, past.vectors)
    assert FACT_RANKERS.rollback(tmp_path) is None  # back to the lexical ranking
    assert served_ranker(tmp_path) is None


# -- training ---------------------------------------------------------------------------------
def _samples(n: int, *, answer_of: int | None) -> list[Sample]:
    """Questions whose approved answer is always the passage's last sentence (answer_of=2), or
    that no sentence holds (None)."""
    passages = [_passage(1, ROUTER)]
    out = []
    for i in range(n):
        cands = fact_candidates(question="restart the router lights", passages=passages)
        answer = cands[answer_of].fact.text if answer_of is not None else "Quite unrelated words."
        out.append(
            Sample(
                group=f"conv-{i}",
                question="restart the router lights",
                answer=answer,
                quote=True,
                candidates=cands,
                today=0,
                question_vector=_unit(i % DIM),
                sentence_vectors=_encode([c.fact.text for c in cands]),
            )
        )
    return out


def test_training_learns_what_the_approved_answers_quote() -> None:
    train, held = _samples(60, answer_of=2), _samples(10, answer_of=2)
    ranker, info = fact_train.ranker_train(train, DIM)
    assert ranker is not None and info["chosen_c"] is not None
    before, _ = fact_train.quote_f1(held, None)
    after, changed = fact_train.quote_f1(held, ranker)
    assert after > before and changed == 10
    assert after == pytest.approx(1.0)


def test_nothing_is_learned_from_answers_no_sentence_holds() -> None:
    ranker, info = fact_train.ranker_train(_samples(60, answer_of=None), DIM)
    assert ranker is None and info["chosen_c"] is None


def test_a_damaged_folder_or_another_embedder_falls_back_to_the_lexical_ranking(
    tmp_path: Path,
) -> None:
    fact_ranker.reset()
    version = FACT_RANKERS.next_version(tmp_path)
    staging = FACT_RANKERS.staging_dir(tmp_path, version)
    ranker_save(_ranker({"cosine": 5.0}), staging)
    (staging / "ranker.json").write_text('{"format": 99}')
    FACT_RANKERS.install(tmp_path, staging, version)
    FACT_RANKERS.publish(tmp_path, version)
    assert served_ranker(tmp_path) is None
    # Past questions embedded with another model (8 dimensions, the question has 4).
    past = PastQuestions(np.stack([_unit(0)]), ("a",), ("",), ("g",))
    question = Question("How do I restart the router?")
    plain = decide(question, _search(), min_confidence=0.3, generate=False)
    other = decide(
        question,
        _search(),
        min_confidence=0.3,
        generate=False,
        ranker=_ranker({"cosine": 5.0}, past),
        question_vector=lambda _: np.ones(4, dtype=np.float32) / 2,
        encode=_encode,
    )
    assert other == plain


def test_a_served_ranker_brings_its_training_sentences_cached(tmp_path: Path) -> None:
    fact_ranker.reset()
    sentences = ("Call support when the lights stay red.", "Hold the reset button.")
    ranker = dataclasses.replace(
        _ranker({"cosine": 1.0}),
        sentences=sentences,
        sentence_matrix=np.stack([_unit(3), _unit(4)]),
    )
    version = FACT_RANKERS.next_version(tmp_path)
    staging = FACT_RANKERS.staging_dir(tmp_path, version)
    ranker_save(ranker, staging)
    FACT_RANKERS.install(tmp_path, staging, version)
    FACT_RANKERS.publish(tmp_path, version)
    assert served_ranker(tmp_path) is not None

    def encode(texts: list[str]) -> np.ndarray:
        raise AssertionError(f"encoded {texts}")

    vectors = fact_ranker.sentence_vectors(list(sentences), encode)
    assert np.allclose(vectors, np.stack([_unit(3), _unit(4)]))
    fact_ranker.reset()
