"""Citations: [n] markers tied to the passages that were in the prompt, and quoting."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .claims import LABEL
from .grounding import Support
from .types import Fact
from .words import ANY_BRACKET_NUMBER, answer_sentences, strip_citations

EXTRACTIVE_FACTS = 1  # a quote is the single best fact
_CITATION = re.compile(r"\s*\[(\d{1,2})\]")


def _best_fact(sentence: str, facts: Sequence[Fact]) -> Fact:
    body = strip_citations(sentence)
    # Most word pairs shared first, then most content words.
    return max(facts, key=lambda f: Support([f.text]).scores(body)[::-1])


def citation_of(fact: Fact) -> dict[str, Any]:
    """The stored form of a citation (Message.citations, ask --json)."""
    p = fact.passage
    return {
        "n": fact.n,
        "document_id": p.document_id,
        "filename": p.filename,
        "chunk_id": p.chunk_id,
        "title": p.title,
        "heading": p.heading,
        "source_url": p.source_url,
        "page": p.page,
        "score": round(p.score, 4),
        "text": p.text,
    }


def citations_resolve(answer: str, facts: Sequence[Fact]) -> tuple[str, list[dict[str, Any]]]:
    """Keep only [n] markers of passages that were in the prompt, mark every sentence without
    one with the passage it copies from, and list the cited passages."""
    valid = {f.n: f for f in facts}

    def keep(match: re.Match[str]) -> str:
        return match.group(0) if int(match.group(1)) in valid else ""

    text = _CITATION.sub(keep, answer)
    # Malformed markers ("[]", "[ ]") go too; "[1] [1]" becomes "[1]".
    text = ANY_BRACKET_NUMBER.sub(
        lambda m: m.group(0) if _CITATION.fullmatch(m.group(0)) else "", text
    )
    text = re.sub(r"(\s*\[\d{1,2}\])(?:\1)+", r"\1", text).strip()
    # "... refund. [2]" -> "... refund [2]." so the marker stays with its sentence.
    text = re.sub(r"([.!?])((?:\s*\[\d{1,2}\])+)", r"\2\1", text)
    if facts:
        marked = []
        for sentence in answer_sentences(text):
            sentence = LABEL.sub("", sentence)  # a leaked "A:" or "2." never reaches anyone
            if not sentence:
                continue
            if not _CITATION.search(sentence):
                marker = f" [{_best_fact(sentence, facts).n}]"
                end = re.search(r"[.!?]+[\"'”’)]*$", sentence)
                cut = end.start() if end else len(sentence)
                sentence = sentence[:cut] + marker + sentence[cut:]
            marked.append(sentence)
        text = " ".join(marked)
    cited = [int(n) for n in re.findall(r"\[(\d{1,2})\]", text)]
    return text, [citation_of(valid[n]) for n in dict.fromkeys(cited)]


def cited_facts(answer: str, facts: Sequence[Fact]) -> list[Fact]:
    """The facts an answer's sentences come from (the one each copies most), in answer order."""
    chosen: list[Fact] = []
    for sentence in answer_sentences(answer):
        if content := strip_citations(sentence):
            best = _best_fact(content, facts)
            if best not in chosen:
                chosen.append(best)
    return chosen


def extractive_answer(facts: Sequence[Fact], k: int | None = None) -> str:
    """The best facts quoted verbatim (citations_resolve marks their passages): the learned
    ranker's pick first (Fact.chosen), then by rank.

    Questions among them (help pages use them as headings) answer nothing: they are quoted
    only when every fact is one.
    """
    ranked = sorted(facts, key=lambda f: (f.chosen, f.rank), reverse=True)
    statements = [f for f in ranked if not f.text.rstrip().endswith("?")]
    best = (statements or ranked)[: k or EXTRACTIVE_FACTS]
    best.sort(key=lambda f: (f.n, facts.index(f)))
    return " ".join(f.text for f in best)
