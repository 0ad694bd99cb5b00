"""Okapi BM25 over chunk texts: a numpy inverted index that keeps codes and order numbers whole.

The tokenizer lowercases and emits every "compound" run such as ``ERR-4032``, ``SKU_77-b``,
``#123456`` or ``v2.3.1`` as one token (so an exact code match earns its own, rare, IDF), and
also emits the alphanumeric sub-parts (``err``, ``4032``) so partial mentions still match.
Plain words go through a light stopword list and Harman's S-stemmer (plurals only); compound
tokens are never stemmed. A query term the index lacks is replaced by the form the knowledge
base uses, when there is one (`_variants`: "wifi" -> "wi-fi", "miss" -> "missed").

The index is postings in CSC layout (term -> rows) held in three flat numpy arrays; a query
adds one slice per query term into a dense score vector, so cost is proportional to the
summed posting lengths and a 100k-chunk index answers in about a millisecond.
It is persisted as one uncompressed ``.npz`` (no pickle) next to the FAISS file of the same
version, because tokenizing 100k chunks costs seconds while loading the arrays costs
milliseconds (see bench/retrieval_tune.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from support.text import SEARCH_STOPWORDS, light_stem, plural_stem

TOKENIZER_VERSION: Final = 1

# Function words and contraction fragments (support.text); `_stem` is looked up at call time,
# so a benchmark can swap the stemmer.
STOPWORDS: Final = SEARCH_STOPWORDS
_stem = plural_stem

# A token is a run of word characters, optionally joined to further runs by one of - _ . / : +
# or preceded by '#'. Joiners only count between word characters, so sentence punctuation
# ("v2.3.1." or "ERR-4032,") never sticks to a token.
_TOKEN_RE: Final = re.compile(r"#?\w+(?:[-./:+]\w+)*")
_SPLIT_RE: Final = re.compile(r"[\W_]+")


def tokenize(text: str) -> list[str]:
    """Lowercased BM25 terms of `text`: whole compound tokens plus their sub-parts."""
    out: list[str] = []
    append = out.append
    for match in _TOKEN_RE.finditer(text.lower()):
        token = match.group()
        if token.isalnum():
            # Plain word or number: the common case, kept fast.
            if token not in STOPWORDS:
                append(_stem(token))
            continue
        append(token)
        for part in _SPLIT_RE.split(token):
            if part and part not in STOPWORDS:
                append(part)
    return out


@dataclass(frozen=True, slots=True)
class Bm25Params:
    k1: float = 1.2
    b: float = 0.75


@dataclass(frozen=True, slots=True)
class LexicalHit:
    chunk_id: int
    score: float
    rank: int  # 1-based


def _as_id_array(ids: Iterable[int] | None) -> NDArray[np.int64] | None:
    if ids is None:
        return None
    return np.fromiter(ids, dtype=np.int64)


class Bm25Index:
    """Immutable BM25 index; `search` is safe to call from many threads at once."""

    __slots__ = (
        "_doc_len",
        "_id_order",
        "_idf",
        "_indptr",
        "_rows",
        "_sorted_ids",
        "_tf",
        "_variants",
        "_weights",
        "ids",
        "params",
        "vocab",
    )

    def __init__(
        self,
        *,
        ids: NDArray[np.int64],
        vocab: dict[str, int],
        indptr: NDArray[np.int64],
        rows: NDArray[np.int32],
        tf: NDArray[np.uint16],
        doc_len: NDArray[np.float32],
        params: Bm25Params,
    ) -> None:
        self.ids = ids
        self.vocab = vocab
        self.params = params
        self._indptr = indptr
        self._rows = rows
        self._doc_len = doc_len
        self._tf = tf
        n = len(ids)
        df = np.diff(indptr).astype(np.float64)
        # Lucene's non-negative IDF: a term in every chunk scores ~0, never below.
        self._idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        avgdl = float(doc_len.mean()) if n else 1.0
        norm = params.k1 * (1.0 - params.b + params.b * doc_len / max(avgdl, 1e-9))
        # Term-saturation part of BM25 precomputed per posting; IDF is applied per query.
        tf32 = tf.astype(np.float32)
        self._weights = (tf32 * (params.k1 + 1.0) / (tf32 + norm[rows])).astype(np.float32)
        self._id_order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._id_order]
        # Built on the first query term the index lacks, not at load: loading stays a matter of
        # milliseconds (one pass over the vocabulary costs more at 100,000 chunks). A race
        # builds the same dict twice; either copy is right.
        self._variants: dict[str, str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def idf(self, term: str) -> float:
        """The term's IDF; a term no chunk holds gets the highest possible (df = 0)."""
        col = self.vocab.get(term)
        if col is None:
            n = len(self.ids)
            return float(np.log1p((n + 0.5) / 0.5))
        return float(self._idf[col])

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        ids: Sequence[int] | NDArray[np.int64],
        texts: Sequence[str],
        *,
        params: Bm25Params | None = None,
    ) -> Bm25Index:
        """Tokenize `texts` (aligned with `ids`) and build the index."""
        id_array = np.asarray(ids, dtype=np.int64)
        if len(id_array) != len(texts):
            raise ValueError(f"{len(id_array)} ids but {len(texts)} texts")
        vocab: dict[str, int] = {}
        term_ids: list[int] = []
        doc_len = np.zeros(len(texts), dtype=np.float32)
        counts = np.zeros(len(texts), dtype=np.int64)
        setdefault = vocab.setdefault
        for row, text in enumerate(texts):
            tokens = tokenize(text)
            counts[row] = len(tokens)
            term_ids.extend([setdefault(tok, len(vocab)) for tok in tokens])
        doc_len[:] = counts
        terms = np.asarray(term_ids, dtype=np.int64)
        rows_all = np.repeat(np.arange(len(texts), dtype=np.int64), counts)
        n_docs = max(len(texts), 1)
        # One sort of (term, row) keys yields CSC order and term frequencies together.
        keys, tf = np.unique(terms * n_docs + rows_all, return_counts=True)
        key_terms = keys // n_docs
        rows = (keys % n_docs).astype(np.int32)
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(key_terms, minlength=len(vocab)), out=indptr[1:])
        return cls(
            ids=id_array,
            vocab=vocab,
            indptr=indptr,
            rows=rows,
            tf=np.minimum(tf, np.iinfo(np.uint16).max).astype(np.uint16),
            doc_len=doc_len,
            params=params or Bm25Params(),
        )

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the index as one uncompressed .npz (no pickle); `path` should end in .npz."""
        terms = [""] * len(self.vocab)
        for term, i in self.vocab.items():
            terms[i] = term
        # Terms never contain "\n" (see _TOKEN_RE), so one joined blob stores the vocabulary
        # without numpy's fixed-width unicode arrays, which blow up on one long token.
        blob = np.frombuffer("\n".join(terms).encode("utf-8"), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez(
                fh,
                ids=self.ids,
                vocab=blob,
                indptr=self._indptr,
                rows=self._rows,
                tf=self._tf,
                doc_len=self._doc_len,
                params=np.asarray([self.params.k1, self.params.b], dtype=np.float64),
                tokenizer_version=np.asarray([TOKENIZER_VERSION], dtype=np.int64),
            )

    @classmethod
    def load(cls, path: Path, *, params: Bm25Params | None = None) -> Bm25Index:
        """Load an index written by `save`; `params` overrides the k1/b it was saved with."""
        with np.load(path, allow_pickle=False) as data:
            version = int(data["tokenizer_version"][0])
            if version != TOKENIZER_VERSION:
                raise ValueError(
                    f"{path} was built with tokenizer v{version}, this code is "
                    f"v{TOKENIZER_VERSION}: rebuild the index"
                )
            blob = data["vocab"].tobytes().decode("utf-8")
            terms = blob.split("\n") if blob else []
            saved = data["params"]
            return cls(
                ids=data["ids"].astype(np.int64, copy=False),
                vocab={term: i for i, term in enumerate(terms)},
                indptr=data["indptr"],
                rows=data["rows"],
                tf=data["tf"],
                doc_len=data["doc_len"],
                params=params or Bm25Params(k1=float(saved[0]), b=float(saved[1])),
            )

    # -- querying -----------------------------------------------------------------------------

    def positions(self, chunk_ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Row positions of `chunk_ids`; -1 where an id is not in the index."""
        if not len(self._sorted_ids):
            return np.full(len(chunk_ids), -1, dtype=np.int64)
        where = np.searchsorted(self._sorted_ids, chunk_ids)
        where = np.clip(where, 0, len(self._sorted_ids) - 1)
        found = self._sorted_ids[where] == chunk_ids
        return np.where(found, self._id_order[where], -1)

    def score_all(
        self, query: str, *, extra: Mapping[str, float] | None = None
    ) -> NDArray[np.float32]:
        """BM25 score of every chunk (row order) for `query`; zeros when nothing matches.

        `extra` adds index terms with a query weight each (a paraphrase bridge's expansions,
        support.search.bridge); one the query already matches is not counted twice."""
        scores = np.zeros(len(self.ids), dtype=np.float32)
        columns: dict[int, float] = {}
        for term, qtf in _query_terms(query).items():
            t = self._column(term)
            if t is not None:
                columns[t] = columns.get(t, 0.0) + qtf
        if extra:
            matched = set(columns)
            for term, weight in extra.items():
                t = self.vocab.get(term)
                if t is not None and t not in matched:
                    columns[t] = max(columns.get(t, 0.0), weight)
        for t, weight in columns.items():
            start, end = self._indptr[t], self._indptr[t + 1]
            # Rows are unique within one posting list, so fancy-index += is exact.
            scores[self._rows[start:end]] += (self._idf[t] * weight) * self._weights[start:end]
        return scores

    def has_term(self, term: str) -> bool:
        """Whether a query term matches some chunk (as written or as a variant)."""
        return self._column(term) is not None

    def document_frequencies(self) -> NDArray[np.int64]:
        """Chunks holding each term, by vocabulary column."""
        df: NDArray[np.int64] = np.diff(self._indptr)
        return df

    def max_score(
        self, query: str, *, stand_ins: Mapping[str, tuple[str, float]] | None = None
    ) -> float:
        """Score of an average-length chunk holding each query term once.

        A reference for turning a BM25 score into a query-length-independent coverage ratio.
        Terms missing from the index count with the highest possible IDF, so a query about
        things the knowledge base never mentions has low coverage. `stand_ins` maps such a
        term to an index term standing in for it and the share it stands in for (a paraphrase
        bridge's substitution, support.search.bridge): that share counts the index term's IDF.
        """
        n = len(self.ids)
        unseen_idf = math.log1p((n + 0.5) / 0.5)
        total = 0.0
        for term, qtf in _query_terms(query).items():
            t = self._column(term)
            if t is not None:
                total += qtf * float(self._idf[t])
                continue
            stand_in = stand_ins.get(term) if stand_ins else None
            col = self.vocab.get(stand_in[0]) if stand_in is not None else None
            if stand_in is None or col is None:
                total += qtf * unseen_idf
            else:
                share = stand_in[1]
                total += qtf * (share * float(self._idf[col]) + (1.0 - share) * unseen_idf)
        return total

    def _column(self, term: str) -> int | None:
        """The index column of a query term: the term itself, else the one form of it the
        knowledge base uses ("wifi" for "wi-fi", "miss" for "missed"; see `_variants`)."""
        t = self.vocab.get(term)
        if t is None:
            if self._variants is None:
                self._variants = _variants(self.vocab, np.diff(self._indptr))
            variant = self._variants.get(term) or self._variants.get(light_stem(term))
            t = None if variant is None else self.vocab.get(variant)
        return t

    def search(
        self,
        query: str,
        k: int,
        *,
        allow_ids: Iterable[int] | None = None,
        deny_ids: Iterable[int] | None = None,
    ) -> list[LexicalHit]:
        """Top `k` chunks with a positive score, honouring the allow/deny lists."""
        scores = self.score_all(query)
        return self.top_k(scores, k, allow_ids=allow_ids, deny_ids=deny_ids)

    def top_k(
        self,
        scores: NDArray[np.float32],
        k: int,
        *,
        allow_ids: Iterable[int] | None = None,
        deny_ids: Iterable[int] | None = None,
    ) -> list[LexicalHit]:
        """Best `k` rows of a `score_all` vector, filtered; only positive scores count."""
        allow = _as_id_array(allow_ids)
        deny = _as_id_array(deny_ids)
        if allow is not None or deny is not None:
            scores = scores.copy()
            if allow is not None:
                keep = np.zeros(len(scores), dtype=bool)
                pos = self.positions(allow)
                keep[pos[pos >= 0]] = True
                scores[~keep] = 0.0
            if deny is not None:
                pos = self.positions(deny)
                scores[pos[pos >= 0]] = 0.0
        candidates = np.flatnonzero(scores > 0.0)
        if not len(candidates) or k <= 0:
            return []
        if len(candidates) > k:
            part = np.argpartition(-scores[candidates], k - 1)[:k]
            candidates = candidates[part]
        # Ties broken by row so results are deterministic.
        order = np.lexsort((candidates, -scores[candidates]))
        top = candidates[order]
        return [
            LexicalHit(chunk_id=int(self.ids[row]), score=float(scores[row]), rank=rank)
            for rank, row in enumerate(top, start=1)
        ]


def _variants(vocab: dict[str, int], df: NDArray[np.int64]) -> dict[str, str]:
    """For query terms the index does not hold: the spelling the knowledge base uses.

    Keys are a hyphenated compound of letters written together ("wifi" -> "wi-fi", "email" ->
    "e-mail") and the light stem of a plain word ("miss" and "missing" -> "missed"); when
    several terms share a key the most frequent wins. Only a term missing from the index is
    looked up, so a query that matches as written scores exactly as before.
    """
    out: dict[str, tuple[float, str]] = {}
    for term, col in vocab.items():
        if term.isalpha():
            key = light_stem(term)
        elif "-" in term and term.replace("-", "").isalpha():
            key = term.replace("-", "")
        else:
            continue
        best = out.get(key)
        if best is None or df[col] > best[0]:
            out[key] = (float(df[col]), term)
    return {key: term for key, (_, term) in out.items()}


def _query_terms(query: str) -> dict[str, int]:
    terms: dict[str, int] = {}
    for tok in tokenize(query):
        terms[tok] = terms.get(tok, 0) + 1
    return terms
