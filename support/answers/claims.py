"""The fact check: do the claims of an answer sentence hold in ONE sentence of the facts?

Word overlap with the facts as a whole accepts an answer that recombines their words into a
new, wrong claim: "hold the power button for 10 seconds" from "hold the reset button on the
back for 10 seconds" and "switch the router off at the power button"; "in the app under
Account › Move" from "under Account › Plan". So each answer sentence is matched to the fact
sentence that supports it best, and its claims must hold in that one sentence:

- numbers with their unit: "10 seconds" needs "10 seconds" ("10 minutes" does not do);
- codes and identifiers (ERR-4032, SSID, Hub 3) and named parts (capitalised words such as
  "Account", "Move", "FIBRE" that do not open the sentence) must be written there;
- the content words of the sentence must come from it: one word no fact holds may be a
  paraphrase ("press" for "hold"), a word of another fact is a recombination ("power");
  words written side by side ("reset button") stand side by side there, and a number or a
  code stays with the word before it ("issued on the 1st", not "issued on the 15th");
- negations: the answer adds none the sentence lacks, and drops none that governs a word it
  repeats ("Gift cards never expire" -> "Gift cards expire");
- conditions: a condition word ("if", "unless", "only", "within", "after", ...) the answer
  states must be in the sentence, and a restricting one the sentence states ("if", "unless",
  "only", "once", ...) must be kept, unless the question itself states that condition
  ("What happens if my payment fails?" -> "We try again after 5 days").

Pure and lexical; the same check runs on each sentence while it streams (`AnswerStream`) and on
the finished answer (the check stage).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..text import light_stem
from .words import STOPWORDS, strip_citations

# Leaked labels and numbering: "A: No. All plans ...", "Q: ...", "Answer: ...", "1. ...".
LABEL = re.compile(r"^\s*(?:(?:Q|A|Question|Answer)\s*[:.]|\d{1,2}[.)](?=\s)|[-*•])\s*", re.I)

_TOKEN = re.compile(r"[^\W_]+(?:[-'’./][^\W_]+)*|[€$£%›]", re.UNICODE)
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
_NEGATORS = frozenset(
    """not no never cannot can't won't don't doesn't didn't isn't aren't wasn't weren't
    without none nothing nobody neither nor n't""".split()  # noqa: SIM905
)
CONDITIONS = frozenset(
    "if unless only within after before until once except provided".split()  # noqa: SIM905
)
# Conditions that restrict a claim: dropping one can make it false ("Downgrades are possible
# once your minimum term has ended"). Dropping a detail ("within 10 working days") cannot.
RESTRICTIVE = frozenset("if unless only once except provided".split())  # noqa: SIM905
# The words after a condition word that name its condition ("if a payment fails").
CLAUSE_WORDS = 3
# Words a paraphrase may use freely (connectors, auxiliaries, the customer and the company).
_FREE = frozenset(
    """you your we our us can may will just also then so simply please yes brightwave""".split()  # noqa: SIM905
)
# A number or code and the content word before it stand within this many content words of
# each other in the source.
PAIR_WINDOW = 2
# Content words of an answer sentence that may be missing from its source (a paraphrase).
MAX_FOREIGN_WORDS = 1


@dataclass(frozen=True, slots=True)
class Tokens:
    """A sentence read for the check: its tokens (original case) and what they say."""

    raw: tuple[str, ...]
    lower: tuple[str, ...]
    stems: tuple[str, ...]

    @property
    def content(self) -> list[int]:
        """Positions of content words, numbers and codes (not stopwords or symbols)."""
        return [
            i
            for i, w in enumerate(self.lower)
            if (w.isalpha() and w not in STOPWORDS and w not in _NEGATORS)
            or _NUMBER.match(w)
            or _is_code(self.raw[i])
        ]


@lru_cache(maxsize=4096)
def read(sentence: str) -> Tokens:
    raw = tuple(_TOKEN.findall(LABEL.sub("", strip_citations(sentence))))
    lower = tuple(t.lower() for t in raw)
    return Tokens(raw, lower, tuple(light_stem(w) for w in lower))


def _is_code(token: str) -> bool:
    """ERR-4032, Hub3, SSID, 7H2K: digits with letters, or 2+ capitals."""
    has_digit = any(c.isdigit() for c in token)
    has_alpha = any(c.isalpha() for c in token)
    capitals = sum(c.isupper() for c in token)
    return (has_digit and has_alpha) or (
        capitals >= 2 and capitals == sum(c.isalpha() for c in token)
    )


def _numbers(t: Tokens) -> list[tuple[str, str]]:
    """(number, the word after it or "") for each number."""
    out = []
    for i, w in enumerate(t.lower):
        if _NUMBER.match(w):
            unit = t.stems[i + 1] if i + 1 < len(t.lower) and t.lower[i + 1].isalpha() else ""
            if unit in STOPWORDS:
                unit = ""
            out.append((w.replace(",", ""), unit))
    return out


def _names(t: Tokens) -> set[str]:
    """Capitalised words that do not open the sentence, and codes: named parts, places in
    the app, products."""
    names = set()
    for i, w in enumerate(t.raw):
        if _is_code(w) or (i > 0 and w[:1].isupper() and w.lower() not in STOPWORDS and w != "I"):
            names.add(w.lower())
    return names


def _negated_words(t: Tokens) -> set[str]:
    """Stems of content words in the scope of a negation (the next three words, within the
    clause)."""
    out: set[str] = set()
    for i, w in enumerate(t.lower):
        if w in _NEGATORS or w.endswith("n't"):
            for j in range(i + 1, min(i + 4, len(t.lower))):
                if t.raw[j] in {"›"}:
                    break
                if t.lower[j] not in STOPWORDS and t.lower[j].isalpha():
                    out.add(t.stems[j])
    return out


def _has_negation(t: Tokens) -> bool:
    return any(w in _NEGATORS or w.endswith("n't") for w in t.lower)


def _ranks(t: Tokens) -> dict[str, list[int]]:
    """Stem -> positions among the sentence's content words and numbers."""
    ranks: dict[str, list[int]] = {}
    for rank, j in enumerate(j for j in t.content if t.lower[j] not in _FREE):
        ranks.setdefault(t.stems[j], []).append(rank)
    return ranks


def claim_problem(
    answer: str, source: str, question: str = "", elsewhere: frozenset[str] = frozenset()
) -> str | None:
    """Why the claims of `answer` (one sentence) do not hold in `source` (one sentence); None
    when they hold. `question` may state a condition the answer need not repeat; `elsewhere`
    are the stems of the other facts (a word taken from one of them is a recombination)."""
    a, s = read(answer), read(source)
    s_stems, s_lower = set(s.stems), set(s.lower)
    for number, unit in _numbers(a):
        found = [u for n, u in _numbers(s) if n == number]
        if not found:
            return f"number {number} not in the source"
        if unit and unit not in found and "" not in found:
            return f"{number} {unit}: the source has {number} {found[0]}"
    for name in _names(a):
        if name not in s_lower and light_stem(name) not in s_stems:
            return f"{name!r} not in the source"
    content = [i for i in a.content if a.lower[i] not in _FREE]
    foreign = [i for i in content if a.stems[i] not in s_stems]
    borrowed = [a.lower[i] for i in foreign if a.stems[i] in elsewhere]
    if borrowed:
        return f"{borrowed[0]!r} comes from another fact"
    if len(foreign) > MAX_FOREIGN_WORDS:
        return f"words not in the source: {', '.join(a.lower[i] for i in foreign)}"
    ranks = _ranks(s)

    def near(x: str, y: str, window: int, *, ordered: bool) -> bool:
        return any(
            (0 < q - p <= window) or (not ordered and 0 < p - q <= window)
            for p in ranks.get(x, ())
            for q in ranks.get(y, ())
        )

    for left, right in itertools.pairwise(content):
        x, y = a.stems[left], a.stems[right]
        if x == y or x not in ranks or y not in ranks:
            continue
        # Words written side by side (a compound: "reset button", "Fibre 1000") stand side by
        # side in the source too.
        if right == left + 1 and not near(x, y, 1, ordered=True):
            return f"{a.lower[left]!r} {a.lower[right]!r} is not in the source"
    for k, i in enumerate(content):
        # A number or a code belongs to one of the two words before it ("issued on the 1st"
        # is not "issued on the 15th" when the source pays on the 15th).
        before = [a.stems[j] for j in content[max(0, k - 2) : k] if a.stems[j] in ranks]
        if (
            (_NUMBER.match(a.lower[i]) or _is_code(a.raw[i]))
            and before
            and not any(near(b, a.stems[i], PAIR_WINDOW, ordered=False) for b in before)
        ):
            return f"{a.lower[i]!r} does not go with {a.lower[content[k - 1]]!r} in the source"
    if _has_negation(a) and not _has_negation(s):
        return "a negation the source does not make"
    dropped = _negated_words(s) & set(a.stems)
    if dropped and not _has_negation(a):
        return f"drops the negation of {sorted(dropped)[0]!r}"
    a_conditions = set(a.lower) & CONDITIONS
    s_conditions = set(s.lower) & CONDITIONS
    if a_conditions - s_conditions:
        return f"a condition the source does not state: {sorted(a_conditions - s_conditions)[0]}"
    asked = set(read(question).stems) if question else set()
    for i, w in enumerate(s.lower):
        if w in RESTRICTIVE and w not in a_conditions:
            clause = [
                s.stems[j]
                for j in range(i + 1, min(i + 1 + CLAUSE_WORDS, len(s.lower)))
                if s.lower[j] not in STOPWORDS and s.lower[j].isalpha()
            ]
            if clause and len(set(clause) & asked) / len(set(clause)) < 0.5:
                return f"drops the condition {w!r}"
    return None


def best_source(
    answer: str, sources: Sequence[str], question: str = ""
) -> tuple[str | None, str | None]:
    """(the source sentence the answer's claims hold in, None) or (None, why not for the
    closest one)."""
    if not sources:
        return None, "no facts"
    a = read(answer)
    words = set(a.stems)
    ranked = sorted(sources, key=lambda s: -len(words & set(read(s).stems)))
    problem = None
    for source in ranked:
        elsewhere = frozenset(
            stem for other in sources if other != source for stem in read(other).stems
        ) - set(read(source).stems)
        found = claim_problem(answer, source, question, elsewhere)
        if found is None:
            return source, None
        problem = problem or found
    return None, problem


def partial_problem(text: str, sources: Sequence[str]) -> str | None:
    """For a sentence still being written: a number, code or name so far (the last, maybe
    unfinished, word aside) that no fact sentence holds."""
    t = read(text)
    if len(t.raw) < 2:
        return None
    done = Tokens(t.raw[:-1], t.lower[:-1], t.stems[:-1])
    reads = [read(s) for s in sources]
    for number, _ in _numbers(done):
        if not any(number == n for r in reads for n, _ in _numbers(r)):
            return f"number {number} not in the facts"
    for name in _names(done):
        if not any(name in r.lower for r in reads):
            return f"{name!r} not in the facts"
    return None
