"""Hybrid retrieval: dense (FAISS) and lexical (BM25) candidates fused into one ranking.

Fusion (chosen on the doc2dial eval set, see bench/retrieval_tune.py and FusionConfig):
both retrievers return their top `candidates`; for the union, the missing score of each
candidate is computed exactly (its stored vector dotted with the query; its BM25 score read
from the full score vector), so every hit carries both scores. Scores are then combined as

    score = w * dense_cosine + (1 - w) * bm25 / max_bm25(candidates)          ("convex", default)

Dense cosines are kept raw because they are already on a fixed scale; BM25 is unbounded
and query-length dependent, so it is divided by the best lexical score among the candidates
(max-normalisation, which unlike min-max does not blow tiny score differences up to the
full [0, 1] range when nothing matches well). Reciprocal rank fusion ("rrf",
sum of weight / (rrf_k + rank)) is available for comparison.

Measured on doc2dial (191 answerable questions, ingest chunker at 192 tokens; span-overlap
hits): convex w=0.7 gives R@5 0.775-0.780 / MRR@10 0.645 against dense-only 0.723 / 0.567;
w in 0.6-0.75 is a plateau. Best RRF (w=0.4) 0.775 / 0.631; min-max on both sides
0.759 / 0.646 (w=0.5); z-scores 0.770 / 0.645 (w=0.5). The differences between fusion
variants are 1-3 questions, i.e. within noise; convex/max won on MRR and is the simplest.

With the product's 256-token chunks (bench/retrieval_variants.py, tuned on the even
questions, odd ones held out), w=0.7 plus a small prior for a document's opening chunk
(FusionConfig.opening_boost) gives span R@5 0.796 (0.764 without the prior); at 448-token
chunks w=0.6 with the prior gives 0.843 (dev 0.853 / test 0.833), MRR@10 0.680, but such a
chunk is longer than the embedding model's 256-piece window (SUPPORT_CHUNK_TOKENS).
Rejected there, each within ±0.02 of its baseline:
BM25 title weighting, k1/b, Porter stemming, filler-word query cleaning, pseudo-relevance
feedback (dense Rocchio, RM3), neighbour-score smoothing, page-level aggregation.

Question memory (support.search.memory, docs/learning.md): the questions of approved examples
are extra keys of their grounding chunks. A chunk that a key points at scores

    score = max(fused, memory_weight * best key score)

and is added to the candidates when neither retriever found it. The confidence is computed
from the chunks' own texts only, so a key match re-ranks but never makes a question look
answerable that the knowledge base's text does not answer.

Confidence: a logistic model of the top dense cosine and of how much of the query's
possible BM25 mass the best chunk matched, fitted on the eval set's answerable vs.
unanswerable questions (see ConfidenceModel).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from support.search.bridge import DEFAULT_BRIDGE, BridgeConfig, Expansion
from support.search.embedder import Embedder
from support.search.index import DenseHit, IndexManifest, IndexReader, IndexSnapshot
from support.search.lexical import _SPLIT_RE as SPLIT_RE
from support.search.lexical import _TOKEN_RE as TOKEN_RE
from support.search.lexical import Bm25Index, LexicalHit
from support.search.memory import QuestionMemory
from support.text import ANSWER_STOPWORDS, SEARCH_STOPWORDS

FusionMethod = Literal["convex", "rrf"]
CoverageKind = Literal["all_terms", "content_terms"]


@dataclass(frozen=True, slots=True)
class FusionConfig:
    method: FusionMethod = "convex"
    # Weight of the dense cosine in "convex"; dense weight in "rrf" (lexical gets 1 - w).
    dense_weight: float = 0.7
    rrf_k: int = 60
    # Candidates taken from each retriever before fusion.
    candidates: int = 50
    # Added to the fused score ("convex" only) of a chunk that opens its document, when the
    # index marks them: a page's opening states what the page is about, which is what a first,
    # often vague question asks (doc2dial span recall@5: 0.764 -> 0.796 at 256-token chunks,
    # 0.806 -> 0.843 at 448).
    opening_boost: float = 0.05
    # Question memory: a chunk scores at least this share of its best key's score (0 turns the
    # memory off). Fixed before measuring; bench/learning.py cross-validates it inside each
    # training half, and no value in 0.6-1.1 moves doc2dial recall@5 by a point (docs/learning.md).
    memory_weight: float = 0.9
    # Keys read per query; each names its chunks.
    memory_keys: int = 20
    # Keys scoring below this count for nothing (0: every key counts; the score is then only
    # limited by memory_weight).
    memory_min_score: float = 0.0


DEFAULT_FUSION: Final = FusionConfig()


@dataclass(frozen=True, slots=True)
class ConfidenceModel:
    """P(answerable) = sigmoid(intercept + w_dense * top_cosine + w_lexical * lexical_coverage).

    `top_cosine` is the best dense cosine among allowed chunks; `lexical_coverage` is the best
    chunk's BM25 score divided by the score a chunk would get by matching every query term
    (sum over query terms of idf * (k1 + 1)), so it lies in [0, 1] for any query length.
    Both weights are non-negative, so confidence never falls when the top score rises.
    """

    intercept: float
    w_dense: float
    w_lexical: float
    # What `lexical_coverage` is computed over: every BM25 query term, or the question's
    # content words only (`content_coverage`).
    coverage: CoverageKind = "all_terms"

    def __call__(self, top_cosine: float, lexical_coverage: float) -> float:
        z = self.intercept + self.w_dense * top_cosine + self.w_lexical * lexical_coverage
        return 1.0 / (1.0 + math.exp(-z))


# Fitted by bench/retrieval_tune.py (confidence section) on doc2dial: 191 answerable vs 29
# unanswerable first-turn questions (their pages withheld from the KB), ingest chunker at 192
# tokens, convex fusion w=0.7. Class-balanced, L2-regularised (1e-2) logistic regression by
# Newton's method, weights constrained non-negative. AUC: top_cosine alone 0.754,
# lexical_coverage alone 0.874, this model 0.884 in-sample / 0.871 10-fold cross-validated.
# At confidence >= 0.5 it passes 78% of answerable and 10% of unanswerable questions; the
# balanced-accuracy optimum is 0.485 (79% / 10%), so 0.5 is a sound escalation threshold.
# Re-checked with 448-token chunks (bench/retrieval_variants.py --confidence 448/32): these
# coefficients reach AUC 0.878 there, a re-fit 0.879 in-sample / 0.868 cross-validated, so they
# were kept, and with them the operating point SUPPORT_RETRIEVAL_MIN_CONFIDENCE was chosen for.
# Coverage over the question's content words only (coverage="content_terms", re-fitted on the
# dev dialogues, bench/coverage_fit.py) was measured against this and not shipped: answerable vs
# withheld-page AUC 0.567 against 0.588 (5-fold CV by dialogue), and no fewer answerable test
# questions declined (docs/generation.md, "Content-word coverage").
DEFAULT_CONFIDENCE: Final = ConfidenceModel(intercept=-5.988, w_dense=3.889, w_lexical=5.747)


@dataclass(frozen=True, slots=True)
class HybridHit:
    chunk_id: int
    rank: int  # 1-based, after fusion
    score: float  # fused score (what the ranking uses)
    dense_score: float  # cosine similarity to the query
    lexical_score: float  # raw BM25 (0.0 when no term matched or no lexical index)
    dense_rank: int | None  # rank among the dense candidates, None if not among them
    lexical_rank: int | None  # rank among the lexical candidates, None if not among them


@dataclass(frozen=True, slots=True)
class HybridResult:
    hits: tuple[HybridHit, ...]
    confidence: float
    top_cosine: float
    lexical_coverage: float
    index_version: int
    fusion: FusionConfig
    # The query's embedding and the question memory of the version searched (also when the
    # ranking left it out): what answer memory matches the query against, without embedding
    # it again (support.learning.answer_memory).
    query_vector: NDArray[np.float32] | None = field(default=None, compare=False, repr=False)
    memory: QuestionMemory | None = field(default=None, compare=False, repr=False)
    # The chunk ids the chunks' own texts rank first (the fusion without question-memory
    # keys; the same as `hits` when no key scored): answer memory's evidence that the knowledge
    # base, not the key itself, points at a chunk.
    own_ranking: tuple[int, ...] = field(default=(), compare=False, repr=False)
    # The query words the index lacks and the knowledge-base terms that stood in for them
    # (support.search.bridge): extra BM25 terms here, extra fact words in the answer stage.
    bridged: tuple[Expansion, ...] = ()


def fuse(
    dense: Sequence[DenseHit],
    lexical: Sequence[LexicalHit],
    *,
    dense_scores: dict[int, float],
    lexical_scores: dict[int, float],
    k: int,
    config: FusionConfig = DEFAULT_FUSION,
    opening: Callable[[Sequence[int]], NDArray[np.bool_]] | None = None,
    memory: dict[int, float] | None = None,
) -> list[HybridHit]:
    """Fuse two candidate lists; `*_scores` must hold both scores for every candidate id.

    `opening` tells which candidate ids open their document (they get `opening_boost`);
    `memory` holds the best question-memory key score of chunks (candidates too, then)."""
    dense_rank = {h.chunk_id: h.rank for h in dense}
    lexical_rank = {h.chunk_id: h.rank for h in lexical}
    ids = list(dict.fromkeys([*dense_rank, *lexical_rank, *(memory or {})]))
    if not ids:
        return []
    w = config.dense_weight
    fused: dict[int, float] = {}
    if config.method == "rrf":
        for cid in ids:
            score = 0.0
            if (r := dense_rank.get(cid)) is not None:
                score += w / (config.rrf_k + r)
            if (r := lexical_rank.get(cid)) is not None:
                score += (1.0 - w) / (config.rrf_k + r)
            fused[cid] = score
    else:
        top_lexical = max(lexical_scores.get(cid, 0.0) for cid in ids)
        scale = 1.0 / top_lexical if top_lexical > 0 else 0.0
        for cid in ids:
            fused[cid] = w * dense_scores[cid] + (1.0 - w) * lexical_scores.get(cid, 0.0) * scale
        if opening is not None and config.opening_boost:
            for cid, opens in zip(ids, opening(ids).tolist(), strict=True):
                if opens:
                    fused[cid] += config.opening_boost
    if memory and config.memory_weight > 0:
        for cid, key_score in memory.items():
            fused[cid] = max(fused[cid], config.memory_weight * key_score)
    # Deterministic order: fused score, then dense score, then id.
    ordered = sorted(ids, key=lambda cid: (-fused[cid], -dense_scores.get(cid, 0.0), cid))[:k]
    return [
        HybridHit(
            chunk_id=cid,
            rank=rank,
            score=fused[cid],
            dense_score=dense_scores[cid],
            lexical_score=lexical_scores.get(cid, 0.0),
            dense_rank=dense_rank.get(cid),
            lexical_rank=lexical_rank.get(cid),
        )
        for rank, cid in enumerate(ordered, start=1)
    ]


def lexical_coverage(
    lexical: Bm25Index,
    query: str,
    top_score: float,
    *,
    stand_ins: dict[str, tuple[str, float]] | None = None,
) -> float:
    """Best BM25 score as a fraction of the score of a chunk matching every query term
    (`stand_ins`: see Bm25Index.max_score)."""
    ceiling = lexical.max_score(query, stand_ins=stand_ins)
    return min(1.0, top_score / ceiling) if ceiling > 0 else 0.0


# Words of a question's phrasing rather than of its subject: they say nothing about whether
# the knowledge base covers it, yet a BM25 term the index lacks counts at the highest IDF in the
# coverage ceiling, so "how much is the fee if I pay late?" looked uncovered. Only the coverage
# drops them; BM25 ranking keeps them (SEARCH_STOPWORDS keeps "how", "when", "can" on purpose).
# Negations stay (ANSWER_STOPWORDS keeps them), and so do the particles and prepositions of
# ANSWER_STOPWORDS: "cut off", "set up", "after cancelling" say what is asked.
_RELATION_WORDS: Final = frozenset(
    """above after again against before below between down during further off once out over
    through under until up""".split()  # noqa: SIM905
)
COVERAGE_STOPWORDS: Final = ((ANSWER_STOPWORDS | SEARCH_STOPWORDS) - _RELATION_WORDS) | frozenset(
    """happen happens happened happening go goes going anything something anyone someone
    anybody somebody way ways thing things still ever really actually exactly whether next
    kind sort""".split()  # noqa: SIM905
)


def content_query(lexical: Bm25Index, query: str) -> str:
    """The query's content words, for the coverage: phrasing words (COVERAGE_STOPWORDS) left
    out, and a hyphenated or joined compound the index lacks replaced by its parts when one of
    them is known ("mid-contract" -> "mid contract": the compound itself adds nothing the
    parts do not, but unseen it would count at the highest IDF). Empty when nothing is left."""
    kept: list[str] = []
    for match in TOKEN_RE.finditer(query.lower()):
        token = match.group()
        if token.isalnum():
            if token not in COVERAGE_STOPWORDS:
                kept.append(token)
            continue
        parts = [p for p in SPLIT_RE.split(token) if p and p not in COVERAGE_STOPWORDS]
        if not lexical.has_term(token) and any(lexical.has_term(p) for p in parts):
            kept.extend(parts)
        else:
            kept.append(token)
    return " ".join(kept)


def content_coverage(
    lexical: Bm25Index,
    query: str,
    *,
    allow: NDArray[np.int64] | None = None,
    deny: NDArray[np.int64] | None = None,
    extra: dict[str, float] | None = None,
    stand_ins: dict[str, tuple[str, float]] | None = None,
) -> float:
    """`lexical_coverage` over the query's content words (`content_query`): the best score
    of an allowed chunk for those words against a chunk matching all of them. A query with no
    content word left falls back to all of its terms."""
    text = content_query(lexical, query) or query
    hits = lexical.top_k(lexical.score_all(text, extra=extra), 1, allow_ids=allow, deny_ids=deny)
    return lexical_coverage(lexical, text, hits[0].score, stand_ins=stand_ins) if hits else 0.0


def hybrid_search(
    snapshot: IndexSnapshot,
    query_vector: NDArray[np.float32],
    query_text: str,
    *,
    k: int = 10,
    allow_ids: Iterable[int] | None = None,
    deny_ids: Iterable[int] | None = None,
    fusion: FusionConfig = DEFAULT_FUSION,
    confidence: ConfidenceModel = DEFAULT_CONFIDENCE,
    memory: QuestionMemory | Literal[False] | None = None,
    bridged: Sequence[Expansion] = (),
) -> HybridResult:
    """Fused top-`k` from one snapshot (dense and lexical of the same version).

    The snapshot's question memory is used unless `memory` is False (another memory may be
    given instead: benchmarks). `bridged` (the snapshot's bridge's expansions of the query)
    adds knowledge-base terms to the BM25 query, each with its weight."""
    allow = None if allow_ids is None else np.fromiter(allow_ids, dtype=np.int64)
    deny = None if deny_ids is None else np.fromiter(deny_ids, dtype=np.int64)
    n = max(fusion.candidates, k)
    dense = snapshot.search(query_vector, n, allow_ids=allow, deny_ids=deny)
    dense_scores = {h.chunk_id: h.score for h in dense}
    keys = snapshot.memory if memory is None else (memory or None)
    memory_scores = _memory_scores(
        keys, query_vector, query_text, fusion=fusion, allow=allow, deny=deny, snapshot=snapshot
    )
    lexical_hits: list[LexicalHit] = []
    lexical_scores: dict[int, float] = {}
    coverage = 0.0
    bm25 = snapshot.lexical
    if bm25 is not None:
        extra: dict[str, float] = {}
        for e in bridged:
            extra[e.term] = max(extra.get(e.term, 0.0), e.weight)
        all_scores = bm25.score_all(query_text, extra=extra)
        lexical_hits = bm25.top_k(all_scores, n, allow_ids=allow, deny_ids=deny)
        lexical_scores = {h.chunk_id: h.score for h in lexical_hits}
        missing_lexical = np.fromiter(
            (
                cid
                for cid in dict.fromkeys([*dense_scores, *memory_scores])
                if cid not in lexical_scores
            ),
            dtype=np.int64,
        )
        if len(missing_lexical):
            pos = bm25.positions(missing_lexical)
            values = np.where(pos >= 0, all_scores[np.maximum(pos, 0)], 0.0)
            lexical_scores.update(zip(missing_lexical.tolist(), values.tolist(), strict=True))
        if lexical_hits and confidence.coverage == "content_terms":
            coverage = content_coverage(
                bm25,
                query_text,
                allow=allow,
                deny=deny,
                extra=extra,
                stand_ins=_stand_ins(bridged),
            )
        elif lexical_hits:
            coverage = lexical_coverage(
                bm25, query_text, lexical_hits[0].score, stand_ins=_stand_ins(bridged)
            )
    missing_dense = [
        cid
        for cid in dict.fromkeys([*(h.chunk_id for h in lexical_hits), *memory_scores])
        if cid not in dense_scores
    ]
    if missing_dense:
        sims = snapshot.scores(query_vector, missing_dense)
        dense_scores.update(zip(missing_dense, sims.tolist(), strict=True))
    hits = fuse(
        dense,
        lexical_hits,
        dense_scores=dense_scores,
        lexical_scores=lexical_scores,
        k=k,
        config=fusion,
        opening=snapshot.opens_document if snapshot.opening is not None else None,
        memory=memory_scores,
    )
    own = hits
    if memory_scores:
        own = fuse(
            dense,
            lexical_hits,
            dense_scores=dense_scores,
            lexical_scores=lexical_scores,
            k=k,
            config=fusion,
            opening=snapshot.opens_document if snapshot.opening is not None else None,
        )
    # From the chunks' own texts (the best of all allowed chunks), never from a key: see the
    # module docstring.
    top_cosine = dense[0].score if dense else 0.0
    return HybridResult(
        hits=tuple(hits),
        confidence=confidence(top_cosine, coverage) if hits else 0.0,
        top_cosine=top_cosine,
        lexical_coverage=coverage,
        index_version=snapshot.version,
        fusion=fusion,
        query_vector=np.asarray(query_vector, dtype=np.float32).reshape(-1),
        memory=keys if keys is not None else snapshot.memory,
        own_ranking=tuple(h.chunk_id for h in own),
        bridged=tuple(bridged) if bm25 is not None else (),
    )


def _stand_ins(bridged: Sequence[Expansion]) -> dict[str, tuple[str, float]] | None:
    """A substituting bridge's best expansion of each query word (the ceiling of coverage
    counts it instead of the word: support.search.bridge)."""
    out: dict[str, tuple[str, float]] = {}
    for e in bridged:
        if e.substitute and e.word not in out:
            out[e.word] = (e.term, e.weight)
    return out or None


def _memory_scores(
    memory: QuestionMemory | None,
    query_vector: NDArray[np.float32],
    query_text: str,
    *,
    fusion: FusionConfig,
    allow: NDArray[np.int64] | None,
    deny: NDArray[np.int64] | None,
    snapshot: IndexSnapshot,
) -> dict[int, float]:
    """The best key score of each chunk the memory names for the query, restricted to the
    chunks this search may return (allowed, not denied, in this snapshot)."""
    if memory is None or fusion.memory_weight <= 0 or fusion.method != "convex" or not len(memory):
        return {}
    scores = memory.chunk_scores(
        query_vector,
        query_text,
        top_keys=fusion.memory_keys,
        min_score=fusion.memory_min_score,
    )
    if not scores:
        return {}
    ids = np.fromiter(scores, dtype=np.int64, count=len(scores))
    keep = snapshot.contains(ids)
    if allow is not None:
        keep &= np.isin(ids, allow)
    if deny is not None and len(deny):
        keep &= ~np.isin(ids, deny)
    return {int(cid): scores[int(cid)] for cid in ids[keep]}


class HybridSearcher:
    """Query text in, fused hits out: embeds the query and searches the reader's newest
    snapshot. Thread-safe; the embedder and reader load their resources lazily.

    `embedder_for`, when given, picks the embedder for the snapshot searched (the model that
    embedded that index version, see support.search.retrievers); else `embedder` is used."""

    def __init__(
        self,
        reader: IndexReader,
        embedder: Embedder,
        *,
        fusion: FusionConfig = DEFAULT_FUSION,
        confidence: ConfidenceModel = DEFAULT_CONFIDENCE,
        embedder_for: Callable[[IndexManifest], Embedder] | None = None,
        bridge: BridgeConfig = DEFAULT_BRIDGE,
    ) -> None:
        self.reader = reader
        self.bridge = bridge
        self.embedder = embedder
        self.embedder_for = embedder_for
        self.fusion = fusion
        self.confidence = confidence

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        allow_ids: Iterable[int] | None = None,
        deny_ids: Iterable[int] | None = None,
        memory: bool = True,
        snapshot: IndexSnapshot | None = None,
        embedder: Embedder | None = None,
    ) -> HybridResult:
        """Top `k` chunks for `query`; ids outside `allow_ids` or in `deny_ids` never appear.
        `memory=False` searches the chunks' own texts only (no question memory).

        `snapshot` searches that version instead of the reader's newest (a staged version the
        gate evaluates), `embedder` embeds the query instead of the searcher's own (the model
        that version's vectors were made with); without it `embedder_for` picks it from the
        version's manifest."""
        pick = self.embedder_for
        if embedder is None and pick is None:
            # Embedding first warms the model even before the first index exists.
            chosen = self.embedder
            vector = chosen.encode_query(query)
            snapshot = snapshot if snapshot is not None else self.reader.snapshot()
        else:
            snapshot = snapshot if snapshot is not None else self.reader.snapshot()
            chosen = embedder if embedder is not None else pick(snapshot.manifest)  # type: ignore[misc]
            vector = chosen.encode_query(query)
        bridged: tuple[Expansion, ...] = ()
        if snapshot.bridge is not None and snapshot.lexical is not None:
            # The vocabulary was embedded with the model of this version, as `chosen` is.
            bridged = snapshot.bridge.expand(snapshot.lexical, query, chosen.encode, self.bridge)
        return hybrid_search(
            snapshot,
            vector,
            query,
            k=k,
            allow_ids=allow_ids,
            deny_ids=deny_ids,
            fusion=self.fusion,
            confidence=self.confidence,
            memory=None if memory else False,
            bridged=bridged,
        )
