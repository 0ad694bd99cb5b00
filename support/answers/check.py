"""Stage 4, check: does the finished answer hold up against the facts?"""

from __future__ import annotations

from .grounding import grounding_check
from .reasons import AnswerReason
from .types import Generation, Question, Verdict


def _failed(problem: str | None) -> AnswerReason:
    if problem is not None and problem.startswith("claim:"):
        return AnswerReason.UNSUPPORTED_CLAIM
    return AnswerReason.UNGROUNDED_GENERATION


def check(question: Question, generation: Generation) -> Verdict:
    """GROUNDED when every sentence is supported and its claims hold in the fact it comes from
    (support.answers.claims); otherwise why the answer is not kept (a conversation taken over
    meanwhile, a leak of the system prompt, an unsupported sentence, a claim that does not
    hold).
    One unsupported sentence sinks the answer: keeping the supported rest scored lower than
    quoting the best fact (docs/generation.md)."""
    if generation.cancelled:
        return Verdict(AnswerReason.CANCELLED, None)
    if generation.leaked:
        return Verdict(AnswerReason.PROMPT_LEAK, None)
    grounding = grounding_check(generation.text, generation.prompt.facts, question.text)
    if generation.failed:
        return Verdict(_failed(generation.problem), grounding)
    if grounding.grounded:
        return Verdict(AnswerReason.GROUNDED, grounding)
    return Verdict(_failed(grounding.problem), grounding)
