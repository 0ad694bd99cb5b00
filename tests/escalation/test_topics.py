"""Amounts in any currency, keywords as whole words."""

from __future__ import annotations

from decimal import Decimal

import pytest

from support.handoff.escalation_rules import amounts, keyword_match


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want a refund of 750 for order 00123842", ["750"]),
        ("refund over 1.200,50 €", ["1200.50"]),
        ("refund $1,234.50 please", ["1234.50"]),
        ("need a refund of 12.50 EUR", ["12.50"]),
        ("Rückerstattung über 800 Euro", ["800"]),
        ("reembolso de 600 pesos", ["600"]),
        ("I paid 2k for this", ["2000"]),
        ("I paid 1 234 kr", ["1234"]),
        ("£650 refund", ["650"]),
        ("CHF 900", ["900"]),
        ("refund 600 dollars", ["600"]),
        ("refund for order 113542617735902", []),
        ("refund order #5000", []),
        ("refund for order no. 7777", []),
        ("refund for my 2023 purchase", []),
        ("my amateur 700 series camera", []),
        ("call me on 0612345678", []),
    ],
)
def test_amounts(text: str, expected: list[str]) -> None:
    assert list(amounts(text)) == [Decimal(e) for e in expected]


def test_keywords_match_whole_words_and_phrases() -> None:
    assert keyword_match(("lawyer",), "My LAWYERS will call")
    assert not keyword_match(("lawyer",), "lawyerly")
    assert keyword_match(("delete my account",), "please  delete   my account!")
    assert not keyword_match(("sue you",), "pursue your order")
    assert keyword_match(("Konto löschen",), "bitte Konto loschen")
    assert keyword_match(("supprimer mon compte",), "je veux SUPPRIMER mon compte")
    assert not keyword_match((), "anything")
    assert not keyword_match(("  ",), "anything")
