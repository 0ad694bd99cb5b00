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
from .claims import best_source, partial_problem
from .types import Fact, Grounding
from .words import answer_sentences, content_words, strip_citations, terms

SENTENCE_SUPPORT_MIN = 0.75
SENTENCE_BIGRAM_MIN = 0.7


def _pairs(text: str) -> list[tuple[str, str]]:
    words = [m.group().lower() for m in WORD.finditer(text)]
    return list(itertools.pairwise(words))


class Support:
    """The facts' content words and word pairs, for checking text against them quickly; with
    `question`, also the fact check of each sentence's claims against one fact sentence
    (support.answers.claims)."""

    def __init__(self, sources: Sequence[str], question: str | None = None) -> None:
        self.sources = tuple(sources)
        self.words = {w for s in sources for w in content_words(s)}
        self.pairs = {p for s in sources for p in _pairs(s)}
        self.question = question
        self.sentences = tuple(x for s in sources for x in answer_sentences(s))

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
        return self.problem(text, complete=complete) is None

    def problem(self, text: str, *, complete: bool = True) -> str | None:
        """Why `text` (a sentence, or the start of one) is not supported; None when it is.
        Problems of the fact check start with "claim:"."""
        if complete and not content_words(strip_citations(text)):
            return "nothing to check"  # "Sure.", "[1]": not an answer
        if security.foreign_links(text, sources=self.sources):
            return "a link the facts do not hold"  # a link, image or HTML tag
        words, pairs = self.scores(text)
        if words < SENTENCE_SUPPORT_MIN or pairs < SENTENCE_BIGRAM_MIN:
            return f"support {words:.2f} / pairs {pairs:.2f}"
        if self.question is None:
            return None
        if complete:
            source, problem = best_source(text, self.sentences, self.question)
            return None if source is not None else f"claim: {problem}"
        problem = partial_problem(text, self.sentences)
        return None if problem is None else f"claim: {problem}"


def _off_question(answer: str, sources: Sequence[str], question: str) -> bool:
    """True when the facts hold some of the question's words and the answer none of them:
    "In the app you can check your bill" to "Is there an outage in my area?" is supported by a
    fact that also mentions outages, and still answers nothing that was asked."""
    asked = terms(question)
    return bool(asked & terms(" ".join(sources))) and not asked & terms(strip_citations(answer))


def grounding_check(answer: str, facts: Sequence[Fact], question: str | None = None) -> Grounding:
    """Score each answer sentence against the facts (and, with `question`, check its claims
    against one fact sentence)."""
    sources = [f.text for f in facts]
    sents = answer_sentences(answer)
    if not sents or not facts:
        return Grounding(False, 0.0, (), "no sentences" if facts else "no facts")
    support = Support(sources, question)
    problems = [p for p in (support.problem(s) for s in sents) if p is not None]
    if question is not None and not problems and _off_question(answer, sources, question):
        problems.append("answers another question: none of the question's words")
    overall = support.scores(answer)[0]
    scores = tuple(support.scores(s) for s in sents)
    return Grounding(not problems, overall, scores, problems[0] if problems else None)
