"""Fact selection with the paraphrase bridge's expansions (support.search.bridge): a question
word the knowledge base never uses counts, at its weight, in a sentence holding a stand-in."""

from __future__ import annotations

import pytest

from support.answers.facts import facts_select
from support.search.bridge import Expansion

from .test_intent import _passage

QUESTION = "Relocating soon: what about my plan?"
MOVES = "If we are available at the new address, your plan moves with you."
OTHER = "You can upgrade your plan at any time in the app."


def _bridged(weight: float) -> tuple[Expansion, ...]:
    return (
        Expansion("relocating", "moving", 0.71, weight),
        Expansion("relocating", "move", 0.69, weight),
    )


def test_without_expansions_both_sentences_share_only_plan() -> None:
    facts = facts_select(question=QUESTION, passages=[_passage(1, f"{MOVES} {OTHER}")])

    assert {f.text for f in facts} == {MOVES, OTHER}
    assert len({f.score for f in facts}) == 1


@pytest.mark.parametrize("weight", [0.25, 0.5, 1.0])
def test_a_stand_in_counts_its_weight(weight: float) -> None:
    facts = facts_select(
        question=QUESTION, passages=[_passage(1, f"{MOVES} {OTHER}")], bridged=_bridged(weight)
    )
    score = {f.text: f.score for f in facts}

    # Question terms: relocat, soon, plan.
    assert score[OTHER] == pytest.approx(1 / 3)
    assert score[MOVES] == pytest.approx((1 + weight) / 3)


def test_a_stand_in_alone_makes_a_sentence_a_fact() -> None:
    alone = "Tell us about your move three weeks ahead."
    plain = facts_select(question="I am relocating", passages=[_passage(1, alone)])
    bridged = facts_select(
        question="I am relocating", passages=[_passage(1, alone)], bridged=_bridged(0.5)
    )

    assert plain == []
    assert [f.text for f in bridged] == [alone]


def test_expansions_of_other_words_count_nothing() -> None:
    # An expansion of a word the question does not hold (a follow-up's earlier turn).
    facts = facts_select(
        question="What about my plan?",
        passages=[_passage(1, MOVES)],
        bridged=_bridged(1.0),
    )

    assert [f.score for f in facts] == [pytest.approx(1.0)]
