"""Fact selection: the sentences of the top passages that the model may use.

Lexical on purpose (docs/generation.md, "Tuning history"): embedding every sentence cost
seconds per question on 2 cores and chose no better facts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..retrieval import Passage
from ..search.bridge import Expansion
from ..text import sentences
from .claims import LABEL
from .intent import asks_open_question, question_intent, states_wanted
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
# A question term that a sentence lacks but its section's heading holds counts this much: under
# "Restarting the router", "Switch the router off ..., wait 30 seconds" is the answer to "How do
# I restart my router?", not another page's "... then restart the router" (docs/generation.md).
FACT_HEADING_WEIGHT = 1.0
FACTS_BEST_FIRST = False  # facts are shown in passage and reading order
# A sentence stating what the question asks for (a duration for "how long", a step for "how
# do I" or a reported problem; support.answers.intent) ranks this much higher: above sentences
# with one more shared term out of three. Ranking only: decide judges the overlap.
FACT_INTENT_WEIGHT = 0.35

_ANSWER_LABEL = re.compile(r"^\s*(?:A|Answer)\s*[:.]", re.IGNORECASE)
_YES_NO = re.compile(r"^(?:yes|no)\b", re.IGNORECASE)
_QUESTION_LABEL = re.compile(r"^\s*(?:Q|Question)\s*[:.]", re.IGNORECASE)

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


@dataclass(frozen=True, slots=True)
class Candidate:
    """A sentence of a top passage that could be a fact, with what its ranking reads."""

    fact: Fact
    position: int  # its place among its passage's candidate sentences (0: the first)
    shared: int  # question terms it holds
    heading: int  # question terms only its section's heading holds
    wanted: bool  # it states what the question asks for
    eligible: bool  # lexical fact selection may choose it (it shares a word, or ...)


def fact_candidates(
    *, question: str, passages: Sequence[Passage], bridged: Sequence[Expansion] = ()
) -> list[Candidate]:
    """Every sentence of the top passages that may be quoted, in passage and reading order,
    scored as `facts_select` ranks them: questions (FAQ labels), bare short sentences, prompt
    injection and repeats are left out; `eligible` says whether lexical selection would take it
    (it shares a word with the question, or its heading does and it states what is asked).

    `bridged` (the search's expansions, support.search.bridge): a question word the knowledge
    base never uses counts its expansion's weight in a sentence (or heading) holding one of the
    terms that stood in for it ("moves" for "relocating"), and such a sentence is eligible."""
    q_terms = terms(question)
    stand_ins = bridge_terms(bridged, q_terms)
    intent = question_intent(question)
    # An FAQ answer's "Yes." / "No." answers the FAQ's own (yes/no) question: to "What is your
    # phone number?" it would state an answer nobody asked for.
    yes_no_leads = not asks_open_question(question)
    n_terms = len(q_terms) or 1
    out: list[Candidate] = []
    seen: set[str] = set()
    for n, passage in enumerate(passages[:MAX_PASSAGES], 1):
        # The section's own heading (the document title is shared by all its sections).
        heading_terms = terms(passage.heading_path[-1]) if passage.heading_path else set()
        heading = heading_terms & q_terms
        heading_bridged = _bridged(stand_ins, heading_terms) - heading
        short = ""  # an FAQ answer's bare "Yes." / "No." opens the sentence after it
        position = 0
        for raw in sentences(clean_untrusted(passage.text)):
            raw = " ".join(raw.split())
            if _QUESTION_LABEL.match(raw):
                # An FAQ row's question is its heading: it lends its words to the answer's
                # sentences, and quoting it back would answer nothing.
                continue
            # FAQ rows read "Q: ... A: ...": the labels are no part of a fact.
            sentence = " ".join(p for p in (short, LABEL.sub("", raw)) if p)
            short = ""
            if len(sentence) < FACT_MIN_CHARS:
                # Only an FAQ answer's own "A: Yes.": elsewhere a bare "Yes." opening the next
                # sentence changed which fact won and lowered doc2dial's F1.
                faq_yes_no = yes_no_leads and _ANSWER_LABEL.match(raw) and _YES_NO.match(sentence)
                short = sentence if faq_yes_no else ""
                continue
            if _INJECTION.search(sentence):
                continue
            # Help centres repeat pages: a sentence already taken from a better passage (or
            # from chunk overlap) would only spend prompt tokens and a fact slot.
            key = " ".join(content_words(sentence))
            if key in seen:
                continue
            seen.add(key)
            s_terms = terms(sentence)
            shared = q_terms & s_terms
            bridged_words = _bridged(stand_ins, s_terms) - shared
            wanted = states_wanted(sentence, intent, q_terms)
            overlap = (
                len(shared)
                + FACT_HEADING_WEIGHT * len(heading - shared)
                + sum(stand_ins[w][1] for w in bridged_words)
                + FACT_HEADING_WEIGHT
                * sum(stand_ins[w][1] for w in heading_bridged - shared - bridged_words)
            ) / n_terms
            score = overlap - FACT_RANK_PENALTY * (n - 1)
            fact = Fact(n, passage, _shorten(sentence, FACT_MAX_WORDS), score)
            out.append(
                Candidate(
                    fact=fact if not wanted else replace(fact, bonus=FACT_INTENT_WEIGHT),
                    position=position,
                    shared=len(shared),
                    heading=len(heading - shared),
                    wanted=wanted,
                    # Sharing no word with the question: a distraction, not a fact.
                    eligible=bool(shared) or bool(bridged_words) or bool(heading and wanted),
                )
            )
            position += 1
    return out


def facts_select(
    *,
    question: str,
    passages: Sequence[Passage],
    k: int | None = None,
    bridged: Sequence[Expansion] = (),
) -> list[Fact]:
    """The k sentences of the top passages sharing most of the question's content words.

    Ties go to the earlier passage and sentence. A sentence stating what the question asks
    for ranks higher (FACT_INTENT_WEIGHT). Sentences sharing no word with the question, unless
    their section's heading does and they state what it asks for ("Place the router ..." under
    "Slow Wi-Fi" for "My wifi is slow upstairs"), or addressing the assistant (prompt
    injection), are never facts. `bridged`: see `fact_candidates`.
    """
    candidates = fact_candidates(question=question, passages=passages, bridged=bridged)
    scored = [c.fact for c in candidates if c.eligible]
    order = sorted(range(len(scored)), key=lambda i: -scored[i].rank)[: k or MAX_FACTS]
    if not FACTS_BEST_FIRST:
        order.sort()  # in passage and reading order
    return [scored[i] for i in order]


def bridge_terms(
    bridged: Sequence[Expansion], q_terms: set[str]
) -> dict[str, tuple[frozenset[str], float]]:
    """Question term (as `terms` writes it) -> the terms standing in for it and their weight,
    for the question's own terms only."""
    out: dict[str, tuple[set[str], float]] = {}
    for e in bridged:
        word = next(iter(terms(e.word)), None)
        if word is None or word not in q_terms:
            continue
        found, weight = out.setdefault(word, (set(), e.weight))
        found.update(terms(e.term))
        out[word] = (found, max(weight, e.weight))
    return {w: (frozenset(t), weight) for w, (t, weight) in out.items()}


def _bridged(stand_ins: dict[str, tuple[frozenset[str], float]], held: set[str]) -> set[str]:
    """The question terms that `held` (a sentence's terms) has a stand-in for."""
    return {w for w, (found, _) in stand_ins.items() if found & held}


def top_score(facts: Sequence[Fact]) -> float:
    """The best fact's score (0 when there is none)."""
    return max((f.score for f in facts), default=0.0)
