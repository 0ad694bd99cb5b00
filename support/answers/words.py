"""The answer pipeline's word measures: content words, question terms, sentences, and the
clean-up of untrusted text (documents, customers) before it reaches a prompt."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..text import ANSWER_STOPWORDS, WORD, light_stem, sentences

# Chat-template control tokens must never come from untrusted text (documents, customers).
_SPECIAL = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|\[/?INST\]", re.IGNORECASE)
ANY_BRACKET_NUMBER = re.compile(r"\s*\[\s*\d*\s*\]")

# Negations and "only" are not stopwords: an answer must not add one the facts lack.
STOPWORDS = ANSWER_STOPWORDS


def clean_untrusted(text: str) -> str:
    return _SPECIAL.sub(" ", text).replace("\x00", "")


def content_words(text: str) -> list[str]:
    return [w for w in (m.group().lower() for m in WORD.finditer(text)) if w not in STOPWORDS]


def content_support(answer: str, sources: Sequence[str]) -> float:
    """Share of the answer's content words that occur in the sources (1.0 when none)."""
    words = content_words(answer)
    if not words:
        return 1.0
    vocab = {w for s in sources for w in content_words(s)}
    return sum(w in vocab for w in words) / len(words)


def strip_citations(text: str) -> str:
    return " ".join(ANY_BRACKET_NUMBER.sub("", text).split())


def terms(text: str) -> set[str]:
    """Stemmed content words: what a question and a fact must share. A compound of letters is
    one term however it is written ("Wi-Fi" and "wifi", "e-mail" and "email")."""
    return {light_stem(_joined(w)) for w in content_words(text)}


def _joined(word: str) -> str:
    return word.replace("-", "") if "-" in word and word.replace("-", "").isalpha() else word


def answer_sentences(text: str) -> list[str]:
    """The sentences of `text`, whitespace normalised (empty ones dropped)."""
    return [s for s in (" ".join(x.split()) for x in sentences(text)) if s]
