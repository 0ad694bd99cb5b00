"""The groundedness check: is each sentence of an answer supported by the facts?

A sentence is supported when most of its content words AND most of its adjacent word pairs
occur in the facts. Word support alone accepts SmolLM2-135M's recombinations of fact words
("Gift cards can expire." from "Gift cards never expire ..."); the pairs catch them. Lexical,
cheap, no second model call.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from .. import security
from ..text import WORD
from .types import Fact, Grounding
from .words import answer_sentences, content_words, strip_citations

SENTENCE_SUPPORT_MIN = 0.75
SENTENCE_BIGRAM_MIN = 0.7


def _pairs(text: str) -> list[tuple[str, str]]:
    words = [m.group().lower() for m in WORD.finditer(text)]
    return list(itertools.pairwise(words))


class Support:
    """The facts' content words and word pairs, for checking text against them quickly."""

    def __init__(self, sources: Sequence[str]) -> None:
        self.sources = tuple(sources)
        self.words = {w for s in sources for w in content_words(s)}
        self.pairs = {p for s in sources for p in _pairs(s)}

    def scores(self, text: str) -> tuple[float, float]:
        """(content-word support, word-pair support) of `text`; 1.0 for none to check."""
        body = strip_citations(text)
        words, pairs = content_words(body), _pairs(body)
        return (
            sum(w in self.words for w in words) / len(words) if words else 1.0,
            sum(p in self.pairs for p in pairs) / len(pairs) if pairs else 1.0,
        )

    def supports(self, text: str, *, complete: bool = True) -> bool:
        """A complete sentence needs content words; a sentence still being written does not."""
        if complete and not content_words(strip_citations(text)):
            return False  # nothing to check ("Sure.", "[1]"): not an answer
        if security.foreign_links(text, sources=self.sources):
            return False  # a link, image or HTML tag the facts do not hold
        words, pairs = self.scores(text)
        return words >= SENTENCE_SUPPORT_MIN and pairs >= SENTENCE_BIGRAM_MIN


def grounding_check(answer: str, facts: Sequence[Fact]) -> Grounding:
    """Score each answer sentence against the facts."""
    sources = [f.text for f in facts]
    sents = answer_sentences(answer)
    if not sents or not facts:
        return Grounding(False, 0.0, ())
    support = Support(sources)
    grounded = all(support.supports(s) for s in sents)
    overall = support.scores(answer)[0]
    return Grounding(grounded, overall, tuple(support.scores(s) for s in sents))
