"""What a question asks for (support.answers.intent) and how it ranks facts (facts.py)."""

from __future__ import annotations

import pytest

from support.answers.citations import extractive_answer
from support.answers.facts import facts_select
from support.answers.intent import Wants, question_intent, states_wanted
from support.answers.words import terms
from support.retrieval import Passage
from tests.factories import passage


def _passage(n: int, text: str, heading: tuple[str, ...] = ()) -> Passage:
    return passage(n, text, heading=heading)


@pytest.mark.parametrize(
    ("question", "wants"),
    [
        ("How long do refunds take?", Wants.DURATION),
        ("How soon will my parcel arrive?", Wants.DURATION),
        ("How much is the late fee?", Wants.AMOUNT),
        ("How many devices can I connect?", Wants.COUNT),
        ("When am I billed?", Wants.TIME),
        ("How do I change my password?", Wants.STEPS),
        ("The light keeps blinking, what should I do?", Wants.STEPS),
        ("My wifi is slow upstairs", Wants.STEPS),  # a reported problem
        ("Is there a data limit?", Wants.NOTHING),
        ("What does error 12 mean?", Wants.NOTHING),
    ],
)
def test_what_a_question_asks_for(question: str, wants: Wants) -> None:
    assert question_intent(question).wants is wants


def test_a_duration_counts_only_after_the_questions_topic() -> None:
    q = "How long do refunds take?"
    intent, q_terms = question_intent(q), terms(q)
    assert states_wanted("Refunds go back to your card within 10 working days.", intent, q_terms)
    # The 14 days are the condition, not how long a refund takes.
    assert not states_wanted("If you cancel within 14 days you get a full refund.", intent, q_terms)
    assert not states_wanted("Refunds go back to your card.", intent, q_terms)


def test_a_how_to_question_wants_its_action_as_an_instruction() -> None:
    intent = question_intent("How do I change my password?")
    assert intent.actions[0] == "change"
    assert states_wanted("You can change it in the app under Settings.", intent, set())
    assert states_wanted("To change it, open Settings.", intent, set())
    assert not states_wanted("Changing the password signs you out everywhere.", intent, set())


def test_a_reported_problem_wants_a_step_to_take() -> None:
    intent = question_intent("My wifi is slow upstairs")
    assert states_wanted("Place the router in a central spot.", intent, set())
    assert states_wanted("You can run a speed test in the app.", intent, set())
    assert not states_wanted("Wi-Fi is slower through walls and floors.", intent, set())


def test_the_fact_stating_what_is_asked_is_quoted() -> None:
    facts = facts_select(
        question="How long do refunds take?",
        passages=[
            _passage(
                1,
                "If you cancel within 14 days you get a full refund. Refunds go back to the "
                "original payment method within 10 working days. Overpayments are refunded "
                "on request.",
            )
        ],
    )
    assert len(facts) == 3 and {f.score for f in facts} == {1.0}  # overlap cannot tell them
    assert extractive_answer(facts) == (
        "Refunds go back to the original payment method within 10 working days."
    )


def test_advice_under_a_matching_heading_is_a_fact_without_sharing_a_word() -> None:
    section = _passage(
        1,
        "Wi-Fi is slower through walls and floors. Place the router in a central, open spot. "
        "The sky is blue.",
        heading=("Troubleshooting", "Slow Wi-Fi"),
    )
    facts = facts_select(question="My wifi is slow upstairs", passages=[section])
    texts = [f.text for f in facts]
    assert "Place the router in a central, open spot." in texts
    assert "The sky is blue." not in texts  # states nothing asked for: still a distraction
    assert extractive_answer(facts) == "Place the router in a central, open spot."
    # Without the heading, the sentence shares nothing with the question: no fact.
    bare = facts_select(question="My wifi is slow upstairs", passages=[_passage(1, section.text)])
    assert "Place the router in a central, open spot." not in [f.text for f in bare]


def test_the_intent_bonus_ranks_but_never_raises_the_score() -> None:
    facts = facts_select(
        question="How long do refunds take?",
        passages=[_passage(1, "Refunds go back within 10 working days.")],
    )
    assert facts[0].score == 1.0 and facts[0].rank > facts[0].score


def test_a_statement_asking_for_information_is_no_problem_report() -> None:
    assert question_intent("I'm looking for information about forbearance.").wants is Wants.NOTHING
    assert question_intent("hello i need help on how education benefits work").wants is (
        Wants.NOTHING
    )
    assert question_intent("The app keeps crashing").wants is Wants.STEPS
    # A negation alone is no problem report (doc2dial: "it's not my case Social Security
    # Credits" got an instruction instead of the definition).
    assert question_intent("it's not my case Social Security Credits").wants is Wants.NOTHING


def test_a_step_after_a_condition_is_an_instruction() -> None:
    intent = question_intent("The light keeps blinking orange, what should I do?")
    assert states_wanted(
        "If the light is still blinking after 30 minutes, check the fibre cable.", intent, set()
    )
    assert not states_wanted("If the light is blinking, the line has no signal.", intent, set())
