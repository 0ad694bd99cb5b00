"""Answer quality against a reference reply: SQuAD-style token F1 and ROUGE-L.

The one definition the product's gate (support.learning.chat_specialise, support.learning's
fact ranker) and every benchmark (bench/answers.py and the scripts that import it) share:
lower case, no punctuation, no articles, no citation marks `[n]`. Pure: no Django.
"""

from __future__ import annotations

import re
import string
from collections import Counter

_CITE = re.compile(r"\[\s*\d*\s*\]")
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}‘’“”…–—]")


def normalize_tokens(text: str) -> list[str]:
    """The words a measure compares: citation marks, punctuation and articles removed."""
    text = _CITE.sub(" ", text or "").lower()
    text = _ARTICLES.sub(" ", _PUNCT.sub(" ", text))
    return text.split()


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of the shared words' precision and recall (1.0 when both are empty)."""
    pred, ref = normalize_tokens(prediction), normalize_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common_n = sum((Counter(pred) & Counter(ref)).values())
    if not common_n:
        return 0.0
    precision, recall = common_n / len(pred), common_n / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1: longest common subsequence of the normalised words."""
    pred, ref = normalize_tokens(prediction), normalize_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    prev = [0] * (len(ref) + 1)
    for a in pred:
        cur = [0]
        for j, b in enumerate(ref):
            cur.append(prev[j] + 1 if a == b else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)
