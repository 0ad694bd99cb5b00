"""The pure decision: each trigger, and messages that must not escalate.

No database access here: pytest-django refuses it, which also proves the decision is pure.
"""

from __future__ import annotations

import pytest

from support.handoff.escalation_rules import (
    CUSTOMER_REQUEST,
    FRUSTRATION,
    LOW_CONFIDENCE,
    REPEATED_FAILURE,
    SENSITIVE_TOPIC,
    UNGROUNDED,
    AnswerOutcome,
    ConversationState,
    PastTurn,
    Thresholds,
    escalation_decide,
)

from .conftest import TOPICS, ScriptedSimilarity


def decide(text: str, **kwargs: object):  # type: ignore[no-untyped-def]
    similarity = kwargs.pop("similarity", None)
    return escalation_decide(ConversationState(text=text, **kwargs), similarity=similarity)  # type: ignore[arg-type]


# --- asks for a person ---------------------------------------------------------------------------
REQUESTS = [
    # English, including chat-speak, typos and expletives
    "talk to a human",
    "agent please",
    "real person",
    "AGENT",
    "Representative!",
    "human",
    "Can I speak to a real person?",
    "I want to talk to someone",
    "connect me with an agent",
    "get me a human",
    "I need a person to help me with this",
    "transfer me to customer service please",
    "let me speak to your manager",
    "I don't want to talk to a bot",
    "stop the bot",
    "Is there a human around?",
    "can I have someone call me back",
    "I prefer human help",
    "pls get me an operator",
    "I have got to speak with a eprson",
    "I am trying to chat with a damn agent",
    "can u help me contact a live agent",
    "i dont understand you, i want to speak with somebody",
    # German, French, Spanish, Dutch, Italian, Portuguese
    "Ich möchte mit einem Menschen sprechen",
    "Bitte verbinden Sie mich mit einem Mitarbeiter",
    "Mitarbeiter bitte",
    "Kann ich mit einer echten Person reden?",
    "Je veux parler à un conseiller",
    "Puis-je parler à une vraie personne ?",
    "un humain svp",
    "Je voudrais parler avec quelqu'un",
    "Quiero hablar con un agente",
    "¿Puedo hablar con una persona real?",
    "agente por favor",
    "Pásame con un humano",
    "Ik wil een medewerker spreken",
    "Kan ik met een echt persoon praten?",
    "medewerker graag",
    "Voglio parlare con un operatore",
    "Posso parlare con una persona reale?",
    "operatore per favore",
    "Quero falar com um atendente",
    "Posso falar com uma pessoa de verdade?",
    "atendente por favor",
    "Preciso falar com alguém",
]


@pytest.mark.parametrize("text", REQUESTS)
def test_asks_for_a_person(text: str) -> None:
    decision = decide(text)
    assert decision.escalate
    assert CUSTOMER_REQUEST in decision.reasons


# Ordinary messages that share words with requests, and mild negativity: never escalate.
MUST_NOT_ESCALATE = [
    "What does human resources do?",
    "my user agent is Firefox 120, is it supported?",
    "How do I change the user-agent header of the API client?",
    "Can a travel agent book the tickets for me?",
    "Do you work with real estate agents?",
    "How do I become an agent?",
    "Is Agent Orange exposure covered?",
    "My insurance agent told me to send you this form",
    "Our agent network is down since this morning",
    "the app is a bit slow",
    "The app is a bit slow today, is there maintenance?",
    "The delivery was slower than I expected",
    "I'm a bit disappointed the colour is different",
    "not great, but ok",
    "How do I reset my password?",
    "Can someone else pick up my parcel?",
    "How many people can use one account?",
    "Are you a real person?",
    "I spoke to an agent yesterday about my refund, any news?",
    "Can I talk to you about my order?",
    "Is the live chat available on weekends?",
    "Can my assistant manage my account?",
    "Where is my damn parcel?",
    "I need to correct the goddamn shipping address",
    "What if my card was stolen?",
    "If I need to file a complaint later, how does it work?",
    "How do I file a claim for disability benefits?",
    "What is the person limit for a group booking?",
    "Which agent handled my last order?",
    "Thanks, that helped!",
    "I want to speak German",
]


@pytest.mark.parametrize("text", MUST_NOT_ESCALATE)
def test_ordinary_messages_do_not_escalate(text: str) -> None:
    decision = decide(text)
    assert not decision.escalate, decision.reasons
    assert decision.reasons == ()


def test_embedding_similarity_catches_a_request_the_rules_miss() -> None:
    text = "i just want to talk, is that possible"  # to whom? the rules do not guess
    assert not decide(text).escalate
    similar = ScriptedSimilarity({(text, "I want assistance talking to somebody"): 0.82})
    decision = decide(text, similarity=similar)
    assert decision.reasons == (CUSTOMER_REQUEST,)


def test_embedding_similarity_needs_a_lead_over_the_near_misses() -> None:
    text = "our agent system is down"
    similar = ScriptedSimilarity(
        {
            (text, "connect me with an agent please"): 0.7,
            (text, "the agent app crashes when I log in"): 0.66,
        }
    )
    assert not decide(text, similarity=similar).escalate


def test_messages_without_a_person_word_are_not_compared_with_the_request_examples() -> None:
    similar = ScriptedSimilarity()
    decide("How do I reset my router?", similarity=similar)
    assert all("I want to talk to a human" not in others for _, others in similar.calls)


# --- frustration ---------------------------------------------------------------------------------
FRUSTRATED = [
    "I want to file a complaint",
    "I'd like to lodge a formal complaint against your company",
    "help me lodge a consumer claim against your business",
    "This is unacceptable!",
    "You are useless",
    "this bot is stupid",
    "Worst service ever",
    "I'm so angry right now",
    "I am furious, my order never arrived and nobody answers",
    "How many times do I have to ask?",
    "This is horrible and disgusting, I hate it, worst nightmare",
    "fuck you",
    "Das ist eine Frechheit",
    "Ich möchte mich beschweren",
    "C'est inadmissible",
    "Je veux déposer une plainte",
    "Es inaceptable",
    "Quiero poner una reclamación",
    "Dit is belachelijk",
    "Ik wil een klacht indienen",
    "È inaccettabile",
    "Isso é inaceitável",
]


@pytest.mark.parametrize("text", FRUSTRATED)
def test_frustration(text: str) -> None:
    decision = decide(text)
    assert FRUSTRATION in decision.reasons


def test_sentiment_threshold_comes_from_the_state() -> None:
    text = "I am a little unhappy with the delay"  # VADER: about -0.59
    assert not decide(text).escalate
    strict = Thresholds(negative_sentiment=-0.5)
    assert decide(text, thresholds=strict).reasons == (FRUSTRATION,)


ROUTER_Q = "How do I reset my router to factory settings?"
ANSWERED = (
    PastTurn("customer", ROUTER_Q),
    PastTurn("bot", "Hold the reset button for 10 seconds [1].", action="answer"),
)


def test_the_same_question_again_after_an_answer_is_frustration() -> None:
    decision = decide("how do i reset my router to factory settings", turns=ANSWERED)
    assert decision.reasons == (FRUSTRATION,)


def test_a_paraphrase_of_an_answered_question_is_frustration_with_embeddings() -> None:
    text = "Seriously, how can I factory reset the router?"
    similar = ScriptedSimilarity({(text, ROUTER_Q): 0.93})
    assert not decide(text, turns=ANSWERED).escalate
    assert decide(text, turns=ANSWERED, similarity=similar).reasons == (FRUSTRATION,)
    lenient = Thresholds(repeat_similarity=0.95)
    assert not decide(text, turns=ANSWERED, thresholds=lenient, similarity=similar).escalate


def test_repeating_a_question_that_was_not_answered_is_not_frustration() -> None:
    turns = (PastTurn("customer", ROUTER_Q),)
    assert not decide(ROUTER_Q, turns=turns).escalate


def test_short_messages_repeat_naturally() -> None:
    turns = (
        PastTurn("customer", "ok thanks"),
        PastTurn("bot", "You're welcome!", action="answer"),
    )
    assert not decide("ok thanks", turns=turns).escalate


# --- sensitive topics ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("I will contact my lawyer about this", "Legal threat"),
        ("I'm going to sue you", "Legal threat"),
        ("Mein Anwalt meldet sich", "Legal threat"),
        ("Please delete my account", "Account deletion"),
        ("I want a refund of 750 EUR", "Large refund"),
        ("refund over $1,200 please", "Large refund"),
        ("Ich möchte eine Rückerstattung über 800 €", "Large refund"),
        ("My account was hacked", "Security incident"),
    ],
)
def test_sensitive_topic_keywords(text: str, topic: str) -> None:
    decision = decide(text, topics=TOPICS)
    assert SENSITIVE_TOPIC in decision.reasons
    assert decision.topics == (topic,)
    assert decision.customer_message == next(t for t in TOPICS if t.name == topic).customer_message


@pytest.mark.parametrize(
    "text",
    [
        "I want a refund of 40 EUR",
        "How do refunds work?",
        "refund for order 00123842",
        "refund for order #5000",
        "I want a refund for my 2023 purchase",
        "What does a lawyerly tone mean?",  # whole words only
        "Please delete my address",
    ],
)
def test_sensitive_topic_non_matches(text: str) -> None:
    assert SENSITIVE_TOPIC not in decide(text, topics=TOPICS).reasons


def test_topic_example_phrasings_match_by_similarity() -> None:
    text = "somebody else signed in to my profile"
    similar = ScriptedSimilarity({(text, "someone else logged into my account"): 0.8})
    assert not decide(text, topics=TOPICS).escalate
    decision = decide(text, topics=TOPICS, similarity=similar)
    assert decision.reasons == (SENSITIVE_TOPIC,)
    assert decision.customer_message == "Security matters are handled by a person."


def test_several_topics_send_each_message_once() -> None:
    decision = decide("I was hacked and my lawyer will sue you", topics=TOPICS)
    assert decision.topics == ("Legal threat", "Security incident")
    assert decision.customer_message.count("\n\n") == 1


# --- no grounded answer --------------------------------------------------------------------------
# Issue 12: a decline offers a person and suggestions; it no longer hands over by itself (it
# used to add LOW_CONFIDENCE or UNGROUNDED whenever the answer declined).
DECLINE_PROMPT = PastTurn(
    "bot",
    "I'm not sure about that — could you rephrase, or shall I get a person?",
    action="escalate",
    reason="low_confidence",
)


@pytest.mark.parametrize("reason", ["low_confidence", "no_passages", "no_facts", "ungrounded"])
def test_a_lone_decline_does_not_hand_over(reason: str) -> None:
    answer = AnswerOutcome("escalate", reason, grounded=False)
    decision = decide("What is the meaning of life?", answer=answer)
    assert not decision.escalate and decision.reasons == ()


def test_a_cancelled_answer_is_not_a_decline() -> None:
    answer = AnswerOutcome("escalate", "cancelled", grounded=False)
    assert not decide("What is the meaning of life?", answer=answer).escalate


def test_an_answer_shown_ungrounded_escalates() -> None:
    shown = AnswerOutcome("answer", "grounded", grounded=False)
    assert decide("How do I pair it?", answer=shown).reasons == (UNGROUNDED,)


def test_a_decline_names_its_kind_when_another_rule_hands_over() -> None:
    declined = AnswerOutcome("escalate", "low_confidence", grounded=False)
    decision = decide("This is unacceptable!", answer=declined)
    assert decision.reasons == (FRUSTRATION, LOW_CONFIDENCE)
    failed = AnswerOutcome("escalate", "ungrounded", grounded=False)
    assert decide("This is unacceptable!", answer=failed).reasons == (FRUSTRATION, UNGROUNDED)


def test_a_second_decline_in_a_row_hands_over() -> None:
    turns = (cust("What is the capital of France?"), DECLINE_PROMPT)
    answer = AnswerOutcome("escalate", "low_confidence", grounded=False)
    decision = decide("", turns=turns, answer=answer)
    assert decision.reasons == (LOW_CONFIDENCE, REPEATED_FAILURE)


def test_a_decline_after_a_good_answer_does_not_hand_over() -> None:
    turns = (*ANSWERED, cust("What is the capital of France?"), bot(), cust("and Spain?"))
    answer = AnswerOutcome("escalate", "low_confidence", grounded=False)
    assert not decide("", turns=(cust(), DECLINE_PROMPT, *turns), answer=answer).escalate


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "Yes please!",
        "yes pls",
        "yeah",
        "yep, a person please",
        "a person please",
        "sure",
        "please",
        "please do",
        "yes, get me someone",
        "human",
        "ja bitte",
        "oui svp",
        "sí, por favor",
    ],
)
def test_yes_to_the_decline_offer_asks_for_a_person(text: str) -> None:
    turns = (cust("How do I make a warranty claim?"), DECLINE_PROMPT)
    assert decide(text, turns=turns).reasons == (CUSTOMER_REQUEST,)


@pytest.mark.parametrize(
    "text",
    [
        "no",
        "no thanks",
        "ok",
        "thanks",
        "not now",
        "yes but how do I reset my router?",
        "sure, what about the late fee?",
    ],
)
def test_other_replies_to_the_offer_are_not_a_request(text: str) -> None:
    turns = (cust("How do I make a warranty claim?"), DECLINE_PROMPT)
    assert CUSTOMER_REQUEST not in decide(text, turns=turns).reasons


def test_yes_without_an_offer_is_not_a_request() -> None:
    assert not decide("yes please", turns=ANSWERED).escalate
    assert not decide("yes please").escalate
    # An agent or an answer after the decline: the offer is no longer pending.
    after_agent = (cust(), DECLINE_PROMPT, PastTurn("agent", "Hi, I'm Sam."))
    assert not decide("yes", turns=after_agent).escalate
    after_answer = (cust(), DECLINE_PROMPT, cust("router reset?"), bot())
    assert not decide("yes", turns=after_answer).escalate


def test_system_lines_do_not_hide_the_offer() -> None:
    turns = (
        cust(),
        DECLINE_PROMPT,
        PastTurn("system", "Thanks — a person will see this when they join", reason="ack"),
    )
    assert decide("yes please", turns=turns).reasons == (CUSTOMER_REQUEST,)


def test_a_quoted_fallback_after_a_failed_groundedness_check_does_not_escalate() -> None:
    # The pipeline replaced the generation with a grounded quote: the customer has an answer.
    answer = AnswerOutcome("extractive", "ungrounded_generation", grounded=True)
    assert not decide("How do I pair it?", answer=answer).escalate


def test_a_good_answer_does_not_escalate() -> None:
    answer = AnswerOutcome("answer", "grounded", grounded=True)
    assert not decide(ROUTER_Q, answer=answer).escalate


# --- repeated failure ----------------------------------------------------------------------------
def bot(action: str = "answer", feedback: str | None = None) -> PastTurn:
    return PastTurn("bot", "...", action=action, feedback=feedback)


def cust(text: str = "a question about my order") -> PastTurn:
    return PastTurn("customer", text)


def test_two_thumbs_down_in_a_row() -> None:
    turns = (cust(), bot(feedback="down"), cust(), bot(feedback="down"))
    assert decide("and now?", turns=turns).reasons == (REPEATED_FAILURE,)


def test_one_thumbs_down_is_not_enough() -> None:
    turns = (cust(), bot(feedback="up"), cust(), bot(feedback="down"))
    assert not decide("and now?", turns=turns).escalate


def test_a_good_answer_in_between_ends_the_run() -> None:
    turns = (cust(), bot(feedback="down"), cust(), bot(), cust(), bot(feedback="down"))
    assert not decide("and now?", turns=turns).escalate


def test_an_agent_message_ends_the_run() -> None:
    turns = (
        cust(),
        bot(feedback="down"),
        PastTurn("agent", "Back to the bot."),
        cust(),
        bot(feedback="down"),
    )
    assert not decide("and now?", turns=turns).escalate


def test_system_lines_are_not_failures_and_do_not_end_the_run() -> None:
    ack = PastTurn("system", "Thanks — a person will see this when they join", reason="ack")
    queued = PastTurn("system", "Waiting for a person — you're in the queue", reason="queued")
    turns = (cust(), DECLINE_PROMPT, ack, queued, cust())
    answer = AnswerOutcome("escalate", "no_facts", grounded=False)
    assert decide("", turns=turns, answer=answer).reasons == (LOW_CONFIDENCE, REPEATED_FAILURE)
    only_lines = (cust(), ack, queued, cust())
    assert not decide("", turns=only_lines, answer=answer).escalate


def test_a_hand_back_ends_the_run() -> None:
    back = PastTurn("system", "Sam handed you back to the assistant", reason="handed_back")
    turns = (cust(), DECLINE_PROMPT, back, cust())
    answer = AnswerOutcome("escalate", "low_confidence", grounded=False)
    assert not decide("", turns=turns, answer=answer).escalate


def test_a_decline_and_a_thumbs_down_count_together() -> None:
    turns = (cust(), bot(feedback="down"))
    answer = AnswerOutcome("escalate", "low_confidence", grounded=False)
    assert decide("hm", turns=turns, answer=answer).reasons == (LOW_CONFIDENCE, REPEATED_FAILURE)


def test_the_failure_count_comes_from_the_state() -> None:
    turns = (cust(), bot(feedback="down"), cust(), bot(feedback="down"))
    assert not decide("and now?", turns=turns, thresholds=Thresholds(failures_in_a_row=3)).escalate
    one = Thresholds(failures_in_a_row=1)
    assert decide("x", turns=(cust(), bot(feedback="down")), thresholds=one).escalate


def test_a_good_answer_now_resets_the_run_at_the_answer_stage() -> None:
    turns = (cust(), bot(feedback="down"), cust(), bot(feedback="down"))
    answer = AnswerOutcome("answer", "grounded", grounded=True)
    assert not decide("x", turns=turns, answer=answer).escalate


# --- several at once -----------------------------------------------------------------------------
def test_reasons_are_listed_in_a_fixed_order() -> None:
    decision = decide(
        "This is unacceptable, I want to talk to a human and my lawyer will call", topics=TOPICS
    )
    assert decision.reasons == (CUSTOMER_REQUEST, FRUSTRATION, SENSITIVE_TOPIC)
