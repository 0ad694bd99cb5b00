"""Stage 1, retrieve: the passages for the latest customer message.

Each turn is answered for itself: the message decides the search. The history may only
resolve a reference ("How long does it take?", "and for my wife?"): a message that needs it
(`needs_context`) is also searched with the previous customer turn in front, and that search
wins only when it is more confident and still about the message (its top passages hold at
least half of the message's own terms). "What is the capital of France?" after a question
about data limits is searched alone, and declined. The rule is measured in
bench/context_rule.py (docs/generation.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..retrieval import SearchResult, passages_search
from .types import Question, Retrieved, Turn
from .words import terms

PASSAGES_K = 5
# A message of this many content words or fewer leans on the conversation ("the
# requirements?", "eligibility?").
SHORT_MAX_TERMS = 1
# The contextual search must keep this share of the message's own terms in its top passages.
CONTEXT_COVERAGE = 0.5
COVERAGE_PASSAGES = 3

_REFERENCE = re.compile(
    r"\b(?:it|its|it's|that|this|these|those|they|them|their|theirs|there|one|ones|same|such"
    r"|he|she|him|her|his|hers|former|latter|above|mentioned|else|other|another)\b",
    re.IGNORECASE,
)
_ELLIPTIC = re.compile(
    r"^\s*(?:and|or|but|also|so|then|what about|how about|what if|same for|even|only)\b",
    re.IGNORECASE,
)


def needs_context(text: str) -> bool:
    """The message refers to something said before: a reference word ("it", "that plan",
    "they"), an elliptic opening ("and for kids?", "what about ..."), or hardly any words
    of its own."""
    return bool(
        _REFERENCE.search(text) or _ELLIPTIC.search(text) or len(terms(text)) <= SHORT_MAX_TERMS
    )


def previous_customer_turn(history: Sequence[Turn]) -> str:
    turns = [t.text for t in history if t.role == "customer" and t.text.strip()]
    return turns[-1] if turns else ""


def covers(result: SearchResult, text: str) -> bool:
    """The result's top passages hold at least CONTEXT_COVERAGE of the message's terms."""
    own = terms(text)
    if not own:
        return True
    found = set().union(*(terms(p.text) for p in result.passages[:COVERAGE_PASSAGES]))
    return len(own & found) / len(own) >= CONTEXT_COVERAGE


def context_wins(text: str, alone: SearchResult, joined: SearchResult) -> bool:
    """Use the search with the history in front instead of the message's own."""
    return needs_context(text) and joined.confidence > alone.confidence and covers(joined, text)


def retrieve(question: Question) -> Retrieved:
    """The message's own search; for a message that needs it, the one with the previous
    customer turn in front when that is more confident and still about the message."""
    alone = passages_search(query=question.text, k=PASSAGES_K)
    previous = previous_customer_turn(question.history)
    if previous and needs_context(question.text):
        joined = passages_search(query=f"{previous} {question.text}", k=PASSAGES_K)
        if context_wins(question.text, alone, joined):
            return Retrieved(joined)
    return Retrieved(alone)
