"""`manage.py escalation_check` and the `reasons` of `manage.py ask --json`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from support.answers.cite import DECLINE_TEXT
from support.answers.types import Draft
from support.management.commands.ask import _as_json

from .conftest import BagOfWordsEncoder

pytestmark = pytest.mark.django_db


def write_lines(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_escalation_check(tmp_path: Path, bow_encoder: BagOfWordsEncoder) -> None:
    src = write_lines(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "text": "agent please"},
            {"id": "b", "text": "How do I reset my router?"},
            {"id": 3, "text": "This is unacceptable, I will contact my lawyer"},
        ],
    )
    out = tmp_path / "out.jsonl"
    call_command("escalation_check", "--file", str(src), "--out", str(out))
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert rows == [
        {"id": "a", "escalate": True, "reasons": ["customer_request"]},
        {"id": "b", "escalate": False, "reasons": []},
        {"id": 3, "escalate": True, "reasons": ["frustration", "sensitive_topic"]},
    ]


def test_escalation_check_rules_only(tmp_path: Path, bow_encoder: BagOfWordsEncoder) -> None:
    src = write_lines(tmp_path / "in.jsonl", [{"id": 1, "text": "real person"}])
    out = tmp_path / "out.jsonl"
    call_command("escalation_check", "--file", str(src), "--out", str(out), "--rules-only")
    assert json.loads(out.read_text())["reasons"] == ["customer_request"]
    assert bow_encoder.encoded == []


def test_escalation_check_rejects_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": 1}\n', encoding="utf-8")
    with pytest.raises(CommandError, match=r"in\.jsonl:1"):
        call_command("escalation_check", "--file", str(src), "--out", str(tmp_path / "o"))


def test_ask_json_reports_the_reasons(bow_encoder: BagOfWordsEncoder) -> None:
    declined = Draft(DECLINE_TEXT, "escalate", "low_confidence", (), (), 0.1, 0.0, False, "v1")
    report = _as_json(declined, "Can I talk to a human about a refund of 900 EUR?")
    assert report["action"] == "escalate"
    assert report["reasons"] == ["customer_request", "sensitive_topic", "low_confidence"]
    answered = Draft("Hold it [1].", "answer", "grounded", (), (), 0.9, 0.9, True, "v1")
    report = _as_json(answered, "How do I reset my router?")
    assert report["action"] == "answer"
    assert report["reasons"] == []
