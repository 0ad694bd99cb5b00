"""bench/fact_select.py's sub-sentence headroom: clause runs and the oracles over them."""

from __future__ import annotations

from types import SimpleNamespace

from bench import fact_select
from bench.answers import token_f1


def _row(quotes: list[str], answer: str, *, quoted: bool = True, graded: bool = True) -> object:
    return fact_select.Row(
        id="q",
        dialogue="d",
        graded=graded,
        route_quote=quoted,
        base_text=quotes[0] if quotes else "",
        base_f1=0.0,
        sample=SimpleNamespace(
            quotes=quotes, answer=answer, quote=quoted, f1s=[token_f1(q, answer) for q in quotes]
        ),
        retrieved=None,
    )


def test_a_sentence_is_cut_at_punctuation_and_conjunctions_into_runs_of_clauses() -> None:
    runs = fact_select.clauses("You get a full refund, if you cancel within 14 days of activation.")
    assert "You get a full refund" in runs
    assert "if you cancel within 14 days of activation." in runs
    assert "You get a full refund if you cancel within 14 days of activation." in runs
    # Fragments under three words are not clauses; a sentence without breaks is itself.
    assert fact_select.clauses("Call us.") == {"Call us."}


def test_the_clause_oracle_beats_the_sentence_oracle_only_when_part_of_a_sentence_answers() -> None:
    long = "Bills are issued on the 1st of the month, and payment is due by the 15th of it."
    rows = [
        _row([long, "Refunds take five days."], "payment is due by the 15th"),
        _row(["Refunds take five days."], "Refunds take five days."),
        _row([long], "payment is due by the 15th", quoted=False),  # declined: 0 unless answered
        _row([long], "ignored", graded=False),
    ]
    room = fact_select.headroom(rows)  # type: ignore[arg-type]
    assert room["graded"] == 3 and room["declined"] == 1
    assert room["oracle_clause"] > room["oracle_sentence"]
    assert room["oracle_sentence_no_declines"] > room["oracle_sentence"]
    assert room["oracle_clause_no_declines"] > room["oracle_clause"]
    # The second question's whole sentence is its reply: F1 1 in every oracle.
    assert room["oracle_sentence"] > 1 / 3
