"""bench/learning.py: the split by dialogue and the import lines (no span, no document)."""

from __future__ import annotations

import json

from bench import _common as common
from bench import learning


def _question(qid: str, history: tuple[dict[str, str], ...] = ()) -> common.EvalQuestion:
    return common.EvalQuestion(
        index=0,
        id=qid,
        text="How do I apply?",
        answerable=True,
        history=history,
        grounding_doc_ids=("va-1",),
        span_doc_id="va-1",
        span_text="Apply online.",
        span_start=0,
        span_end=13,
        answer="You can apply online.",
        answer_type="statement",
    )


def test_halves_split_dialogues_evenly_and_stably() -> None:
    dialogues = [f"doc2dial-val-{i:04d}" for i in range(101)]
    a, b = learning.halves(dialogues)
    assert not set(a) & set(b) and set(a) | set(b) == set(dialogues)
    assert abs(len(a) - len(b)) <= 1
    assert learning.halves(list(reversed(dialogues))) == (a, b)
    assert learning.halves(dialogues, salt="inner") != (a, b)
    assert learning.dialogue_of("doc2dial-val-abc_3") == "doc2dial-val-abc"


def test_an_import_line_has_question_history_and_reply_only() -> None:
    history = ({"role": "user", "text": "hello"}, {"role": "agent", "text": "Hi, how can I help?"})
    turn = learning.Turn(_question("doc2dial-val-abc_3", history), "You can apply online.")
    line = json.loads(learning.import_line(turn))
    assert set(line) == {"id", "question", "history", "answer"}
    assert line["history"] == list(history)
    assert line["answer"] == "You can apply online."


def _row(qid: str, *, f1: float, memory: dict | None, answerable: bool = True) -> dict:
    return {
        "id": qid,
        "answerable": answerable,
        "graded": answerable,
        "declined": f1 == 0.0,
        "reason": "confident_page",
        "f1": f1,
        "memory": memory,
        "t": 0.9,
    }


def test_answer_memory_applies_above_the_threshold_only_when_the_check_passed() -> None:
    checked = {"similarity": 0.93, "accepted": True, "f1": 0.8, "example": 1, "problem": None}
    refused = {**checked, "accepted": False, "problem": "claim: 2 days"}
    rows = [
        _row("q1", f1=0.2, memory=checked),
        _row("q2", f1=0.3, memory=refused),
        _row("q3", f1=0.0, memory=None),  # declined, no candidate
        _row("q4", f1=0.0, memory=None, answerable=False),
    ]
    at_91 = learning.answer_metrics(rows, 0.91)
    assert at_91["from_memory"] == 1 and at_91["rejected_by_check"] == 1
    assert at_91["answer_f1"] == (0.8 + 0.3 + 0.0) / 3
    assert at_91["from_memory_f1"] == 0.8 and at_91["from_memory_f1_without"] == 0.2
    assert at_91["unchecked"]["matches"] == 2
    assert at_91["answerable_declined"] == 1 / 3 and at_91["unanswerable_declined"] == 1.0
    off = learning.answer_metrics(rows, learning.OFF)
    assert off["from_memory"] == 0 and off["answer_f1"] == (0.2 + 0.3) / 3
    # None: each row's own fold threshold (0.9 here).
    assert learning.answer_metrics(rows, None)["from_memory"] == 1
    assert learning.answer_metrics(rows, 0.95)["from_memory"] == 0
