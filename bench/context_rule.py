"""When may the conversation's history shape the search for a new customer message?

Usage (from the repository root, with the project venv)::

    python bench/context_rule.py              # dev dialogues (tune here)
    python bench/context_rule.py --split test # the other half (report)

Each turn is answered for itself: the latest customer message decides retrieval, and the
history may only resolve a reference ("it", "that plan", "and for kids?"). This script measures
the candidate rules for "the message needs its history" on doc2dial, through the real search
(`support.retrieval.passages_search`) and the real decision stage (`support.answers.decide`):

- follow-ups: the later turns of `questions_multiturn.jsonl` with their history (all
  answerable): span recall@5 of the passages each rule retrieves;
- off-topic after on-topic: the unanswerable first-turn questions, and general questions no
  help centre answers, each asked after an answered first turn of another dialogue: the share
  the decision declines under each rule (the history must not lend them an answer).

Rules: `standalone` (never the history), `short` (the rule before: a message of fewer than 6
content words is also searched with the previous customer turn in front, the more confident
result wins), `reference_unguarded` (only a message that needs its history,
`support.answers.retrieve.needs_context`, is also searched with it; the more confident wins),
`reference` (the shipped rule, `context_wins`: as before, and the contextual result must still
hold half of the message's own terms).

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

# Questions no support knowledge base here answers (general knowledge and chit-chat).
OFF_TOPIC = (
    "What is the capital of France?",
    "Who won the football world cup in 2018?",
    "Can you recommend a good pizza place nearby?",
    "What's the weather like tomorrow?",
    "How tall is Mount Everest?",
    "Tell me a joke",
    "What is the square root of 144?",
    "Who wrote Romeo and Juliet?",
    "How do I bake sourdough bread?",
    "What time is it in Tokyo?",
    "Which smartphone has the best camera?",
    "How many legs does a spider have?",
)


def _dev_dialogues(first_turns: Sequence[common.EvalQuestion]) -> set[str]:
    """Dialogues whose first turn is a dev question (even position): the split by dialogue."""
    return {q.id.rsplit("_", 1)[0] for q in first_turns if q.index % 2 == 0}


def _previous_customer(history: Sequence[dict[str, str]]) -> str:
    turns = [t["text"] for t in history if t.get("role") == "user" and t.get("text", "").strip()]
    return turns[-1] if turns else ""


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--split", choices=("dev", "test"), default="dev")
    ap.add_argument("--limit", type=int, default=None, help="only the first N follow-ups")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    common.eval_kb()
    from support.answers.decide import decide
    from support.answers.retrieve import context_wins, needs_context
    from support.answers.types import Question, Retrieved, Turn
    from support.answers.words import content_words
    from support.conf import get_support_settings
    from support.retrieval import passages_search

    first = common.load_questions()
    dev = _dev_dialogues(first)

    def in_split(dialogue: str) -> bool:
        return (dialogue in dev) == (args.split == "dev")

    followups = [q for q in common.load_questions(name="questions_multiturn.jsonl") if q.history]
    followups = [q for q in followups if in_split(q.id.rsplit("_", 1)[0])][: args.limit]
    min_conf = get_support_settings().retrieval_min_confidence

    def searches(text: str, previous: str) -> tuple[Any, Any]:
        alone = passages_search(query=text, k=5)
        joined = passages_search(query=f"{previous} {text}", k=5) if previous else None
        return alone, joined

    def pick(rule: str, text: str, previous: str, alone: Any, joined: Any) -> Any:
        if joined is None or rule == "standalone":
            return alone
        if rule == "short" and len(content_words(text)) >= 6:
            return alone
        if rule == "reference_unguarded" and not needs_context(text):
            return alone
        if rule == "reference":  # the shipped rule
            return joined if context_wins(text, alone, joined) else alone
        return max((alone, joined), key=lambda r: r.confidence)

    rules = ("standalone", "short", "reference_unguarded", "reference")
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for i, q in enumerate(followups, 1):
        previous = _previous_customer(q.history)
        alone, joined = searches(q.text, previous)
        row: dict[str, Any] = {"id": q.id, "needs_context": needs_context(q.text)}
        for rule in rules:
            result = pick(rule, q.text, previous, alone, joined)
            row[rule] = any(common.span_hit(p, q) for p in result.passages[:5])
        rows.append(row)
        if i % 100 == 0:
            print(f"  {i}/{len(followups)} follow-ups", file=sys.stderr, flush=True)

    # Off-topic after on-topic: another dialogue's answered first turn as the history.
    rng = random.Random(7)
    answered = [q for q in first if q.answerable and in_split(q.id.rsplit("_", 1)[0])]
    unanswerable = [q.text for q in first if not q.answerable and in_split(q.id.rsplit("_", 1)[0])]
    off_rows: list[dict[str, Any]] = []
    for kind, texts in (("unanswerable", unanswerable), ("off_topic", list(OFF_TOPIC))):
        for text in texts:
            before = rng.choice(answered)
            history = (Turn("customer", before.text), Turn("agent", before.answer or ""))
            alone, joined = searches(text, before.text)
            row = {"kind": kind, "text": text}
            for rule in rules:
                result = pick(rule, text, before.text, alone, joined)
                decision = decide(
                    Question(text, history),
                    Retrieved(result),
                    min_confidence=min_conf,
                    generate=True,
                )
                row[rule] = decision.route.value == "decline"
            off_rows.append(row)

    def share(items: Sequence[dict[str, Any]], key: str) -> float | None:
        return round(sum(bool(r[key]) for r in items) / len(items), 3) if items else None

    summary: dict[str, Any] = {
        "split": args.split,
        "followups": len(rows),
        "needs_context_share": share(rows, "needs_context"),
        "recall@5": {rule: share(rows, rule) for rule in rules},
        "recall@5_needs_context": {
            rule: share([r for r in rows if r["needs_context"]], rule) for rule in rules
        },
        "declined_after_on_topic": {
            kind: {rule: share([r for r in off_rows if r["kind"] == kind], rule) for rule in rules}
            for kind in ("unanswerable", "off_topic")
        },
        "counts": {
            kind: sum(r["kind"] == kind for r in off_rows) for kind in ("unanswerable", "off_topic")
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    payload = {"bench": "context_rule", "summary": summary, "rows": rows, "off_topic": off_rows}
    common.write_results("context_rule", payload, also=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
