"""Fact selection: the sentences of the top passages that the model may use.

Lexical on purpose (docs/generation.md, "Tuning history"): embedding every sentence cost
seconds per question on 2 cores and chose no better facts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..retrieval import Passage
from ..text import sentences
from .claims import LABEL
from .types import Fact
from .words import clean_untrusted, content_words, terms

MAX_PASSAGES = 3  # facts come from the top passages only
MAX_FACTS = 3
FACT_MIN_CHARS = 12
# Help pages run lists together into one "sentence": cut after this many words (the longest
# ones made the slowest prompts).
FACT_MAX_WORDS = 50
# A fact is scored by the share of the question's content words it holds, minus this per
# passage rank (earlier passages are more relevant overall).
FACT_RANK_PENALTY = 0.03
FACTS_BEST_FIRST = False  # facts are shown in passage and reading order

# Text in a document that addresses the assistant rather than the customer is never a fact.
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|prompts?|rules|above)\b"
    r"|\b(?:system|developer)\s+(?:prompt|message|instructions?)\b"
    r"|\byou\s+are\s+now\b|\b(?:as\s+an?|you\s+are\s+an?)\s+(?:ai|language\s+model|assistant)\b",
    re.IGNORECASE,
)


def _shorten(sentence: str, max_words: int) -> str:
    """Cut an over-long "sentence" after max_words words, at a clause boundary when there is
    one in the second half."""
    words = sentence.split()
    if len(words) <= max_words:
        return sentence
    head = " ".join(words[:max_words])
    cut = max(head.rfind(mark) for mark in (";", ":", ","))
    if cut > len(head) // 2:
        head = head[:cut]
    return head.rstrip(" ,;:") + " …"


def facts_select(*, question: str, passages: Sequence[Passage], k: int | None = None) -> list[Fact]:
    """The k sentences of the top passages sharing most of the question's content words.

    Ties go to the earlier passage and sentence. Sentences sharing no word with the question,
    or addressing the assistant (prompt injection), are never facts.
    """
    q_terms = terms(question)
    scored: list[tuple[float, int, Passage, str]] = []
    seen: set[str] = set()
    for n, passage in enumerate(passages[:MAX_PASSAGES], 1):
        for sentence in sentences(clean_untrusted(passage.text)):
            # FAQ rows read "Q: ... A: ...": the labels are no part of a fact.
            sentence = LABEL.sub("", " ".join(sentence.split()))
            if len(sentence) < FACT_MIN_CHARS or _INJECTION.search(sentence):
                continue
            # Help centres repeat pages: a sentence already taken from a better passage (or
            # from chunk overlap) would only spend prompt tokens and a fact slot.
            key = " ".join(content_words(sentence))
            if key in seen:
                continue
            seen.add(key)
            overlap = len(q_terms & terms(sentence)) / (len(q_terms) or 1)
            if not overlap:
                continue  # shares no word with the question: a distraction, not a fact
            score = overlap - FACT_RANK_PENALTY * (n - 1)
            scored.append((score, n, passage, _shorten(sentence, FACT_MAX_WORDS)))
    order = sorted(range(len(scored)), key=lambda i: -scored[i][0])[: k or MAX_FACTS]
    if not FACTS_BEST_FIRST:
        order.sort()  # in passage and reading order
    return [Fact(scored[i][1], scored[i][2], scored[i][3], scored[i][0]) for i in order]


def top_score(facts: Sequence[Fact]) -> float:
    """The best fact's score (0 when there is none)."""
    return max((f.score for f in facts), default=0.0)
