"""Text measures shared by ingestion, search, the answer pipeline and the security checks.

One place for: the sentence splitter (chunking cuts between sentences, the answer pipeline
picks and checks sentences), the word pattern, the function-word lists and the two stemmers.

The two stemmers differ on purpose. `plural_stem` (Harman's S-stemmer) makes BM25 index terms:
folding only plurals keeps "billing" and "bill" apart in the index. `light_stem` also strips
-ing/-ed for the answer pipeline's question-sentence overlap, where "billed" must meet "bill".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Final

# A word: letters and digits, joined by an apostrophe, a dot or a hyphen ("it's", "v2.3",
# "e-mail"); the answer pipeline's checks and the system-prompt secret check count these.
WORD: Final = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*", re.UNICODE)


def words(text: str) -> list[str]:
    """The lowercased words of `text` (the WORD pattern)."""
    return [m.group().lower() for m in WORD.finditer(text)]


# --- function words ---------------------------------------------------------------------------
# Both lists keep negations and "only" ("not", "no", "never"): dropping one would let an
# answer say the opposite of its source and still match it.
_FUNCTION_WORDS: Final = frozenset(
    """a about am an and are as at be been being but by could did do does doing for from had
    has have having he her hers here him his i if in into is it its may me might must my of on
    or our ours shall she should so than that the their them then there these they this
    those to too very was we were what which who whom will with would you your yours also
    just""".split()  # noqa: SIM905 - a word list reads better as text
)
# BM25 terms: function words and contraction fragments only. Words that carry intent in
# support questions ("how", "when", "where", "why", "can", "cannot") are kept on purpose.
SEARCH_STOPWORDS: Final = _FUNCTION_WORDS | frozenset(
    """else mine onto us s t d ll m re ve""".split()  # noqa: SIM905
)
# Content words of questions, facts and answers: also pronouns, question phrasing ("how long
# does it take") and chat filler ("hello, I need information about ..."), which say nothing
# about the facts a question needs.
ANSWER_STOPWORDS: Final = _FUNCTION_WORDS | frozenset(
    """above after again against all any because before below between both can did down during
    each few further how herself himself itself more most myself now off once other
    ourselves out over own same some such theirs themselves through under until up when where
    while why yourself yourselves it's i'm you're we're they're there's that's let's please
    yes thank thanks sure okay ok get got like one hello hi hey help need needs want wanted
    wondering wonder know information info question questions tell ask asking looking
    regarding reading i've i'd long much many take takes taking able possible""".split()  # noqa: SIM905
)


# --- stemmers ---------------------------------------------------------------------------------
@lru_cache(maxsize=200_000)
def plural_stem(word: str) -> str:
    """Harman's S-stemmer: fold plurals only, which is all a support KB needs (BM25 terms)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


_SUFFIXES: Final = ("ies", "ing", "ed", "es", "s")


def light_stem(word: str) -> str:
    """A light suffix stripper: "billed", "bills", "billing" -> "bill"; "moving" -> "mov"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


# --- sentences --------------------------------------------------------------------------------

# Lower-cased, without the final dot. Words that often end a sentence ("etc") are left out.
_ABBREVIATIONS = frozenset(
    {
        "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "inc", "ltd", "co", "corp",
        "no", "nos", "nr", "fig", "figs", "approx", "dept", "est", "vol", "pp", "ca", "cf",
        "al", "incl", "excl", "tel", "ext", "ref", "ave", "blvd", "rd", "mt", "gen", "gov",
        "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
        "art", "sec", "ch", "para", "resp", "bzw", "ggf", "usw", "z.b", "d.h",
    }
)  # fmt: skip
_DOTTED = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")  # "e.g", "U.S", "J" (an initial)
_CLOSERS = "\"'\u201d\u2019\u00bb)\\]"  # straight and typographic closing quotes, brackets
_CJK_STOPS = "\u3002\uff01\uff1f"  # ideographic full stop, fullwidth ! and ?
# The lookbehinds make a match start only at the beginning of a punctuation run; otherwise a
# long run of dots with no space after it ("....x", PDF dot leaders) would be quadratic.
_BOUNDARY = re.compile(
    rf"(?<![.!?\u2026])[.!?\u2026]+[{_CLOSERS}]*\s+"
    rf"|(?<![{_CJK_STOPS}])[{_CJK_STOPS}]+[{_CLOSERS}\u300d\u300f]*\s*"
)
_OPENERS = "\"'\u201c\u2018\u00ab([\u00bf\u00a1"


def sentences(text: str) -> list[str]:
    """Split text into sentences; line breaks always end one.

    Rule based and conservative: a boundary needs terminal punctuation, whitespace and a
    capital, digit or opening quote next; abbreviations ("Dr.", "e.g.", "U.S.") and
    numbers ("3.5") never end a sentence. CJK full stops split without whitespace.
    """
    result: list[str] = []
    for line in text.split("\n"):
        line = line.strip()
        if line:
            result.extend(_line_sentences(line))
    return result


def _line_sentences(line: str) -> Iterable[str]:
    start = 0
    for match in _BOUNDARY.finditer(line):
        end = match.end()
        if end >= len(line):
            break
        if match.group()[0] not in _CJK_STOPS:
            nxt = line[end]
            if not (nxt.isupper() or nxt.isdigit() or nxt in _OPENERS or _uncased(nxt)):
                continue
            if match.group()[0] == "." and _is_abbreviation(line[start : match.start()]):
                continue
        sentence = line[start:end].strip()
        if sentence:
            yield sentence
        start = end
    tail = line[start:].strip()
    if tail:
        yield tail


def _uncased(char: str) -> bool:
    # Letters of scripts without case (CJK, Arabic, Hebrew, ...) can start a sentence.
    return char.isalpha() and not char.islower() and not char.isupper()


def _is_abbreviation(before: str) -> bool:
    # Only the tail is looked at: splitting all of `before` would make a long run of
    # non-boundaries ("J. K. L. ...") quadratic.
    words = before[-40:].split()
    if not words:
        return False
    word = words[-1].lstrip(_OPENERS)
    if word.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(word):
        return True
    # "1. Open the app": a list number at the start of the text, not a sentence.
    return word.isdigit() and len(word) <= 3 and len(before) <= 8 and before.strip() == word
