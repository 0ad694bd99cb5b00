"""Question memory: the questions of approved examples as extra search keys of their chunks.

A key is one example's question, embedded with the embedder the chunks were embedded with
(query side: keys and queries are both questions) and indexed for BM25. It names the chunk(s)
that ground the example's answer. For a query, every key gets

    key_score = dense_weight * cosine(query, key) + (1 - dense_weight) * bm25(query, key) / ceiling

where `ceiling` is the score of a key holding every query term (Bm25Index.max_score), so the
lexical part is the share of the query's BM25 mass the key matches, in [0, 1] whatever the
number of keys (max-normalising over the keys, as the chunk fusion does, would give the best
key 1.0 even when it shares one stop word with the query). A chunk's memory score is the best
score of its keys. The fusion with the chunk's own score is in support.search.hybrid
(`FusionConfig.memory_weight`); docs/learning.md has the whole design and its measurement.

Written with the index version it belongs to (support.search.index.build): the key vectors,
the chunk lists and the key ids in one .npz, the BM25 postings of the key texts in another.
Immutable once loaded; safe to search from many threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from .lexical import Bm25Index, Bm25Params

# Keys whose score is below this are ignored: they say nothing the chunk's own text does not.
MIN_KEY_SCORE: Final = 0.0
# The dense weight inside a key's score: the chunk fusion's (hybrid.FusionConfig.dense_weight).
KEY_DENSE_WEIGHT: Final = 0.7


@dataclass(frozen=True, slots=True)
class MemoryKeys:
    """What a memory is built from: one row per key (an approved example's question)."""

    example_ids: NDArray[np.int64]  # (n,) the example each key comes from
    texts: tuple[str, ...]  # (n,) the questions
    vectors: NDArray[np.float32]  # (n, dimension), L2-normalised
    chunk_ids: tuple[tuple[int, ...], ...]  # (n,) the grounding chunks of each key
    # (n,) SHA-256 of each question as embedded: a rebuild reuses the vectors of unchanged keys.
    text_hashes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.example_ids)


class QuestionMemory:
    """Keys (questions) pointing at chunks; `chunk_scores` gives each chunk its best key."""

    __slots__ = ("_indptr", "_targets", "bm25", "example_ids", "text_hashes", "vectors")

    def __init__(
        self,
        *,
        example_ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        indptr: NDArray[np.int64],
        targets: NDArray[np.int64],
        bm25: Bm25Index,
        text_hashes: Sequence[str] = (),
    ) -> None:
        self.example_ids = example_ids
        self.vectors = vectors
        self._indptr = indptr  # key i points at targets[indptr[i]:indptr[i + 1]]
        self._targets = targets
        self.bm25 = bm25
        self.text_hashes = tuple(text_hashes)

    def __len__(self) -> int:
        return len(self.example_ids)

    @property
    def dimension(self) -> int:
        return int(self.vectors.shape[1])

    @classmethod
    def build(cls, keys: MemoryKeys, *, params: Bm25Params | None = None) -> QuestionMemory:
        """A memory of `keys` (keys without a chunk are left out)."""
        keep = [i for i, chunks in enumerate(keys.chunk_ids) if chunks]
        vectors = np.ascontiguousarray(keys.vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys):
            raise ValueError(f"{len(keys)} keys but vectors of shape {vectors.shape}")
        if len(vectors) and not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3):
            raise ValueError("key vectors must be L2-normalised")
        lengths = np.fromiter(
            (len(keys.chunk_ids[i]) for i in keep), dtype=np.int64, count=len(keep)
        )
        indptr = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        targets = np.fromiter(
            (c for i in keep for c in keys.chunk_ids[i]), dtype=np.int64, count=int(indptr[-1])
        )
        rows = np.arange(len(keep), dtype=np.int64)
        hashes = keys.text_hashes
        return cls(
            example_ids=np.asarray(keys.example_ids, dtype=np.int64)[keep],
            vectors=vectors[keep],
            indptr=indptr,
            targets=targets,
            bm25=Bm25Index.build(rows, [keys.texts[i] for i in keep], params=params),
            text_hashes=[hashes[i] for i in keep] if hashes else (),
        )

    def key_chunks(self, key: int) -> NDArray[np.int64]:
        return self._targets[self._indptr[key] : self._indptr[key + 1]]

    def key_scores(self, query_vector: NDArray[np.float32], query_text: str) -> NDArray[np.float32]:
        """Every key's score for the query (see the module docstring), in key order."""
        if not len(self):
            return np.zeros(0, dtype=np.float32)
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        dense = self.vectors @ q
        ceiling = self.bm25.max_score(query_text)
        lexical = self.bm25.score_all(query_text)
        lexical = np.minimum(lexical / ceiling, 1.0) if ceiling > 0 else np.zeros_like(lexical)
        scores: NDArray[np.float32] = (
            KEY_DENSE_WEIGHT * dense + (1.0 - KEY_DENSE_WEIGHT) * lexical
        ).astype(np.float32)
        return scores

    def nearest(
        self, query_vector: NDArray[np.float32], *, min_similarity: float
    ) -> list[tuple[int, float]]:
        """(key, cosine) of the keys whose dense cosine to the query is at least
        `min_similarity`, most similar first (answer memory: support.learning.answer_memory)."""
        if not len(self):
            return []
        q = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        dense = self.vectors @ q
        keys = np.flatnonzero(dense >= min_similarity)
        order = keys[np.argsort(-dense[keys], kind="stable")]
        return [(int(k), float(dense[k])) for k in order]

    def chunk_scores(
        self,
        query_vector: NDArray[np.float32],
        query_text: str,
        *,
        top_keys: int = 20,
        min_score: float = MIN_KEY_SCORE,
    ) -> dict[int, float]:
        """The best key score of each chunk that one of the `top_keys` best keys points at."""
        scores = self.key_scores(query_vector, query_text)
        if not len(scores):
            return {}
        n = min(top_keys, len(scores))
        best = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        out: dict[int, float] = {}
        for key in best.tolist():
            score = float(scores[key])
            if score <= min_score:
                continue
            for chunk in self.key_chunks(key).tolist():
                if score > out.get(chunk, -1.0):
                    out[chunk] = score
        return out

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: Path, lexical_path: Path) -> None:
        """Two uncompressed .npz files (no pickle): keys and chunks, and the keys' BM25."""
        blob = np.frombuffer("\n".join(self.text_hashes).encode("ascii"), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez(
                fh,
                example_ids=self.example_ids,
                vectors=self.vectors,
                indptr=self._indptr,
                targets=self._targets,
                text_hashes=blob,
            )
        self.bm25.save(lexical_path)

    @classmethod
    def load(
        cls, path: Path, lexical_path: Path, *, params: Bm25Params | None = None
    ) -> QuestionMemory:
        with np.load(path, allow_pickle=False) as data:
            blob = data["text_hashes"].tobytes().decode("ascii")
            return cls(
                example_ids=data["example_ids"].astype(np.int64, copy=False),
                vectors=np.ascontiguousarray(data["vectors"], dtype=np.float32),
                indptr=data["indptr"].astype(np.int64, copy=False),
                targets=data["targets"].astype(np.int64, copy=False),
                bm25=Bm25Index.load(lexical_path, params=params),
                text_hashes=blob.split("\n") if blob else (),
            )
