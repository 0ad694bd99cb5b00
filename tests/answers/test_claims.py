"""The fact check (support.answers.claims): claims must hold in the one fact they come from."""

from __future__ import annotations

import pytest

from support.answers.claims import LABEL, best_source, claim_problem, partial_problem

RESET = (
    "To reset the router to factory settings, hold the reset button on the back for 10 seconds "
    "until the light blinks orange."
)
RESTART = "Switch the router off at the power button, wait 30 seconds and switch it on again."
BILLS = "Bills are issued on the 1st of each month and paid by direct debit on the 15th."
UPGRADE = (
    "You can upgrade your plan at any time in the app under Account › Plan; the new speed is "
    "active within 24 hours and the price changes from the next bill."
)
MOVE = (
    "If Brightwave Fibre is available at the new address, your plan moves with you at no charge "
    "and your minimum term does not restart."
)


@pytest.mark.parametrize(
    "answer",
    [
        "Hold the reset button on the back for 10 seconds.",
        "Hold the reset button on the back for 10 seconds until the light blinks orange.",
        "You can reset the router by holding the reset button on the back for 10 seconds.",
        "Press the reset button on the back of the router for 10 seconds.",
    ],
)
def test_a_faithful_rephrasing_checks_out(answer: str) -> None:
    assert best_source(answer, [RESET, RESTART]) == (RESET, None)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        # Another fact's part in this fact's action: the recombination the issue reports.
        ("Hold the power button for 10 seconds.", "'power' comes from another fact"),
        ("To reset your router, hold the reset button for 10 minutes.", "10 minut"),
        ("Hold the reset button for 15 seconds.", "number 15"),
    ],
)
def test_a_recombined_or_changed_claim_is_caught(answer: str, why: str) -> None:
    source, problem = best_source(answer, [RESET, RESTART])
    assert source is None and problem is not None and why in problem


def test_a_number_stays_with_its_own_words() -> None:
    assert "15th" in (claim_problem("Your bill is issued on the 15th of each month.", BILLS) or "")
    assert claim_problem("Bills are issued on the 1st of each month.", BILLS) is None


def test_a_named_part_must_be_the_source_s() -> None:
    wrong = "You can upgrade your plan at any time in the app under Account › Move."
    assert "'move'" in (claim_problem(wrong, UPGRADE) or "")
    assert (
        claim_problem("You can upgrade your plan in the app under Account › Plan.", UPGRADE) is None
    )


def test_an_invented_code_is_caught() -> None:
    problem = claim_problem(
        "Send us code 37 to claim your warranty.",
        "Your Brightwave Hub 3 router arrives within 3 working days of ordering.",
    )
    assert problem is not None and "37" in problem


def test_negations_must_match() -> None:
    assert "negation" in (claim_problem("Gift cards expire.", "Gift cards never expire.") or "")
    assert claim_problem("Gift cards never expire.", "Gift cards never expire.") is None
    added = claim_problem("The router does not need a restart.", "The router needs a restart.")
    assert added is not None and "negation" in added


def test_a_restricting_condition_must_be_kept_unless_the_question_states_it() -> None:
    assert "'if'" in (claim_problem("Your plan moves with you at no charge.", MOVE, "") or "")
    kept = (
        "If Brightwave Fibre is available at the new address, your plan moves with you at no "
        "charge."
    )
    assert claim_problem(kept, MOVE) is None
    downgrade = "Downgrades are possible once your minimum term of 12 months has ended."
    assert "'once'" in (
        claim_problem("Downgrades are possible.", downgrade, "Can I downgrade?") or ""
    )
    payment = "If a payment fails we try again after 5 days and send you an email."
    asked = "What happens if my payment fails?"
    assert claim_problem("We try again after 5 days and send you an email.", payment, asked) is None


def test_an_added_condition_is_a_claim() -> None:
    problem = claim_problem("Refunds are possible only by card.", "Refunds are possible by card.")
    assert problem is not None and "condition" in problem


def test_partial_sentences_hold_back_unknown_numbers_and_names() -> None:
    assert partial_problem("Hold the reset button for 12 sec", [RESET]) is not None
    assert partial_problem("Hold the reset button for 10 sec", [RESET]) is None
    assert partial_problem("Open the app under Account › Billing and", [UPGRADE]) is not None


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("A: No. All plans have unlimited data.", "No. All plans have unlimited data."),
        ("Q: Is there a data limit?", "Is there a data limit?"),
        ("Answer: yes.", "yes."),
        ("1. Open the app.", "Open the app."),
        ("10 seconds is enough.", "10 seconds is enough."),
        ("All plans are unlimited.", "All plans are unlimited."),
    ],
)
def test_labels_and_list_numbers_are_stripped(text: str, clean: str) -> None:
    assert LABEL.sub("", text) == clean
