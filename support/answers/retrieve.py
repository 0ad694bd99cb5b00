"""Stage 1, retrieve: the passages for the question."""

from __future__ import annotations

from collections.abc import Sequence

from ..retrieval import passages_search
from .types import Question, Retrieved, Turn
from .words import content_words

PASSAGES_K = 5
# A question with fewer content words may be a follow-up ("and for kids?").
FOLLOW_UP_MAX_WORDS = 6


def retrieval_queries(question: str, history: Sequence[Turn]) -> list[str]:
    """The question, and for a short one (a possible follow-up) also the question with the
    previous customer turn in front."""
    previous = [t.text for t in history if t.role == "customer" and t.text.strip()][-1:]
    if previous and len(content_words(question)) < FOLLOW_UP_MAX_WORDS:
        return [question, f"{previous[0]} {question}"]
    return [question]


def retrieve(question: Question) -> Retrieved:
    """Search with each candidate query and keep the most confident result: a self-contained
    short question is not diluted by an unrelated earlier turn, a follow-up gets its context."""
    results = [
        passages_search(query=q, k=PASSAGES_K)
        for q in retrieval_queries(question.text, question.history)
    ]
    return Retrieved(max(results, key=lambda r: r.confidence))
