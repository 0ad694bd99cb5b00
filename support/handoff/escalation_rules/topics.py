"""Admin-configured sensitive topics: keywords, example phrasings and amounts."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from .text import normalise, strip_accents

_CURRENCY = (
    r"(?:[$€£¥₹₩₽₺₪฿]|r\$|a\$|c\$|us\$|chf|eur|euros?|usd|gbp|jpy|inr|cad|aud|nzd|sek|nok|dkk|"
    r"pln|czk|huf|brl|mxn|zar|dollars?|bucks|pounds?|quid|yen|rupees?|francs?|kronor|kroner|"
    r"krona|kr|zloty|reais|real|pesos?)"
)
# A number: 1234 / 1,234.50 / 1.234,50 / 1 234 / 1'234 / 2.5k
_NUMBER = r"\d{1,3}(?:[ ,.'\u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_AMOUNT_WITH_CURRENCY = re.compile(
    rf"(?<![a-z]){_CURRENCY}\s?(?P<a>{_NUMBER})\s?(?P<ka>k\b)?|(?P<b>{_NUMBER})\s?(?P<kb>k\b)?\s?{_CURRENCY}"
    r"(?![a-z])",
    re.IGNORECASE,
)
# Without a currency, only numbers named as amounts count, never order or invoice numbers.
_AMOUNT_BY_WORD = re.compile(
    r"\b(?:over|above|more than|greater than|exceeding|at least|worth|total(?: of)?|amount(?: of)?"
    r"|paid|pay|charged|cost|costs|costing|refund(?: of)?|of|for|uber|ueber|mehr als|plus de|"
    r"superieur a|mas de|meer dan|piu di|oltre|mais de|acima de)\s+"
    rf"(?P<n>{_NUMBER})\s?(?P<k>k\b)?",
    re.IGNORECASE,
)
_ID_BEFORE = re.compile(
    r"(?:\b(?:order|invoice|purchase|ticket|case|account|reference|ref|id|no|nr|number|item|"
    r"sku|tracking|parcel|package|phone|zip|postcode|code)|#)\W{0,3}$",
    re.IGNORECASE,
)


def _to_decimal(raw: str) -> Decimal | None:
    s = re.sub(r"[ '\u00a0\u202f]", "", raw)
    # Groups of three after a separator are thousands; 1-2 digits after the last one are cents
    # (1,234.50 and 1.234,50 are both 1234.50).
    m = re.fullmatch(r"(\d+(?:[.,]\d{3})*)(?:[.,](\d{1,2}))?", s)
    if m is None:
        return None
    whole = re.sub(r"\D", "", m.group(1))
    try:
        return Decimal(f"{whole}.{m.group(2)}" if m.group(2) else whole)
    except InvalidOperation:
        return None


def amounts(text: str) -> tuple[Decimal, ...]:
    """Money amounts named in a message, whatever the currency (pure).

    A number counts when a currency sign, code or word stands next to it, or when a word such
    as "over", "paid", "refund of" introduces it; order, invoice and phone numbers do not
    (leading zeros, more than 7 digits, or an id word just before).
    """
    text = strip_accents(text.lower())
    found: list[Decimal] = []
    spans: list[tuple[int, int]] = []
    for m in _AMOUNT_WITH_CURRENCY.finditer(text):
        raw = m.group("a") or m.group("b")
        value = _to_decimal(raw)
        if value is not None:
            if m.group("ka") or m.group("kb"):
                value *= 1000
            found.append(value)
            spans.append(m.span())
    for m in _AMOUNT_BY_WORD.finditer(text):
        start = m.start("n")
        if any(s <= start < e for s, e in spans):
            continue
        raw = m.group("n")
        digits = re.sub(r"\D", "", raw)
        if raw.startswith("0") or len(digits) > 7 or _ID_BEFORE.search(text[: m.start("n")]):
            continue
        value = _to_decimal(raw)
        if value is None:
            continue
        # A bare year ("for 2023") is a date, not an amount.
        if m.group("k") is None and re.fullmatch(r"(?:19|20)\d\d", raw):
            continue
        if m.group("k"):
            value *= 1000
        found.append(value)
    return tuple(found)


@lru_cache(maxsize=512)
def _keyword_re(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    parts = [
        r"\s+".join(re.escape(w) for w in normalise(strip_accents(k)).split())
        for k in keywords
        if k.strip()
    ]
    parts = [p for p in parts if p]
    if not parts:
        return None
    # Longest first, whole words only; a trailing s/es is allowed ("lawyers").
    parts.sort(key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(parts) + r")(?:e?s)?(?![a-z0-9])")


def keyword_match(keywords: tuple[str, ...], text: str) -> bool:
    pattern = _keyword_re(keywords)
    return pattern is not None and pattern.search(normalise(text)) is not None
