"""A question in, the answer as JSON out: `manage.py ask --json` and the API's /ask/ share
`ask_result`. Over the API the answer is written by a worker (`ask_publish`, the generation
queue): the web process never loads the model; it waits on the channel layer."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from . import events
from .answers.pipeline import answer_compose
from .answers.types import Draft, Turn
from .handoff.escalation import AnswerOutcome, escalation_preview
from .llm.errors import LlmError

logger = logging.getLogger(__name__)
DELTA_INTERVAL_S = 0.08


def ask_result(draft: Draft, question: str) -> dict[str, Any]:
    """The JSON of an answer: text, action (escalate: declined, or a person should take it),
    source (learned: answer memory), reasons (why a person takes it; none for a decline
    alone), confidences, groundedness, citations, a decline's suggested topics, retrieved
    passages, prompt version, timings."""
    decision = escalation_preview(
        text=question, answer=AnswerOutcome(draft.action, draft.reason, draft.grounded)
    )
    reasons = list(decision.reasons)
    return {
        "answer": draft.text,
        "action": "escalate" if decision.escalate else draft.action,
        "reason": draft.reason,
        # "learned": an approved example's answer (answer memory); else "knowledge_base".
        "source": draft.source,
        "learned_example_id": draft.learned_example_id,
        "reasons": list(dict.fromkeys(reasons)),
        "confidence": round(draft.confidence, 4),
        "answer_confidence": round(draft.answer_confidence, 4),
        "grounded": draft.grounded,
        "support": None if draft.support is None else round(draft.support, 4),
        "citations": list(draft.citations),
        # A decline's closest covered topics (what the widget offers as chips).
        "suggestions": list(draft.suggestions),
        "retrieved": list(draft.retrieved),
        "prompt_version": draft.prompt_version,
        **{k: draft.timings.get(k) for k in ("retrieval_ms", "ttft_ms", "total_ms", "tokens")},
    }


def ask_answer(
    *, question: str, history: Sequence[Turn] = (), generate: bool = True
) -> dict[str, Any]:
    """Answer in this process (the command line): the `ask --json` document."""
    draft = answer_compose(question=question, history=tuple(history), generate=generate)
    return ask_result(draft, question)


def ask_publish(*, request_id: str, question: str, history: list[dict[str, str]]) -> str:
    """Worker side of /api/v1/ask/: stream `ask.delta` events (throttled), then `ask.done`
    with the `ask_result` document, or `ask.failed`, to the request's group."""
    group = events.ask_group(request_id)
    seq = 0
    pending = ""
    last = 0.0

    def flush() -> None:
        nonlocal seq, pending, last
        if pending:
            events.group_send(group, events.ask_delta(seq=seq, delta=pending))
            seq += 1
            pending = ""
            last = time.monotonic()

    def on_delta(piece: str) -> None:
        nonlocal pending
        pending += piece
        if time.monotonic() - last >= DELTA_INTERVAL_S:
            flush()

    turns = tuple(Turn(str(t["role"]), str(t["text"])) for t in history)
    try:
        draft = answer_compose(question=question, history=turns, on_delta=on_delta)
    except LlmError as exc:
        logger.warning("ask %s: the model is unavailable: %s", request_id, exc)
        events.group_send(
            group, events.ask_failed(code="generation_unavailable", detail=str(exc)[:500])
        )
        return "failed"
    flush()
    events.group_send(group, events.ask_done(ask_result(draft, question)))
    return "done"
