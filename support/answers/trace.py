"""The per-answer trace: what each stage decided, stored with the bot message so an engineer
can see why an answer came out as it did (the admin's trace view, reports)."""

from __future__ import annotations

from typing import Any

from .reasons import AnswerSource
from .types import Decision, Fact, Generation, Recall, Retrieved, Verdict


def _fact(fact: Fact) -> dict[str, Any]:
    return {
        "n": fact.n,
        "chunk_id": fact.passage.chunk_id,
        "score": round(fact.score, 4),
        "bonus": round(fact.bonus, 4),
        "chosen": fact.chosen,  # the learned fact ranker's pick (quoted first)
        "text": fact.text,
    }


def trace_build(
    *,
    retrieved: Retrieved,
    decision: Decision,
    generation: Generation | None,
    verdict: Verdict | None,
    signals: dict[str, float],
    timings: dict[str, float],
    cpu_ms: float,
    recalled: Recall | None = None,
) -> dict[str, Any]:
    """The trace as JSON: query, passages with their scores, facts, each stage's decision
    (answer memory's match, when there was one), the prompt version, timings and the CPU time
    of the answer."""
    search = retrieved.search
    learned = recalled is not None and recalled.accepted
    out: dict[str, Any] = {
        "source": (AnswerSource.LEARNED if learned else AnswerSource.KNOWLEDGE_BASE).value,
        "query": search.query,
        "index_version": search.index_version,
        "confidence": round(search.confidence, 4),
        "passages": [
            {
                "chunk_id": p.chunk_id,
                "document_id": p.document_id,
                "title": p.title,
                "score": round(p.score, 4),
                "dense": round(p.dense_score, 4),
                "lexical": round(p.lexical_score, 4),
            }
            for p in search.passages
        ],
        "decide": {
            "route": decision.route.value,
            "reason": decision.reason.value if decision.reason else None,
            "top_fact": round(decision.top_score, 4),
            "signals": {k: round(v, 4) for k, v in signals.items()},
        },
        "facts": [_fact(f) for f in decision.facts],
        "timings": timings,
        "cpu_ms": round(cpu_ms, 1),
    }
    if recalled is not None:
        # Answer memory matched an approved example; `accepted`: its answer is the reply.
        out["recall"] = {
            "example_id": recalled.example_id,
            "question": recalled.question,
            "similarity": round(recalled.similarity, 4),
            "chunk_id": recalled.fact.passage.chunk_id,
            "accepted": recalled.accepted,
            "support": round(recalled.grounding.support, 4),
            "problem": recalled.grounding.problem,
        }
    if generation is not None:
        out["generate"] = {
            "prompt_version": generation.prompt.version,
            "prompt_tokens": len(generation.prompt.token_ids),
            "facts_shown": [_fact(f) for f in generation.prompt.facts],
            "text": generation.text,
            "shown": generation.shown,
            "leaked": generation.leaked,
            "failed": generation.failed,
            "problem": generation.problem,
            "tokens": generation.tokens,
        }
    if verdict is not None:
        out["check"] = {
            "reason": verdict.reason.value,
            "support": None if verdict.grounding is None else round(verdict.grounding.support, 4),
            "problem": None if verdict.grounding is None else verdict.grounding.problem,
        }
    return out
