"""Stage 5, cite: the text the customer gets, with its citations; or the decline."""

from __future__ import annotations

from collections.abc import Sequence

from .citations import citations_resolve, extractive_answer
from .prompt import PROMPT_VERSION
from .reasons import AnswerAction, AnswerReason, AnswerSource
from .suggest import topics_suggest
from .types import Decision, Draft, Fact, Generation, Recall, Retrieved, Route, Verdict

# A decline asks for a rephrase or offers a person, with the closest topics the knowledge base
# covers (suggest.py); it does not hand over by itself (support.handoff.escalation_rules: a
# "yes", a request for a person, a second decline in a row or another rule does).
DECLINE_TEXT = "I'm not sure about that — could you rephrase, or shall I get a person?"
# How much a quoted passage is trusted relative to retrieval confidence.
QUOTE_CONFIDENCE = 0.8


def _quote(
    retrieved: Retrieved,
    facts: Sequence[Fact],
    reason: AnswerReason,
    *,
    support: float | None = None,
    generated: str = "",
) -> Draft:
    text, cites = citations_resolve(extractive_answer(facts), facts)
    confidence = retrieved.search.confidence
    return Draft(
        text=text,
        action=AnswerAction.EXTRACTIVE,
        reason=reason,
        citations=tuple(cites),
        retrieved=tuple(p.as_dict() for p in retrieved.search.passages),
        confidence=confidence,
        answer_confidence=confidence * QUOTE_CONFIDENCE,
        grounded=True,
        prompt_version=PROMPT_VERSION,
        support=support,
        facts=tuple(facts),
        generated=generated,
    )


def _decline(retrieved: Retrieved, decision: Decision) -> Draft:
    passages = tuple(p.as_dict() for p in retrieved.search.passages)
    return Draft(
        text=DECLINE_TEXT,
        action=AnswerAction.ESCALATE,
        reason=decision.reason or AnswerReason.NO_FACTS,
        citations=(),
        retrieved=passages,
        confidence=retrieved.search.confidence,
        answer_confidence=0.0,
        grounded=False,
        prompt_version=PROMPT_VERSION,
        facts=decision.facts,
        suggestions=topics_suggest(passages),
    )


def cite(
    retrieved: Retrieved,
    decision: Decision,
    generation: Generation | None = None,
    verdict: Verdict | None = None,
) -> Draft:
    """The draft for a decided route; for a generated answer, as the check's verdict says:
    the model's text cited, or the best fact quoted instead."""
    if decision.route is Route.DECLINE:
        return _decline(retrieved, decision)
    if decision.route is Route.QUOTE or generation is None or verdict is None:
        assert decision.reason is not None
        return _quote(retrieved, decision.facts, decision.reason)
    facts = generation.prompt.facts
    raw = generation.text
    support = verdict.grounding.support if verdict.grounding is not None else None
    if verdict.reason is AnswerReason.CANCELLED:
        return Draft(
            text=raw,
            action=AnswerAction.ESCALATE,
            reason=AnswerReason.CANCELLED,
            citations=(),
            retrieved=tuple(p.as_dict() for p in retrieved.search.passages),
            confidence=retrieved.search.confidence,
            answer_confidence=0.0,
            grounded=False,
            prompt_version=PROMPT_VERSION,
            cancelled=True,
            facts=facts,
            generated=raw,
        )
    if not verdict.accepted:
        return _quote(retrieved, facts, verdict.reason, support=support, generated=raw)
    assert support is not None
    text, cites = citations_resolve(raw, facts)
    return Draft(
        text=text,
        action=AnswerAction.ANSWER,
        reason=AnswerReason.GROUNDED,
        citations=tuple(cites),
        retrieved=tuple(p.as_dict() for p in retrieved.search.passages),
        confidence=retrieved.search.confidence,
        answer_confidence=min(retrieved.search.confidence, support),
        grounded=True,
        prompt_version=PROMPT_VERSION,
        support=support,
        facts=facts,
        generated=raw,
    )


def cite_learned(retrieved: Retrieved, recalled: Recall) -> Draft:
    """The draft of an accepted answer from memory: the approved text, cited to its chunk."""
    text, cites = citations_resolve(recalled.answer, [recalled.fact])
    confidence = retrieved.search.confidence
    return Draft(
        text=text,
        action=AnswerAction.ANSWER,
        reason=AnswerReason.LEARNED,
        citations=tuple(cites),
        retrieved=tuple(p.as_dict() for p in retrieved.search.passages),
        confidence=confidence,
        # As sure as the weaker of the two pieces of evidence: the knowledge base's and the match.
        answer_confidence=min(confidence, recalled.similarity),
        grounded=True,
        prompt_version=PROMPT_VERSION,
        support=recalled.grounding.support,
        facts=(recalled.fact,),
        source=AnswerSource.LEARNED,
        learned_example_id=recalled.example_id,
    )
