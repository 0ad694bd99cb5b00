"""`manage.py examples_import`: the contract (one output line per input line, a summary, bad
lines never stop the rest), duplicates, grounding and redaction of imported exchanges."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from support.learning.examples import ImportLineError, import_line_parse
from support.models import Example, ExampleGrounding, KnowledgeDocument

pytestmark = pytest.mark.django_db

RESET = {
    "id": "t-1",
    "question": "my router light is orange, how do I reset it?",
    "answer": "Hold the reset button on the back for 10 seconds until the light blinks orange.",
}
REFUND = {
    "id": "t-2",
    "question": "when do I get my money back for the cancelled order?",
    "history": [
        {"role": "user", "text": "hi, I cancelled order 123456789"},
        {"role": "agent", "text": "Hello! How can I help?"},
    ],
    "answer": "The refund goes back to the card you paid with within 5 business days.",
}
GAP = {
    "id": "t-3",
    "question": "Is your shop in Paris open on Sundays?",
    "answer": "Yes, the Paris store opens at 9 on Sundays and closes at noon.",
}


def run(path: Path | str, *args: str) -> list[str]:
    out = io.StringIO()
    call_command("examples_import", str(path), *args, stdout=out)
    return out.getvalue().splitlines()


def test_import_prints_a_line_per_input_line_and_a_summary(
    kb: dict[str, KnowledgeDocument], jsonl: Callable[..., Path]
) -> None:
    path = jsonl(
        json.dumps(RESET),
        json.dumps(RESET | {"answer": "something else"}),  # the same id again
        "{not json",
        json.dumps({"id": "t-4", "question": "no answer"}),
        json.dumps(REFUND),
        "",
        json.dumps(GAP),
        b'{"id": "t-5", "question": "caf\xe9?", "answer": "x"}',  # Latin-1, not UTF-8
        json.dumps(RESET | {"id": "t-6", "extra": 1}),
    )
    lines = run(path)
    assert len(lines) == 10  # nine input lines, one summary
    assert lines[0].startswith('line 1: imported "t-1" -> example #')
    assert lines[1].startswith('line 2: duplicate "t-1" -> example #')
    assert lines[2].startswith("line 3: error: not JSON")
    assert lines[3] == 'line 4: error: "answer" is missing'
    assert lines[4].startswith('line 5: imported "t-2"')
    assert lines[5] == "line 6: error: empty line"
    assert lines[6].startswith('line 7: imported "t-3"') and "knowledge gap" in lines[6]
    assert lines[7] == "line 8: error: not UTF-8 (byte 31)"
    assert lines[8] == 'line 9: error: unknown field(s) "extra"'
    assert lines[9].startswith("9 line(s): 3 imported, 1 duplicate, 5 error(s)")

    assert Example.objects.count() == 3
    reset = Example.objects.get(external_id="t-1")
    assert reset.source == Example.Source.IMPORT and reset.state == Example.State.PENDING
    assert reset.reviewed_at is None and reset.conversation is None
    assert reset.answer == RESET["answer"]  # the first line won; the duplicate changed nothing
    assert not reset.knowledge_gap and reset.grounding_method == Example.GroundingMethod.INFERRED
    grounding = list(reset.grounding.all())
    assert [g.document.original_filename for g in grounding] == ["router.md"]
    assert "reset button" in grounding[0].text and grounding[0].chunk is not None
    assert grounding[0].score is not None and grounding[0].score >= 0.5

    refund = Example.objects.get(external_id="t-2")
    assert {g.document.original_filename for g in refund.grounding.all()} == {"billing.md"}
    # Redacted before it was stored: the order number is account-like.
    assert refund.history[0] == {"role": "user", "text": "hi, I cancelled order [account]"}
    assert refund.redactions == 1

    gap = Example.objects.get(external_id="t-3")
    assert gap.knowledge_gap and gap.grounding_method == Example.GroundingMethod.NONE
    assert not gap.grounding.exists()


def test_importing_the_same_file_again_only_reports_duplicates(
    no_index: None, jsonl: Callable[..., Path]
) -> None:
    path = jsonl(json.dumps(RESET), json.dumps(GAP))
    run(path)
    lines = run(path)
    assert [line.split(" -> ")[0] for line in lines[:2]] == [
        'line 1: duplicate "t-1"',
        'line 2: duplicate "t-3"',
    ]
    assert lines[2].startswith("2 line(s): 0 imported, 2 duplicate, 0 error(s)")
    assert Example.objects.count() == 2


def test_approve_stores_them_approved_without_a_reviewer(
    no_index: None, jsonl: Callable[..., Path]
) -> None:
    lines = run(jsonl(json.dumps(RESET)), "--approve")
    assert "(approved" in lines[0]
    example = Example.objects.get()
    assert example.state == Example.State.APPROVED
    assert example.reviewed_by is None and example.reviewed_at is not None


@override_settings(SUPPORT_EXAMPLES_AUTO_APPROVE=["import"])
def test_the_setting_approves_imports_too(no_index: None, jsonl: Callable[..., Path]) -> None:
    run(jsonl(json.dumps(RESET)))
    assert Example.objects.get().state == Example.State.APPROVED


def test_a_named_document_grounds_the_answer_on_its_best_chunk(
    kb: dict[str, KnowledgeDocument], jsonl: Callable[..., Path]
) -> None:
    # Loosely worded: the named document is trusted even below the inference threshold.
    line = {
        "id": "d-1",
        "question": "bill?",
        "answer": "It comes monthly.",
        "document": "BILLING.md",
    }
    missing = {"id": "d-2", "question": "q", "answer": RESET["answer"], "document": "nowhere.pdf"}
    lines = run(jsonl(json.dumps(line), json.dumps(missing)))
    named = Example.objects.get(external_id="d-1")
    assert named.grounding_method == Example.GroundingMethod.DOCUMENT
    assert named.document_hint == "BILLING.md" and not named.knowledge_gap
    assert {g.document.original_filename for g in named.grounding.all()} == {"billing.md"}
    assert 'document "nowhere.pdf" not found; grounding inferred' in lines[1]
    other = Example.objects.get(external_id="d-2")
    assert other.grounding_method == Example.GroundingMethod.INFERRED


def test_personal_data_in_every_part_is_redacted(
    no_index: None, jsonl: Callable[..., Path]
) -> None:
    line = {
        "id": "p-1",
        "question": "I'm jo@example.org, card 4111 1111 1111 1111 was charged twice",
        "history": [{"role": "user", "text": "call me on +44 20 7946 0958"}],
        "answer": "We refunded it to IBAN GB82 WEST 1234 5698 7654 32; it costs $1,299.99.",
    }
    lines = run(jsonl(json.dumps(line)))
    assert "4 redacted" in lines[0] and "4 piece(s) of personal data redacted" in lines[1]
    example = Example.objects.get()
    assert example.question == "I'm [email], card [card] was charged twice"
    assert example.history == [{"role": "user", "text": "call me on [phone]"}]
    assert example.answer == "We refunded it to IBAN [account]; it costs $1,299.99."


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("[1, 2]", "not a JSON object"),
        ('{"id": 7, "question": "q", "answer": "a"}', '"id" must be a string'),
        ('{"id": "", "question": "q", "answer": "a"}', '"id" is empty'),
        ('{"id": "x", "question": "  ", "answer": "a"}', '"question" is empty'),
        ('{"id": "x", "question": "q", "answer": null}', '"answer" must be a string'),
        ('{"id": "x", "question": "q", "answer": "a", "history": "hi"}', '"history" must be a'),
        (
            '{"id": "x", "question": "q", "answer": "a", "history": [{"role": "bot", "text": ""}]}',
            'history turn 1: "role" must be "user" or "agent"',
        ),
        (
            '{"id": "x", "question": "q", "answer": "a", "history": [{"text": "t"}]}',
            "history turn 1 must be",
        ),
        ('{"id": "x", "question": "q", "answer": "a", "document": 3}', '"document" must be a'),
        ('{"id": "' + "x" * 201 + '", "question": "q", "answer": "a"}', '"id" is longer than 200'),
        ("[" * 100000, "not JSON"),
    ],
)
def test_contract_violations_say_why(line: str, reason: str) -> None:
    with pytest.raises(ImportLineError) as info:
        import_line_parse(line)
    assert str(info.value).startswith(reason)


def test_optional_fields_may_be_null_or_absent() -> None:
    item = import_line_parse(
        '{"id": "x", "question": "q", "answer": "a", "history": null, "document": null}'
    )
    assert item.exchange.history == () and item.document == ""


def test_a_failing_line_is_an_error_of_that_line_only(
    no_index: None, jsonl: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.learning import examples

    real = examples.grounding_choose
    calls = {"n": 0}

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("embedder crashed")
        return real(**kwargs)

    monkeypatch.setattr(examples, "grounding_choose", flaky)
    lines = run(jsonl(json.dumps(RESET), json.dumps(GAP)))
    assert lines[0] == "line 1: error: internal error: RuntimeError"
    assert lines[1].startswith('line 2: imported "t-3"')
    assert Example.objects.count() == 1 and not ExampleGrounding.objects.exists()


def test_an_unreadable_file_is_a_command_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"missing\.jsonl"):
        run(tmp_path / "missing.jsonl")


def test_held_back_split_keeps_a_conversation_together(no_index: None) -> None:
    from support.learning.examples import held_back_of, split_key_of

    first = split_key_of(conversation_id=None, question="How do I apply?", history=())
    later = split_key_of(
        conversation_id=None,
        question="and how long does it take?",
        history=({"role": "user", "text": "how do  I APPLY?"}, {"role": "agent", "text": "..."}),
    )
    assert first == later
    keys = [f"conversation-{i}" for i in range(400)]
    share = sum(held_back_of(k, percent=20) for k in keys) / len(keys)
    assert 0.12 < share < 0.28
    assert not any(held_back_of(k, percent=0) for k in keys)


def test_numbers_the_knowledge_base_publishes_are_not_redacted(
    kb: dict[str, KnowledgeDocument], jsonl: Callable[..., Path]
) -> None:
    line = {
        "id": "n-1",
        "question": "my invoice is missing, I am on 0176 12345678",
        "answer": "Invoices come on the first of the month; call 1-800-555-0199 if one is missing.",
    }
    run(jsonl(json.dumps(line)))
    example = Example.objects.get()
    assert example.question == "my invoice is missing, I am on [phone]"
    assert example.answer == line["answer"]  # billing.md publishes the hotline


def test_an_approving_import_publishes_the_question_memory(
    kb: dict[str, KnowledgeDocument], jsonl: Callable[..., Path]
) -> None:
    from support import backends
    from support.learning.examples import examples_for_training

    lines = run(jsonl(json.dumps(RESET), json.dumps(REFUND)), "--approve")
    keys = examples_for_training().count()
    assert lines[-1].endswith(f"question memory of {keys} question(s)")
    memory = backends.get_index_reader().snapshot().memory
    assert (len(memory) if memory is not None else 0) == keys
    # RESET's opening turn hashes into the held-back slice, REFUND's does not.
    held_back = set(Example.objects.filter(held_back=True).values_list("pk", flat=True))
    assert keys == 1 and len(held_back) == 1
    assert not held_back & set(memory.example_ids.tolist() if memory is not None else [])
