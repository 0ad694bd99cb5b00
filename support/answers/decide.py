"""Stage 2, decide: decline, quote the best fact, or let the model write; and the facts.

Nothing is generated when retrieval confidence is too low or no sentence of the passages
covers the question. The thresholds were tuned on the even half of doc2dial's first-turn
questions (docs/generation.md, "Tuning history").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from ..retrieval import (
    SearchResult,
    idf_coverage,
    known_coverage,
    phrase_coverage,
    term_coverage,
    term_idfs,
    unknown_identifiers,
)
from .fact_ranker import FactRanker, facts_rerank, sentence_vectors
from .facts import MAX_FACTS, fact_candidates, facts_select, top_score
from .reasons import AnswerReason
from .types import Decision, Fact, Question, Retrieved, Route

# No sentence of the top passages has this share of the question's words: the knowledge base
# does not answer it (with retrieval confidence, the decline decision).
MIN_FACT_SCORE = 0.5
# A sentence holding (nearly) every word of the question outweighs a low retrieval
# confidence, which is poorly calibrated on small knowledge bases.
FULL_COVERAGE = 0.9
# Retrieval confidence is low, but a sentence holding at least half of the question's words
# also means it: its word share times its cosine to the question (the embedder's sentence
# vectors) reaches this, and the question is answered rather than declined. A paraphrase ("how
# much is the fee if I pay late?") scores low on the BM25 coverage inside the confidence;
# fitted by cross-validation over the doc2dial dev dialogues (bench/decline_fit.py,
# docs/generation.md "Tuning history").
DENSE_RESCUE = 0.347
# No sentence holds half of the question's words, but retrieval is sure of the page ("How can
# I find out about transferring a vehicle?" -> the page on transferring a vehicle): its best
# sentence is quoted and cited rather than declining a question the knowledge base covers.
NO_FACTS_QUOTE_CONFIDENCE = 0.7


# (question text) -> its vector; (sentences) -> theirs: the fact ranker's embedder.
QuestionVector = Callable[[str], NDArray[np.float32]]
Encode = Callable[[list[str]], NDArray[np.float32]]


def decide(
    question: Question,
    retrieved: Retrieved,
    *,
    min_confidence: float,
    generate: bool,
    ranker: FactRanker | None = None,
    question_vector: QuestionVector | None = None,
    encode: Encode | None = None,
) -> Decision:
    """What to do with the retrieved passages (`generate=False`: quote instead of writing).

    With the embedder (`question_vector`, `encode`), a question declined for low retrieval
    confidence is answered when a sentence's word share times its cosine to the question
    reaches DENSE_RESCUE (the sentences are embedded only then). With a learned fact ranker
    too, an answer's facts carry the ranker's pick (quoted first); the route and the decline
    decision are the lexical ranking's."""
    dense: Callable[[str], float] | None = None
    if question_vector is not None and encode is not None:
        qv, enc = question_vector, encode

        def dense(text: str) -> float:
            return dense_fact_score(text, retrieved.search, qv(question.text), enc)

    decision = _decide(
        question, retrieved, min_confidence=min_confidence, generate=generate, dense=dense
    )
    if (
        ranker is None
        or question_vector is None
        or encode is None
        or decision.route is Route.DECLINE
        or not decision.facts
    ):
        return decision
    query = retrieved.search.query
    facts = facts_rerank(
        facts=decision.facts,
        # The question the facts were selected for (a follow-up's query holds the earlier turn).
        candidates=fact_candidates(
            question=query if _context_won(question, retrieved) else question.text,
            passages=retrieved.search.passages,
        ),
        ranker=ranker,
        question_vector=question_vector(question.text),
        encode=encode,
        max_facts=MAX_FACTS,
    )
    return replace(decision, facts=facts)


def _context_won(question: Question, retrieved: Retrieved) -> bool:
    search = retrieved.search
    if search.query == question.text:
        return False
    own = top_score(facts_select(question=question.text, passages=search.passages))
    return top_score(facts_select(question=search.query, passages=search.passages)) > own


def _decide(
    question: Question,
    retrieved: Retrieved,
    *,
    min_confidence: float,
    generate: bool,
    dense: Callable[[str], float] | None = None,
) -> Decision:
    search = retrieved.search
    if not search.passages:
        return Decision(Route.DECLINE, AnswerReason.NO_PASSAGES, (), 0.0)
    if unknown_identifiers(question.text):
        # "What does VADIP offer?" when no page mentions VADIP: passages about something else
        # would only yield a confident answer to another question.
        return Decision(Route.DECLINE, AnswerReason.UNKNOWN_TERM, (), 0.0)
    facts, asked = facts_judged(question, search)
    top = top_score(facts)
    dense_fact: float | None = None
    if search.confidence < min_confidence and top < FULL_COVERAGE:
        # Only a question a sentence holds half of could be rescued (the next gate declines
        # the others): the sentences are embedded for those alone.
        if dense is not None and top >= MIN_FACT_SCORE:
            dense_fact = dense(asked)
        if dense_fact is None or dense_fact < DENSE_RESCUE:
            return Decision(Route.DECLINE, AnswerReason.LOW_CONFIDENCE, (), top, dense_fact)
    if top < MIN_FACT_SCORE:
        if facts and search.confidence >= NO_FACTS_QUOTE_CONFIDENCE:
            return Decision(Route.QUOTE, AnswerReason.CONFIDENT_PAGE, tuple(facts), top)
        return Decision(Route.DECLINE, AnswerReason.NO_FACTS, tuple(facts), top)
    if not generate:
        return Decision(Route.QUOTE, AnswerReason.EXTRACTIVE_ONLY, tuple(facts), top, dense_fact)
    return Decision(Route.GENERATE, None, tuple(facts), top, dense_fact)


def facts_judged(question: Question, search: SearchResult) -> tuple[list[Fact], str]:
    """The facts decide judges, whatever the route, and the text they were selected for."""
    facts = facts_select(question=question.text, passages=search.passages, bridged=search.bridged)
    if search.query != question.text:
        # A follow-up found its passages with the earlier turn in the query: its facts may
        # share words with that turn rather than with the short question.
        context_facts = facts_select(
            question=search.query, passages=search.passages, bridged=search.bridged
        )
        if top_score(context_facts) > top_score(facts):
            return context_facts, search.query
    return facts, question.text


def dense_fact_score(
    text: str,
    search: SearchResult,
    question_vector: NDArray[np.float32],
    encode: Encode,
    *,
    min_share: float = DENSE_RESCUE,
) -> float:
    """The best word share times cosine to the question over the top passages' candidate
    sentences (`facts.fact_candidates` for `text`). Only the sentences with a share of at least
    `min_share` are embedded (by default those that could reach DENSE_RESCUE: a cosine is at
    most 1), through the fact ranker's cache of sentence vectors."""
    candidates = [
        c
        for c in fact_candidates(question=text, passages=search.passages, bridged=search.bridged)
        if c.fact.score >= min_share
    ]
    if not candidates:
        return 0.0
    vector = np.asarray(question_vector, dtype=np.float32).reshape(-1)
    cosines = sentence_vectors([c.fact.text for c in candidates], encode) @ vector
    return float(max(c.fact.score * float(x) for c, x in zip(candidates, cosines, strict=True)))


def decline_signals(
    question: Question, search: SearchResult, *, dense_fact: float | None = None
) -> dict[str, float]:
    """What a decline can be decided on (bench/decline_fit.py compares them): retrieval
    confidence and its inputs, the best fact's share of the question's words, and the
    IDF-weighted share of the question's terms in the best fact and in the top passages (a rare
    word of the question that the passages never say, "dental", weighs most); the share of the
    question's adjacent term pairs found together in the top passages, and of its terms in the
    top passage's title and headings; the IDF-weighted share of its terms the knowledge base
    holds at all, its number of terms, how far the top passage's cosine stands above the rest
    and how many of the top 5 passages share its document; `dense_fact` (dense_fact_score)
    when it was computed. The facts are those decide judges, also when it declined (a
    low-confidence decline keeps none)."""
    facts = facts_judged(question, search)[0] if search.passages else []
    idfs = term_idfs(question.text)
    best = max(facts, key=lambda f: f.score).text if facts else ""
    top3 = [p.text for p in search.passages[:3]]
    return {
        "confidence": search.confidence,
        "top_cosine": search.top_cosine,
        "lexical_coverage": search.lexical_coverage,
        "top_fact": top_score(facts),
        "idf_fact": idf_coverage(question.text, [best], idfs) if best else 0.0,
        "idf_top3": idf_coverage(question.text, top3, idfs),
        "phrase_top3": phrase_coverage(question.text, top3),
        "title_top": (
            term_coverage(question.text, search.passages[0].heading) if search.passages else 0.0
        ),
        "idf_known": known_coverage(question.text, idfs),
        "n_terms": float(len(idfs)),
        "dense_gap": _dense_gap(search),
        "same_document": _same_document(search),
        **({} if dense_fact is None else {"dense_fact": dense_fact}),
    }


def _dense_gap(search: SearchResult) -> float:
    """How far the top passage's cosine stands above the rest of the top 5 (a question the
    knowledge base answers tends to have one clear match)."""
    dense = [p.dense_score for p in search.passages[:5]]
    if len(dense) < 2:
        return 0.0
    return dense[0] - sum(dense[1:]) / (len(dense) - 1)


def _same_document(search: SearchResult) -> float:
    """Share of the top 5 passages from the top passage's document."""
    top = search.passages[:5]
    if not top:
        return 0.0
    return sum(p.document_id == top[0].document_id for p in top) / len(top)
