"""Stage 4, check: does the finished answer hold up against the facts?"""

from __future__ import annotations

from .grounding import grounding_check
from .reasons import AnswerReason
from .types import Generation, Verdict


def check(generation: Generation) -> Verdict:
    """GROUNDED when every sentence is supported; otherwise why the answer is not kept (a
    conversation taken over meanwhile, a leak of the system prompt, an unsupported sentence).
    One unsupported sentence sinks the answer: keeping the supported rest scored lower than
    quoting the best fact (docs/generation.md)."""
    if generation.cancelled:
        return Verdict(AnswerReason.CANCELLED, None)
    if generation.leaked:
        return Verdict(AnswerReason.PROMPT_LEAK, None)
    grounding = grounding_check(generation.text, generation.prompt.facts)
    if grounding.grounded and not generation.failed:
        return Verdict(AnswerReason.GROUNDED, grounding)
    return Verdict(AnswerReason.UNGROUNDED_GENERATION, grounding)
