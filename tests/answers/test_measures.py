"""The answer measures the gate and the benchmarks share (support/answers/measures.py)."""

from __future__ import annotations

import pytest

from support.answers.measures import normalize_tokens, rouge_l, token_f1


def test_normalisation_drops_case_punctuation_articles_and_citation_marks() -> None:
    assert normalize_tokens("The SHOP, is open [1]! An hour… a day") == [
        "shop",
        "is",
        "open",
        "hour",
        "day",
    ]


@pytest.mark.parametrize(
    ("prediction", "reference", "expected"),
    [
        # 4 shared words of 6 on each side: P = R = 2/3.
        ("Parcels are delivered within 3 days [1].", "Parcels come within 3 working days.", 2 / 3),
        ("The shop is open.", "the SHOP, is open!", 1.0),
        ("", "", 1.0),
        ("", "anything", 0.0),
        ("no overlap", "entirely different", 0.0),
    ],
)
def test_token_f1(prediction: str, reference: str, expected: float) -> None:
    assert token_f1(prediction, reference) == pytest.approx(expected)


def test_rouge_l_counts_words_in_order_only() -> None:
    assert rouge_l("reset the router", "router reset") == pytest.approx(0.5)  # LCS 1 of 2 / 2
    assert rouge_l("hold the reset button", "hold reset button") == pytest.approx(1.0)
    assert token_f1("reset the router", "router reset") == pytest.approx(1.0)
