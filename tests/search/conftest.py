"""Fixtures for support.search: a deterministic fake embedder and small corpora."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pytest
from numpy.typing import NDArray

from support.search.lexical import tokenize

FAKE_DIM = 64


class FakeEmbedder:
    """`Embedder` that hashes BM25 terms into a bag-of-words vector: deterministic, instant,
    and texts sharing words are closer, which is all the index and fusion tests need."""

    dimension = FAKE_DIM
    model_name = "fake-hashing-64"

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> NDArray[np.float32]:
        out = np.zeros((len(texts), FAKE_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenize(text) or ["<empty>"]:
                h = zlib.crc32(token.encode("utf-8"))
                out[row, h % FAKE_DIM] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out /= norms
        # An all-cancelled row would have norm 0: give it a fixed unit direction.
        out[np.linalg.norm(out, axis=1) == 0, 0] = 1.0
        return out

    def encode_query(self, text: str) -> NDArray[np.float32]:
        return self.encode([text])[0]


def random_unit_vectors(n: int, dim: int = FAKE_DIM, *, seed: int = 0) -> NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


CORPUS = {
    101: "How to reset your password from the login page",
    102: "Error ERR-4032 means the payment card was declined by the bank",
    103: "Error ERR-4033 means the card expired; ERR 4033 needs a new card",
    104: "Track order #123456 from your account's order history page",
    105: "Release notes for app v2.3.1: faster sync and a dark theme",
    106: "Our refund policy: refunds are paid within 14 days of the return",
    107: "The SKU_77-b charger works with every model sold since 2021",
    108: "Shipping to Canada takes five to eight business days",
}


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
def corpus() -> dict[int, str]:
    return dict(CORPUS)
