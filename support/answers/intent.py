"""What a question asks for, and whether a sentence states it: a duration for "how long", an
amount for "how much", a step the customer can take for "how do I" or a reported problem.

Word overlap alone cannot tell "If you cancel within 14 days you get a full refund" from
"Refunds go back within 10 working days" for "How long do refunds take?" (both share the one
term "refund"), nor the advice under "Slow Wi-Fi" from its first sentence for "My wifi is slow
upstairs". Fact selection (facts.py) ranks a sentence that states what the question asks for
first among sentences of similar overlap. Pattern-based on purpose: no model call, and the
patterns name kinds of answers (durations, amounts, instructions), never a knowledge base's
topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .words import STOPWORDS, terms


class Wants(StrEnum):
    NOTHING = ""
    DURATION = "duration"  # how long, how soon
    AMOUNT = "amount"  # how much, what does it cost
    COUNT = "count"  # how many
    TIME = "time"  # when, what day
    STEPS = "steps"  # how do I, what should I do, or a reported problem


@dataclass(frozen=True, slots=True)
class Intent:
    wants: Wants
    # The action of a how-to question ("change" in "How do I change my Wi-Fi password?"):
    # its first words after the question phrase.
    actions: tuple[str, ...] = ()


_UNIT = (
    r"(?:second|minute|hour|day|working day|business day|week|month|year|night)s?"
    r"|overnight|weekly|monthly|yearly|annually|daily"
)
_NUMBER = r"(?:\d+(?:[.,]\d+)?|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|"
_NUMBER += r"fifteen|twenty|thirty|sixty|ninety|a few|several)"
_DURATION = re.compile(
    rf"\b{_NUMBER}(?:\s*(?:-|to)\s*\d+)?\s+(?:full\s+|calendar\s+)?(?:{_UNIT})\b"
    r"|\b(?:immediately|instantly|straight away|right away|the same day|the next day)\b",
    re.IGNORECASE,
)
_MONEY = re.compile(
    r"[$€£]\s?\d|\b\d+(?:[.,]\d+)?\s?(?:euros?|eur|dollars?|usd|pounds?|gbp|cents?|%|percent)\b"
    r"|\b(?:free of charge|no charge|at no cost|free)\b",
    re.IGNORECASE,
)
_COUNT = re.compile(
    r"\b\d+\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b", re.I
)
_DATE = re.compile(
    r"\b\d{1,2}(?:st|nd|rd|th)\b|\b\d{1,2}[:.]\d\d\s?(?:am|pm)?\b|\b\d{1,2}\s?(?:am|pm)\b"
    r"|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekdays?|weekends?)\b"
    r"|\b(?:january|february|march|april|may|june|july|august|september|october|november"
    r"|december)\b|\b(?:before|after|within|until|by|from) the (?:end|start|beginning|next)\b"
    r"|\bevery (?:day|week|month|year)\b|\bat any time\b|\banytime\b",
    re.IGNORECASE,
)
_TYPED = {
    Wants.DURATION: (_DURATION,),
    Wants.AMOUNT: (_MONEY,),
    Wants.COUNT: (_COUNT,),
    Wants.TIME: (_DATE, _DURATION),
}

_QUESTION_WANTS = (
    (re.compile(r"\bhow (?:long|soon|quickly|fast)\b", re.I), Wants.DURATION),
    (re.compile(r"\bhow many (?:days|weeks|months|hours|minutes|years)\b", re.I), Wants.DURATION),
    (
        re.compile(r"\bhow much\b|\bwhat (?:does|do|will) (?:it|they|that|this) cost\b", re.I),
        Wants.AMOUNT,
    ),
    (re.compile(r"\bhow many\b", re.I), Wants.COUNT),
    (re.compile(r"^\W*when\b|\bwhat (?:time|day|date)\b|\bby when\b", re.I), Wants.TIME),
)
_HOW_TO = re.compile(
    r"\bhow (?:do|can|could|should|would|may|might) (?:i|we|you|one)\s+|\bhow to\s+", re.I
)
_WHAT_TO_DO = re.compile(
    r"\bwhat (?:should|do|can|must|could) (?:i|we) do\b|\bwhat (?:are|is) (?:my|the) options?\b",
    re.I,
)
# A message that asks nothing and names something wrong ("My wifi is slow upstairs", "the app
# keeps crashing") reports a problem: what helps is a step to take. A statement without such a
# word asks for information ("I'm looking for information about forbearance"): on doc2dial,
# taking those for problems chose worse facts.
_PROBLEM = re.compile(
    r"n't\b|\b(?:cannot|slow|slower|broken|stuck|keeps?|stopped|stops|error"
    r"|fail(?:s|ed|ing)?|problems?|issues?|trouble|crash(?:es|ed|ing)?|down|dead|lost|missing"
    r"|wrong|disconnect(?:s|ed|ing)?|dropp(?:ed|ing)|blinking|flashing)\b",
    re.I,
)
_ASKS = re.compile(
    r"\?|^\W*(?:who|what|when|where|which|why|how|is|are|am|was|were|do|does|did|can|could|will"
    r"|would|should|shall|may|might|have|has|had)\b",
    re.I,
)

# A sentence that tells the customer what to do: it opens with an instruction ("Place the
# router ...", "To reset the router, hold ...", "You can pay ...", "Please call ...").
_INSTRUCTION_VERBS = frozenset(
    """add allow apply ask avoid bring call cancel change check choose click close complete
    confirm connect contact create disable download email enable enter fill find follow go hold
    install keep leave log look make move open pay place plug press print provide put read
    register remember remove renew replace report request reset restart return run save
    schedule select send set sign start stop submit switch tap tell try turn type unplug update
    upload use visit wait write""".split()  # noqa: SIM905
)
_LEADS_TO_ACTION = r"\b(?:to|can|may|must|should|please|need to|have to)\s+"
_INSTRUCTION_OPENING = re.compile(
    r"^\W*(?:(?:to|in order to) [a-z]+"
    r"|(?:you|customers|members) (?:can|may|should|must|need to|will need to|have to)\b"
    r"|(?:please\s+|first,?\s+|then\s+|simply\s+|just\s+)?(?P<verb>[a-z]+)\b)",
    re.I,
)


# A question asking for a thing ("What is your phone number?"), not for a yes or a no: an FAQ
# answer's "Yes." answers the FAQ's own question, not this one.
_WH_QUESTION = re.compile(r"^\W*(?:who|whom|whose|what|when|where|which|why|how)\b", re.I)


def asks_open_question(question: str) -> bool:
    """The question opens with a question word (what, how, when, ...): a bare "Yes." or "No."
    cannot answer it."""
    return bool(_WH_QUESTION.match(question))


def question_intent(question: str) -> Intent:
    """What `question` asks for (Wants.NOTHING when it is none of the kinds above)."""
    for pattern, wants in _QUESTION_WANTS:
        if pattern.search(question):
            return Intent(wants)
    if match := _HOW_TO.search(question):
        rest = re.findall(r"[a-z]+", question[match.end() :].lower())
        actions = tuple(w for w in rest[:3] if w not in STOPWORDS)[:2]
        return Intent(Wants.STEPS, actions)
    if _WHAT_TO_DO.search(question) or (not _ASKS.search(question) and _PROBLEM.search(question)):
        return Intent(Wants.STEPS)
    return Intent(Wants.NOTHING)


# "If the light is still blinking after 30 minutes, check the cable ...": a step to take once a
# condition holds.
_CONDITIONAL_INSTRUCTION = re.compile(
    r"\b(?:if|when|once|after|whenever|unless)\b[^,;:]{0,120}[,;:]\s*"
    r"(?:please\s+|then\s+|first\s+)?(?P<verb>[a-z]+)\b",
    re.I,
)


def _instructs(sentence: str, actions: tuple[str, ...]) -> bool:
    low = sentence.lower()
    for action in actions:
        # The action itself as an instruction: "To change it ...", "you can change", "change
        # it in the app" (not "Changing the password disconnects ...").
        if re.search(rf"(?:^\W*|{_LEADS_TO_ACTION}){re.escape(action)}\b", low):
            return True
    if actions:
        return False
    # Anywhere: a page's heading often runs into its first sentence ("Recovered vehicles If
    # your vehicle is recovered, make sure ...").
    for conditional in _CONDITIONAL_INSTRUCTION.finditer(sentence):
        if conditional.group("verb").lower() in _INSTRUCTION_VERBS:
            return True
    match = _INSTRUCTION_OPENING.match(sentence)
    if match is None:
        return False
    verb = match.group("verb")
    return verb is None or verb.lower() in _INSTRUCTION_VERBS


def states_wanted(sentence: str, intent: Intent, question_terms: set[str]) -> bool:
    """Whether `sentence` states what the question asks for. A duration, amount or date
    counts only after the sentence's first question term: the asked-for value is what the
    sentence says about the topic ("Refunds go back ... within 10 working days"), not a
    condition before it ("If you cancel within 14 days ... a full refund")."""
    if intent.wants is Wants.NOTHING:
        return False
    if intent.wants is Wants.STEPS:
        return _instructs(sentence, intent.actions)
    start = 0
    if question_terms:
        for match in re.finditer(r"[^\W_]+(?:['’.-][^\W_]+)*", sentence):
            if terms(match.group()) & question_terms:
                start = match.start()
                break
    tail = sentence[start:]
    return any(p.search(tail) for p in _TYPED[intent.wants])
