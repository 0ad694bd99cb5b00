"""Personal data out of example text: e-mail addresses, phone numbers, card-like and account-like
numbers become placeholders ([email], [phone], [card], [account]) before an example is stored.

Pure functions, no I/O. What counts as what (docs/learning.md has the table and examples):

- **email**: `name@domain.tld`.
- **account**: an IBAN-shaped string with a valid mod-97 check ("GB82 WEST 1234 5698 7654 32");
  a run of 8 or more digits without separators ("order 123456789"); grouped digits that are no
  phone number and hold 16 or more digits, or 13-19 failing the Luhn check.
- **card**: 13-19 digits, alone or in groups split by single spaces or dashes, passing the Luhn
  check ("4111 1111 1111 1111").
- **phone**: 7-15 digits starting with "+", "00" or "(" ; 9-15 digits in groups
  ("555-123-4567", "020 7946 0958"); 7-15 digits right after a word like "call" or "phone".

Never redacted: prices and amounts (a currency sign or word next to them, or thousands grouping
"1 250 000" / "1.250.000"), dates ("2024-05-01", "01.05.2024"), year ranges ("2019-2024"),
times, versions, percentages, digits glued to letters ("X200", "RT-AC68U", "ERR-4032"), numbers
of fewer than 7 digits. Values the knowledge base itself publishes (the company's hotline, its
support address) are kept when passed as `public` (see `PublicValues`): they are no one's
personal data and an answer that gives them is worthless without them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["email", "phone", "card", "account"]
PLACEHOLDERS: Final[dict[Kind, str]] = {
    "email": "[email]",
    "phone": "[phone]",
    "card": "[card]",
    "account": "[account]",
}

EMAIL: Final = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)
# IBAN: country, check digits, 11-30 letters/digits, optionally in groups of four.
IBAN: Final = re.compile(
    r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w-])"
)
# A number-ish span: digits joined by single separators (space, dot, dash) or parentheses,
# optionally opened by "+" or "(". Not glued to a letter, a digit or a decimal mark on either
# side ("X200", "ERR-4032", "1,299.99" never start a span).
NUMBERISH: Final = re.compile(
    r"(?<![\w.,/:@+-])(?:\+|\(\+?)?\d(?:(?:[ .-]|\) ?|[ -]?\()?\d)*\)?(?![\w]|[.,/:]\d|-\w)"
)
_CURRENCY_BEFORE: Final = re.compile(
    r"(?:[$€£¥₹]|\b(?:usd|eur|gbp|chf|inr|rs\.?|aud|cad|jpy|sek|nok|dkk|pln))\s?$", re.IGNORECASE
)
_UNIT_AFTER: Final = re.compile(
    r"^\s?(?:[$€£¥₹%]|(?:usd|eur|gbp|chf|inr|aud|cad|jpy|dollars?|euros?|pounds?|cents?|rupees?"
    r"|francs?|percent|kb|mb|gb|tb|km|kg|mi|miles|meters|metres|words|people|users|visitors"
    r"|customers|times|bytes|items|pieces|units|copies|points|steps|seconds|minutes|hours|days"
    r"|weeks|months|years)\b)",
    re.IGNORECASE,
)
_PHONE_CUE: Final = re.compile(
    r"\b(?:call|calls|calling|phone|telephone|tel|mobile|cell|cellphone|fax|whatsapp|text me"
    r"|reach me|reach me at|ring|number|no)\.?(?:\s+(?:me|us|him|her|is|at|on|number|no\.?))*"
    r"[\s:#.]*$",
    re.IGNORECASE,
)
_DATE: Final = re.compile(
    r"^(?:\d{4}[-./ ]\d{1,2}[-./ ]\d{1,2}|\d{1,2}[-./ ]\d{1,2}[-./ ]\d{2}(?:\d{2})?)$"
)
_YEAR_RANGE: Final = re.compile(r"^(?:1[89]|20)\d{2} ?- ?(?:(?:1[89]|20)\d{2}|\d{2})$")
_THOUSANDS: Final = re.compile(r"^[1-9]\d{0,2}(?:([ .])\d{3})(?:\1\d{3})*$")
_DOTTED_QUAD: Final = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
# A US social security number: an identifier, however phone-like its grouping.
_SSN: Final = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_SEPARATORS: Final = re.compile(r"[ .()-]")


@dataclass(frozen=True, slots=True)
class PublicValues:
    """Values the knowledge base publishes: e-mail addresses (lower case) and numbers (digits
    only). A match equal to one of them is kept."""

    emails: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()


NO_PUBLIC: Final = PublicValues()


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    found: tuple[Kind, ...]  # what was replaced, in order of appearance

    @property
    def count(self) -> int:
        return len(self.found)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of card numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """The ISO 13616 mod-97 check of an IBAN (spaces ignored)."""
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(c, 36)) for c in rearranged)
    return int(number) % 97 == 1


def classify_number(span: str, before: str, after: str) -> Kind | None:
    """What a number-ish `span` is, given the text right before and after it; None to keep."""
    digits = re.sub(r"\D", "", span)
    n = len(digits)
    if n < 7:
        return None
    if _CURRENCY_BEFORE.search(before[-8:]) or _UNIT_AFTER.match(after[:12]):
        return None
    grouped = bool(_SEPARATORS.search(span))
    plain_groups = not re.search(r"[.()]", span.strip("+"))
    if 13 <= n <= 19 and plain_groups and not span.startswith("+") and luhn_valid(digits):
        return "card"
    if _DATE.match(span) or _YEAR_RANGE.match(span) or _DOTTED_QUAD.match(span):
        return None
    if _THOUSANDS.match(span):
        return None  # 1 250 000 / 1.250.000: an amount (a phone number never opens with 1-3
        # digits then groups of exactly three without a leading zero ... rarely enough)
    if _SSN.match(span):
        return "account"
    international = span.startswith(("+", "00", "("))
    if international and n <= 15:
        return "phone"
    if grouped and 9 <= n <= 15:
        return "phone"
    if _PHONE_CUE.search(before[-40:]) and n <= 15:
        return "phone"
    if not grouped and n >= 8:
        return "account"
    if grouped and n >= 13:
        return "account"
    return None


def _spans(text: str, public: PublicValues) -> list[tuple[int, int, Kind]]:
    spans: list[tuple[int, int, Kind]] = []
    taken = [False] * (len(text) + 1)

    def free(start: int, end: int) -> bool:
        return not any(taken[start:end])

    def take(start: int, end: int, kind: Kind) -> None:
        spans.append((start, end, kind))
        for i in range(start, end):
            taken[i] = True

    for m in EMAIL.finditer(text):
        if m.group().lower() not in public.emails:
            take(m.start(), m.end(), "email")
    for m in IBAN.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if free(m.start(), m.end()) and iban_valid(m.group()) and digits not in public.numbers:
            take(m.start(), m.end(), "account")
    for m in NUMBERISH.finditer(text):
        start, end = m.start(), m.end()
        span = m.group()
        # A closing parenthesis that opens nothing belongs to the sentence: "(call 555 123 4567)".
        if span.endswith(")") and span.count("(") < span.count(")"):
            span, end = span[:-1], end - 1
        if not free(start, end):
            continue
        kind = classify_number(span, text[max(0, start - 40) : start], text[end : end + 12])
        if kind is None or re.sub(r"\D", "", span) in public.numbers:
            continue
        take(start, end, kind)
    return sorted(spans)


def redact(text: str, *, public: PublicValues = NO_PUBLIC) -> Redacted:
    """`text` with personal data replaced by placeholders, and what was replaced."""
    if not text:
        return Redacted(text, ())
    spans = _spans(text, public)
    if not spans:
        return Redacted(text, ())
    out: list[str] = []
    last = 0
    for start, end, kind in spans:
        out.append(text[last:start])
        out.append(PLACEHOLDERS[kind])
        last = end
    out.append(text[last:])
    return Redacted("".join(out), tuple(kind for _s, _e, kind in spans))


def public_values_of(texts: Iterable[str]) -> PublicValues:
    """The e-mail addresses and redactable numbers that `texts` (the knowledge base) publish."""
    emails: set[str] = set()
    numbers: set[str] = set()
    for text in texts:
        if "@" in text:
            emails.update(m.group().lower() for m in EMAIL.finditer(text))
        for start, end, kind in _spans(text, NO_PUBLIC):
            if kind != "email":
                numbers.add(re.sub(r"\D", "", text[start:end]))
    return PublicValues(frozenset(emails), frozenset(numbers))
