"""`manage.py ask`: one question as JSON, or a file of questions, over a real ingested KB."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from support import backends
from tests.fakes import FakeChatModel

pytestmark = pytest.mark.django_db

ANSWER = "You can return any unused item within 30 days of delivery [1]."


@pytest.fixture
def fake_model(kb: Path) -> FakeChatModel:
    fake = FakeChatModel(answer=ANSWER)
    backends.set_backend("chat_model", fake)
    return fake


def _ask_json(question: str) -> dict[str, object]:
    out = StringIO()
    call_command("ask", question, "--json", stdout=out)
    result: dict[str, object] = json.loads(out.getvalue())
    return result


def test_json_answer_has_the_documented_fields(fake_model: FakeChatModel) -> None:
    result = _ask_json("How many days do I have to return an item?")
    assert result["action"] == "answer" and result["grounded"] is True
    assert "30 days" in str(result["answer"])
    citations = result["citations"]
    assert isinstance(citations, list) and citations
    for c in citations:
        assert {"document_id", "filename", "chunk_id", "score", "text"} <= set(c)
        assert c["filename"] == "returns.md" and "30 days" in c["text"]
    assert isinstance(result["confidence"], float)
    for key in ("retrieval_ms", "ttft_ms", "total_ms", "tokens"):
        assert isinstance(result[key], int | float), key
    assert result["reason"] == "grounded"


def test_json_for_an_off_topic_question_escalates(fake_model: FakeChatModel) -> None:
    result = _ask_json("Who won the football world cup in 1998?")
    assert result["action"] == "escalate" and result["grounded"] is False
    assert result["citations"] == []
    assert fake_model.calls == 0


def test_file_mode_writes_one_line_per_question_with_its_id(
    fake_model: FakeChatModel, tmp_path: Path
) -> None:
    src, dst = tmp_path / "q.jsonl", tmp_path / "a.jsonl"
    lines = [
        {"id": "a", "question": "How many days do I have to return an item?"},
        {
            "id": "b",
            "question": "and how long for the refund?",
            "history": [
                {"role": "customer", "text": "I want to return an item"},
                {"role": "bot", "text": ANSWER},
            ],
        },
        {"id": "c", "question": "Who won the football world cup in 1998?"},
    ]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    call_command("ask", "--file", str(src), "--out", str(dst), stdout=StringIO())
    out = [json.loads(x) for x in dst.read_text().splitlines()]
    assert [o["id"] for o in out] == ["a", "b", "c"]
    assert out[0]["action"] == "answer" and out[2]["action"] == "escalate"
    assert all("answer" in o and "confidence" in o for o in out)


def test_file_mode_reports_a_malformed_line_and_answers_the_rest(
    fake_model: FakeChatModel, tmp_path: Path
) -> None:
    src, dst = tmp_path / "q.jsonl", tmp_path / "a.jsonl"
    src.write_text(
        json.dumps({"id": 1, "question": "How many days do I have to return an item?"})
        + "\n{not json\n"
        + json.dumps({"id": 3, "history": []})
        + "\n"
        + json.dumps({"id": 4, "question": "How long do refunds take?"})
        + "\n"
    )
    with pytest.raises(CommandError, match="2 malformed"):
        call_command("ask", "--file", str(src), "--out", str(dst), stdout=StringIO())
    out = [json.loads(x) for x in dst.read_text().splitlines()]
    assert [o["id"] for o in out] == [1, None, 3, 4]
    assert "error" in out[1] and "error" in out[2]
    assert out[0]["answer"] and out[3]["answer"]
