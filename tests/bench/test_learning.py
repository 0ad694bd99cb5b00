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
