"""The named actions and reasons of an answer, shared by the answer pipeline, the escalation
rules, the admin and `ask --json` (the values are what is stored and printed).

A leaf module without Django imports: the escalation rules (pure functions) import it.
"""

from __future__ import annotations

from enum import StrEnum


class AnswerAction(StrEnum):
    """What the customer got (the same values as `Message.Action`)."""

    ANSWER = "answer"  # the model's words, checked against the facts
    EXTRACTIVE = "extractive"  # a sentence of the knowledge base, quoted
    ESCALATE = "escalate"  # declined: no answer


class AnswerReason(StrEnum):
    """Why the pipeline ended as it did (stored on the bot message, shown in the admin)."""

    GROUNDED = "grounded"  # every sentence of the model's answer is supported
    # Declines: the knowledge base does not answer the question.
    NO_PASSAGES = "no_passages"
    UNKNOWN_TERM = "unknown_term"
    LOW_CONFIDENCE = "low_confidence"
    NO_FACTS = "no_facts"
    # A decline because the answer failed the check (stored by earlier versions: the pipeline
    # now quotes the best fact instead, UNGROUNDED_GENERATION).
    UNGROUNDED = "ungrounded"
    # Quotes.
    CONFIDENT_PAGE = "confident_page"  # no sentence covers the question; the page is sure
    EXTRACTIVE_ONLY = "extractive_only"  # generation switched off (ask --no-generate)
    PROMPT_LEAK = "prompt_leak"  # the model repeated the system prompt: quoted instead
    UNGROUNDED_GENERATION = "ungrounded_generation"  # the model's answer failed: quoted instead
    # A claim of the model's answer (a number, a name, an action, a negation, a condition)
    # does not hold in the fact it comes from: the facts are quoted instead.
    UNSUPPORTED_CLAIM = "unsupported_claim"
    # Answer memory: an approved example's answer (its question matches closely, retrieval
    # found its grounding chunk, and it passed the fact check against that chunk).
    LEARNED = "learned"
    # Not an outcome for the customer: the conversation was taken over mid-answer.
    CANCELLED = "cancelled"


class AnswerSource(StrEnum):
    """Where the answer's words come from (`ask --json`'s `source`, the trace)."""

    KNOWLEDGE_BASE = "knowledge_base"  # the model's words over the facts, a quote, or a decline
    LEARNED = "learned"  # an approved example's answer (answer memory, docs/learning.md)


# Declines that mean "an answer was written but failed the check" rather than "the knowledge
# base does not answer this" (the escalation rules tell the two apart).
UNGROUNDED_REASONS = frozenset(
    {AnswerReason.UNGROUNDED, AnswerReason.UNGROUNDED_GENERATION, AnswerReason.UNSUPPORTED_CLAIM}
)
ANSWERED_ACTIONS = frozenset({AnswerAction.ANSWER, AnswerAction.EXTRACTIVE})
