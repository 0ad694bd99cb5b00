"""Paraphrase bridge: a query word the knowledge base never uses, mapped to words it does.

"I'm relocating next month" shares no word with the page "Moving house": BM25 scores it zero,
the lexical coverage (half of the confidence) is zero, and the answer stage's word overlap finds
no fact. The bridge gives such a word a lower-weight stand-in from the knowledge base's own
vocabulary:

* at index time the knowledge base's BM25 vocabulary (its alphabetic terms, the most frequent
  `limit` of them) is embedded once, one term per input, with the embedder that embedded the
  version, and stored with that version (``bridge-v7.npz``, written and published with the
  other files of the version; support.search.index);
* at query time each query term the BM25 index lacks (after its own spelling variants,
  lexical._variants) is embedded (a batch of a few words, cached per version) and one matrix
  product against the stored vectors gives its nearest knowledge-base terms; those with a
  cosine of at least `threshold` (at most `neighbours` of them) become **expansions**, extra BM25
  query terms counting `weight` of a query term, and in the answer stage a sentence holding one
  counts `weight` of the question word it stands for (support.answers.facts).

The query word itself still counts, unmatched, in the coverage ceiling (BM25 max_score): an
expansion only raises the matched part, so a question made of words the knowledge base never
uses stays less covered than one in its own words. Words that match as written are never
expanded, so a query in the knowledge base's words scores exactly as without the bridge.
The threshold and weight were chosen on doc2dial's dev dialogues (bench/bridge.py;
docs/generation.md, "Paraphrase bridge").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from support.search.lexical import Bm25Index, tokenize

BRIDGE_FORMAT: Final = 1
# Shortest term embedded or expanded: two letters are mostly abbreviations, units and
# fragments whose single-word embedding means little.
MIN_TERM_CHARS: Final = 3
# Query words whose vectors a version keeps (they repeat across customers).
WORD_CACHE_SIZE: Final = 4096

Encode = Callable[[Sequence[str]], NDArray[np.float32]]


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """How query words are bridged (support.conf: SUPPORT_BRIDGE*)."""

    enabled: bool = True
    # Least cosine between the query word and a knowledge-base term.
    threshold: float = 0.7
    # What an expansion counts, as a share of a query term (BM25 query weight; fact overlap).
    weight: float = 0.5
    # Knowledge-base terms one query word may stand for.
    neighbours: int = 2
    # The coverage ceiling counts a bridged word as its best expansion for `weight` of it
    # (instead of as a word the knowledge base lacks, at the highest IDF).
    substitute: bool = False


DEFAULT_BRIDGE: Final = BridgeConfig()
BRIDGE_OFF: Final = BridgeConfig(enabled=False)


@dataclass(frozen=True, slots=True)
class Expansion:
    """A query word the index lacks (`word`, a BM25 term) standing in for a knowledge-base
    term (`term`), at `similarity`, counting `weight` of a query term."""

    word: str
    term: str
    similarity: float
    weight: float
    substitute: bool = False


class VocabularyBridge:
    """The embedded vocabulary of one index version. Immutable but for a bounded cache of
    query-word vectors (under a lock); safe to use from many threads."""

    __slots__ = ("_cache", "_lock", "model", "terms", "vectors")

    def __init__(self, terms: Sequence[str], vectors: NDArray[np.float32], *, model: str) -> None:
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(terms):
            raise ValueError(f"{len(terms)} terms but vectors of shape {matrix.shape}")
        self.terms = tuple(terms)
        self.vectors = matrix
        self.model = model
        self._cache: dict[str, NDArray[np.float32]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.terms)

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """One uncompressed .npz (no pickle); vectors as float16 (half the bytes, and cosines
        move by less than 1e-3)."""
        blob = np.frombuffer("\n".join(self.terms).encode("utf-8"), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez(
                fh,
                terms=blob,
                vectors=self.vectors.astype(np.float16),
                model=np.frombuffer(self.model.encode("utf-8"), dtype=np.uint8),
                format=np.asarray([BRIDGE_FORMAT], dtype=np.int64),
            )

    @classmethod
    def load(cls, path: Path) -> VocabularyBridge:
        with np.load(path, allow_pickle=False) as data:
            version = int(data["format"][0])
            if version != BRIDGE_FORMAT:
                raise ValueError(f"{path} has bridge format v{version}, this code reads v1")
            blob = data["terms"].tobytes().decode("utf-8")
            return cls(
                blob.split("\n") if blob else [],
                data["vectors"].astype(np.float32),
                model=data["model"].tobytes().decode("utf-8"),
            )

    # -- querying -----------------------------------------------------------------------------

    def neighbours(
        self, vectors: NDArray[np.float32], *, k: int, threshold: float
    ) -> list[list[tuple[str, float]]]:
        """For each row of `vectors`: its at most `k` nearest terms with a cosine of at least
        `threshold`, best first (one matrix product)."""
        if not len(self.terms) or not len(vectors) or k <= 0:
            return [[] for _ in range(len(vectors))]
        sims = np.asarray(vectors, dtype=np.float32) @ self.vectors.T
        k = min(k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        out: list[list[tuple[str, float]]] = []
        for row, cols in zip(sims, top, strict=True):
            ordered = sorted(cols.tolist(), key=lambda c: (-row[c], c))
            out.append([(self.terms[c], float(row[c])) for c in ordered if row[c] >= threshold])
        return out

    def word_vectors(self, words: Sequence[str], encode: Encode) -> NDArray[np.float32]:
        """Vectors of `words`, encoding in one batch only those not cached."""
        with self._lock:
            known = {w: self._cache[w] for w in words if w in self._cache}
        missing = [w for w in dict.fromkeys(words) if w not in known]
        if missing:
            fresh = np.asarray(encode(missing), dtype=np.float32)
            known.update(zip(missing, fresh, strict=True))
            with self._lock:
                if len(self._cache) + len(missing) > WORD_CACHE_SIZE:
                    self._cache.clear()
                self._cache.update(zip(missing, fresh, strict=True))
        return np.stack([known[w] for w in words])

    def expand(
        self, lexical: Bm25Index, query: str, encode: Encode, config: BridgeConfig
    ) -> tuple[Expansion, ...]:
        """The expansions of `query`'s words that `lexical` lacks (none when disabled)."""
        if not config.enabled or config.weight <= 0 or not len(self.terms):
            return ()
        words = unknown_words(lexical, query)
        if not words:
            return ()
        found = self.neighbours(
            self.word_vectors(words, encode), k=config.neighbours, threshold=config.threshold
        )
        return tuple(
            Expansion(word, term, round(sim, 4), config.weight, config.substitute)
            for word, near in zip(words, found, strict=True)
            for term, sim in near
        )


def unknown_words(lexical: Bm25Index, query: str) -> list[str]:
    """The query's alphabetic BM25 terms that no chunk holds, in order, once each."""
    return [
        t
        for t in dict.fromkeys(tokenize(query))
        if t.isalpha() and len(t) >= MIN_TERM_CHARS and not lexical.has_term(t)
    ]


def vocabulary_terms(lexical: Bm25Index, *, limit: int) -> list[str]:
    """The terms a bridge embeds: alphabetic, at least MIN_TERM_CHARS long, the `limit` most
    frequent (ties by the term), in that order."""
    df = lexical.document_frequencies()
    candidates = [
        (int(df[col]), term)
        for term, col in lexical.vocab.items()
        if term.isalpha() and len(term) >= MIN_TERM_CHARS
    ]
    candidates.sort(key=lambda x: (-x[0], x[1]))
    return [term for _, term in candidates[: max(limit, 0)]]


def bridge_build(
    lexical: Bm25Index,
    encode: Encode,
    *,
    model: str,
    limit: int,
    previous: VocabularyBridge | None = None,
) -> VocabularyBridge | None:
    """Embed the knowledge base's vocabulary (None when it has none or `limit` is 0). The
    vectors of terms `previous` holds, made by the same `model`, are reused: a rebuild after
    one new page embeds only its new words."""
    terms = vocabulary_terms(lexical, limit=limit)
    if not terms:
        return None
    known: dict[str, int] = {}
    if previous is not None and previous.model == model:
        known = {t: i for i, t in enumerate(previous.terms)}
    new = [t for t in terms if t not in known]
    fresh = encode(new) if new else np.zeros((0, 0), dtype=np.float32)
    fresh_row = {t: i for i, t in enumerate(new)}
    dim = fresh.shape[1] if len(new) else previous.vectors.shape[1]  # type: ignore[union-attr]
    vectors = np.empty((len(terms), dim), dtype=np.float32)
    for i, term in enumerate(terms):
        if term in fresh_row:
            vectors[i] = fresh[fresh_row[term]]
        else:
            vectors[i] = previous.vectors[known[term]]  # type: ignore[union-attr]
    return VocabularyBridge(terms, vectors, model=model)
