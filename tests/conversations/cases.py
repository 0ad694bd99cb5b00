"""Scripted conversations over the demo knowledge base (support/demo_kb/), each turn with what
the bot must do and the facts its reply must and must never state.

`says`: phrases the reply holds (case-insensitive, citation markers ignored); `never`: phrases
it must not hold. Expectations follow the knowledge base's own words: a case that fails is a
defect of the bot, never a reason to loosen the case.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Turn:
    """A customer message and what must follow, or an agent's action."""

    customer: str = ""
    # answer: the bot answers (generated or quoted). decline: the bot says it is not sure
    # and offers a person, the conversation stays with the bot. handoff: the conversation goes
    # to the queue. ack: queued, the message is acknowledged (no bot answer).
    expect: str = "answer"
    says: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    # Agent actions instead of a customer message: "claim", "reply:<text>", "hand_back",
    # "resolve".
    agent: str = ""


@dataclass(frozen=True)
class Case:
    name: str
    turns: tuple[Turn, ...] = field(default_factory=tuple)


def t(
    customer: str, expect: str = "answer", says: tuple[str, ...] = (), never: tuple[str, ...] = ()
) -> Turn:
    return Turn(customer=customer, expect=expect, says=says, never=never)


def agent(action: str) -> Turn:
    return Turn(agent=action, expect="")


LABELS = ("A:", "Q:")

# fmt: off
CASES: tuple[Case, ...] = (
    # --- numbers, codes, named parts: the answer states the source's facts, not recombinations
    Case("factory reset", (t("How do I factory reset my router?", says=("reset button", "10 seconds"), never=("power button",)),)),
    Case("restart", (t("How do I restart my router?", says=("30 seconds",), never=("reset button",)),)),
    Case("billing date", (t("When am I billed?", says=("1st",), never=("issued on the 15th", "billed on the 15th")),)),
    Case("late fee", (t("How much is the late fee?", says=("7.50",)),)),
    Case("static ip", (t("Do you offer a static IP address?", says=("Fibre 1000", "5 euros"), never=LABELS),)),
    Case("error code", (t("What does error ERR-7730 mean?", says=("overheating",), never=("ERR-4032", "ERR-1101")),)),
    Case("unknown error code", (t("What does error E07 mean?", expect="decline", never=("ERR-4032", "ERR-1101", "ERR-7730")),)),
    Case("keep number", (t("Can I keep my old phone number?", says=("5 working days",), never=LABELS),)),
    Case("refund window", (t("Can I get a refund if I cancel?", says=("14 days",)),)),
    Case("refund time", (t("How long do refunds take?", says=("10 working days",)),)),
    Case("direct debit discount", (t("Is there a discount for paying by direct debit?", says=("2 euros",)),)),
    Case("router delivery", (t("When will my router arrive?", says=("3 working days",)),)),
    Case("two-step", (t("How do I turn on two-step verification?", says=("Security",)),)),
    Case("minimum term", (t("How long is the minimum term?", says=("12 months",), never=LABELS),)),
    # --- FAQ answers never leak their "A:" label
    Case("data limit", (t("Is there a data limit?", says=("unlimited",), never=LABELS),)),
    Case("speeds", (t("What speeds do you offer?", says=("Fibre 150",), never=LABELS),)),
    # --- negations and conditions stay as the source states them
    Case("activation at home", (t("Do I need to be at home for the activation?", says=("engineer",), never=("you need to be at home for activation.",)),)),
    Case("cut off", (t("Will you cut off my service without warning?", says=("14 days",)),)),
    Case("phishing", (t("I got an email asking for my password, is that you?", says=("never asks",)),)),
    # --- paraphrases of covered questions are answered, not declined
    Case("moving house", (t("Can I take my plan when moving house?", says=("new address",), never=("Account › Plan", "upgrade")),)),
    Case("slow wifi upstairs", (t("My wifi is slow upstairs", says=("router",)),)),
    Case("relocating", (t("I'm relocating next month, what happens to my internet contract?", says=("new address",)),)),
    Case("blinking orange", (t("The light on my router keeps blinking orange, what should I do?", says=("fibre cable",)),)),
    Case("missed payment", (t("What happens if I miss a payment?", says=("5 days",)),)),
    Case("outage", (t("Is there an outage in my area?", says=("Service status",)),)),
    # (a customer's own wording, tried by hand on 2026-12-03)
    Case("late fee paraphrase", (t("how much is the fee if I pay late?", says=("7.50",)),)),
    Case("money back", (t("Can I get my money back if I cancel in the first two weeks?", says=("14 days",)),)),
    Case("downgrade mid-contract", (t("can I downgrade my plan mid-contract", says=("12 months",)),)),
    Case("charged each month", (t("when will I be charged each month", says=("15th",)),)),
    Case("activation time", (t("how long does activation take", says=("welcome email",), never=("refund",)),)),
    # (a customer's own wording, tried by hand on 2026-12-04 with `ask`: the knowledge base covers each)
    Case("line goes live", (t("where can I see when my line goes live", says=("My line",)),)),
    Case("no coverage at the new address", (t("is there a fee if I cancel because you don't cover my new place?", says=("without a cancellation fee",)),)),
    Case("router not returned", (t("what if I don't send the router back", says=("60 euros",)),)),
    Case("first bill higher", (t("why is my first bill so high?", says=("part-month",)),)),
    Case("fastest plan", (t("how fast is the fastest plan", says=("1 Gbit/s",)),)),
    Case("router hot", (t("my router is very hot", says=("vents",)),)),
    Case("notice before cut off", (t("how many days notice before you disconnect me", says=("14 days",)),)),
    Case("moving notice", (t("how soon do I need to tell you I'm moving", says=("3 weeks",)),)),
    Case("restart keeps settings", (t("will a restart delete my settings", says=("does not change your settings",)),)),
    Case("overpayment", (t("I overpaid, how do I get it back?", says=("Billing › Refunds",)),)),
    Case("fair use", (t("Is there a fair use policy?", says=("no fair-use cap",), never=LABELS),)),
    Case("router setup", (t("How do I set up my router?", says=("fibre cable",)),)),
    Case("paypal", (t("can i pay with paypal", says=("direct debit",)),)),
    Case("upgrade price", (t("does upgrading cost more", says=("next bill",)),)),
    Case("our phone number", (t("what is your phone number", expect="decline", never=("Yes", "old number")),)),
    Case("weather", (t("what's the weather tomorrow", expect="decline"),)),
    # --- follow-ups and topic switches: each turn is answered for itself
    Case("follow-up pronoun", (
        t("How do I change my Wi-Fi password?", says=("Wi-Fi settings",)),
        t("Will that disconnect my devices?", says=("reconnect",)),
    )),
    Case("follow-up ellipsis", (
        t("How do I upgrade my plan?", says=("Account › Plan",)),
        t("And can I downgrade?", says=("12 months",)),
    )),
    Case("topic switch", (
        t("How do I reset my app password?", says=("Forgot password",)),
        t("What does error ERR-1101 mean?", says=("sign in",), never=("Forgot password",)),
    )),
    # --- off-topic and uncovered questions are declined, whatever came before
    Case("off-topic first", (t("What is the capital of France?", expect="decline"),)),
    Case("off-topic after on-topic", (
        t("Is there a data limit?", says=("unlimited",)),
        t("What is the capital of France?", expect="decline", never=("unlimited",)),
    )),
    Case("not in the knowledge base", (t("How do I make a warranty claim?", expect="decline", never=("code",)),)),
    Case("decline twice hands over", (
        t("What is the capital of France?", expect="decline"),
        t("Who won the football world cup in 2018?", expect="handoff"),
    )),
    Case("decline then yes", (
        t("How do I make a warranty claim?", expect="decline"),
        t("yes please", expect="handoff"),
    )),
    # --- people: a request for a person, queued messages, hand back
    Case("asks for a person", (t("I want to talk to a person", expect="handoff"),)),
    Case("hand back answers the latest question", (
        t("How do I restart my router?", says=("30 seconds",)),
        t("agent please", expect="handoff"),
        t("How much does a static IP cost?", expect="ack"),
        agent("claim"),
        agent("hand_back"),
        t("", expect="answer", says=("5 euros",)),
    )),
    Case("agent replies and hands back", (
        t("I want to talk to a person", expect="handoff"),
        agent("claim"),
        agent("reply:Happy to help. What would you like to know?"),
        agent("hand_back"),
        t("What speeds do you offer?", says=("Fibre 500",), never=LABELS),
    )),
)
# fmt: on
