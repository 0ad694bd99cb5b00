"""Similarity between texts, injected into the decision so the decision itself stays pure."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


class Similarity(Protocol):
    """Cosine similarity of `text` to each of `others`: shape (len(others),), float32."""

    def __call__(self, text: str, others: Sequence[str]) -> NDArray[np.float32]: ...


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]: ...


class EmbeddingSimilarity:
    """`Similarity` over an embedder's L2-normalised vectors, with a bounded per-text cache.

    Example phrasings are asked for on every decision, so after the first call they are never
    embedded again in this process; customer messages enter the same cache, and a message seen
    by two decisions (say the message and the answer stage) is embedded once. The embedder comes
    from `get_encoder` on each call: when the backend is swapped (tests, settings), the cache is
    dropped with it.
    """

    def __init__(self, get_encoder: Callable[[], Encoder], *, max_entries: int = 8192) -> None:
        self._get_encoder = get_encoder
        self._max = max_entries
        self._lock = threading.Lock()
        self._encoder: Encoder | None = None
        self._cache: OrderedDict[str, NDArray[np.float32]] = OrderedDict()

    def __call__(self, text: str, others: Sequence[str]) -> NDArray[np.float32]:
        if not others:
            return np.zeros(0, dtype=np.float32)
        vectors = self.vectors([text, *others])
        result: NDArray[np.float32] = vectors[1:] @ vectors[0]
        return result

    def vectors(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Rows of unit vectors for `texts`, embedding only those not cached yet."""
        encoder = self._get_encoder()
        known: dict[str, NDArray[np.float32]] = {}
        with self._lock:
            if encoder is not self._encoder:
                self._encoder = encoder
                self._cache.clear()
            for t in texts:
                v = self._cache.get(t)
                if v is not None:
                    known[t] = v
                    self._cache.move_to_end(t)
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            # Encoded outside the lock: a slow model call must not serialise other threads;
            # two threads embedding the same text just store the same vector twice.
            fresh = np.asarray(encoder.encode(missing), dtype=np.float32)
            known.update(zip(missing, fresh, strict=True))
            with self._lock:
                if encoder is self._encoder:
                    for t, v in zip(missing, fresh, strict=True):
                        self._cache[t] = v
                    while len(self._cache) > self._max:
                        self._cache.popitem(last=False)
        return np.stack([known[t] for t in texts])

    def clear(self) -> None:
        with self._lock:
            self._encoder = None
            self._cache.clear()
