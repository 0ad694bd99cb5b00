"""Fakes for the escalation tests: similarities and an encoder, no model."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal

import numpy as np
import pytest
from numpy.typing import NDArray

from support import backends
from support.handoff.escalation_rules import TopicRule

DIM = 256


class ScriptedSimilarity:
    """`Similarity` that answers from a table of (text, other) -> score; 0 otherwise."""

    def __init__(self, scores: Mapping[tuple[str, str], float] | None = None) -> None:
        self.scores = dict(scores or {})
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def __call__(self, text: str, others: Sequence[str]) -> NDArray[np.float32]:
        self.calls.append((text, tuple(others)))
        return np.array([self.scores.get((text, o), 0.0) for o in others], dtype=np.float32)


class BagOfWordsEncoder:
    """An `Embedder`-like encoder: hashed bag of words, L2-normalised; counts its calls."""

    dimension = DIM
    model_name = "fake-bow"

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> NDArray[np.float32]:
        self.encoded.extend(texts)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in re.findall(r"\w+", text.lower()) or ["<empty>"]:
                out[row, zlib.crc32(token.encode()) % DIM] += 1.0
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out

    def encode_query(self, text: str) -> NDArray[np.float32]:
        return self.encode([text])[0]


@pytest.fixture
def bow_encoder() -> Iterator[BagOfWordsEncoder]:
    """Installs the fake encoder as the process's embedder backend."""
    encoder = BagOfWordsEncoder()
    backends.set_backend("embedder", encoder)
    yield encoder
    backends.reset_backends()


# The topics migration 0003 seeds, in their frozen form (kept in sync by test_models).
LEGAL = TopicRule(
    name="Legal threat",
    keywords=("lawyer", "attorney", "lawsuit", "sue you", "legal action", "Anwalt", "avocat"),
    customer_message="A member of our team will take over (legal).",
)
DELETION = TopicRule(
    name="Account deletion",
    keywords=("delete my account", "close my account", "Konto löschen"),
    customer_message="A member of our team will take over (deletion).",
)
REFUND = TopicRule(
    name="Large refund",
    keywords=("refund", "money back", "Rückerstattung", "remboursement", "reembolso"),
    amount_threshold=Decimal("500"),
    customer_message="Refunds of this size are reviewed by a person.",
)
SECURITY = TopicRule(
    name="Security incident",
    keywords=("hacked",),
    examples=("someone else logged into my account",),
    customer_message="Security matters are handled by a person.",
)
TOPICS = (LEGAL, DELETION, REFUND, SECURITY)
