"""Grounding: which knowledge-base chunks support an example's answer.

In order of trust:

1. the chunks the answer cited (a bot answer's citations, an agent reply with citations);
2. with a document named (an import's `document`), that document's best-supporting chunk;
3. else inferred from the answer text: the knowledge base is searched with the answer, and
   the candidates whose support score reaches GROUNDING_MIN_SUPPORT ground it (the best one,
   plus up to MAX_CHUNKS - 1 more within GROUNDING_MARGIN of it). The score and threshold were
   chosen on the doc2dial dev dialogues by bench/grounding_fit.py (docs/learning.md).
4. nothing reaches the threshold: a **knowledge gap** (no grounding).

Chunks are named by a key that survives re-ingestion (see support.models_learning):
`groundings_relink` re-points the rows of a document after its chunks were replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from django.db.models import Q

from ..answers.words import content_words, strip_citations
from ..backends import get_index_reader, get_retrieval_embedder
from ..models import Chunk, KnowledgeDocument
from ..models_learning import Example, ExampleGrounding
from ..retrieval import passages_search
from ..search.index import IndexNotReady

# Fitted by bench/grounding_fit.py on the doc2dial dev dialogues (docs/learning.md): the dense
# weight and threshold with the best Youden's J on dev (0.267; test 0.268: 52 % of answerable
# replies grounded on the span's chunk, 12 % on another, 36 % gaps; 25 % of replies whose pages
# were withheld still grounded). Lower thresholds ground more replies but more of them wrongly.
GROUNDING_MIN_SUPPORT: Final = 0.71
GROUNDING_MARGIN: Final = 0.05
MAX_CHUNKS: Final = 3
# Candidates searched for an inferred grounding.
CANDIDATES: Final = 10
# Weight of the dense cosine in the support score; the rest is the share of the answer's
# content words the chunk holds.
DENSE_WEIGHT: Final = 0.5
# A re-ingested chunk at the old position that holds this share of the old text's content
# words is taken as the same chunk, edited.
RELINK_MIN: Final = 0.8

Method = Example.GroundingMethod


def chunk_key(text: str) -> str:
    """The identity of a chunk's content: SHA-256 of its whitespace-normalised, case-folded
    text. Equal for the same text after re-ingestion and in any index version."""
    normal = " ".join(text.split()).casefold()
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Candidate:
    """A chunk considered for the grounding of an answer, with what its score is made of."""

    chunk_id: int
    document_id: int
    order: int
    text: str
    dense: float  # cosine of the answer's and the chunk's embeddings
    words: float  # share of the answer's content words found in the chunk
    rank: int  # in the search for the answer (1 = best)

    @property
    def score(self) -> float:
        return support_score(dense=self.dense, words=self.words)


def support_score(*, dense: float, words: float) -> float:
    """How well a chunk supports an answer (0..1)."""
    return DENSE_WEIGHT * max(0.0, dense) + (1.0 - DENSE_WEIGHT) * words


@dataclass(frozen=True, slots=True)
class Chosen:
    chunk_id: int
    document_id: int
    order: int
    text: str
    score: float | None


@dataclass(frozen=True, slots=True)
class Grounding:
    method: str  # Example.GroundingMethod
    chunks: tuple[Chosen, ...]

    @property
    def knowledge_gap(self) -> bool:
        return not self.chunks


NO_GROUNDING: Final = Grounding(Method.NONE, ())


def _word_share(answer_words: Sequence[str], text: str) -> float:
    if not answer_words:
        return 0.0
    vocab = set(content_words(text))
    return sum(w in vocab for w in answer_words) / len(answer_words)


def _chunk_vectors(chunks: Sequence[Chunk], dimension: int) -> np.ndarray[Any, Any] | None:
    blobs = [c.embedding for c in chunks]
    if not blobs or any(b is None for b in blobs):
        return None
    matrix = np.frombuffer(b"".join(bytes(b) for b in blobs if b is not None), dtype="<f4")
    if matrix.size != len(blobs) * dimension:
        return None  # embedded by another model than the one loaded now
    return matrix.reshape(len(blobs), dimension)


def grounding_candidates(
    *,
    answer: str,
    document_id: int | None = None,
    k: int = CANDIDATES,
    exclude_document_ids: Collection[int] = (),
) -> list[Candidate]:
    """Chunks that may support `answer`, best first by support score: the search results for
    the answer text, or with `document_id` every chunk of that document."""
    body = strip_citations(answer)
    words = content_words(body)
    if not words:
        return []
    if document_id is not None:
        embedder = get_retrieval_embedder()
        vector = np.asarray(embedder.encode_query(body), dtype=np.float32).reshape(-1)
        chunks = list(
            Chunk.objects.filter(
                document_id=document_id, document__status=KnowledgeDocument.Status.READY
            ).order_by("order")
        )
        if not chunks:
            return []
        matrix = _chunk_vectors(chunks, vector.shape[0])
        if matrix is None:
            dense = np.asarray(embedder.encode([c.text for c in chunks]), dtype=np.float32) @ vector
        else:
            dense = matrix @ vector
        found = [
            Candidate(c.pk, c.document_id, c.order, c.text, float(d), _word_share(words, c.text), 0)
            for c, d in zip(chunks, dense.tolist(), strict=True)
        ]
    else:
        try:
            get_index_reader().snapshot()
        except IndexNotReady:
            return []  # nothing indexed yet: no model to load, nothing to support the answer
        # The knowledge base's own texts: what examples taught must not ground new examples.
        result = passages_search(
            query=body, k=k, exclude_document_ids=exclude_document_ids, memory=False
        )
        orders = dict(
            Chunk.objects.filter(pk__in=[p.chunk_id for p in result.passages]).values_list(
                "pk", "order"
            )
        )
        found = [
            Candidate(
                p.chunk_id,
                p.document_id,
                orders.get(p.chunk_id, 0),
                p.text,
                p.dense_score,
                _word_share(words, p.text),
                p.rank,
            )
            for p in result.passages
        ]
    found.sort(key=lambda c: (-c.score, c.rank, c.chunk_id))
    return found


def grounding_select(
    candidates: Sequence[Candidate],
    *,
    min_support: float = GROUNDING_MIN_SUPPORT,
    margin: float = GROUNDING_MARGIN,
    max_chunks: int = MAX_CHUNKS,
) -> tuple[Candidate, ...]:
    """The best candidate when it reaches `min_support`, with the next ones within `margin`
    of it (at most `max_chunks`); empty when none reaches it."""
    ranked = sorted(candidates, key=lambda c: (-c.score, c.rank, c.chunk_id))
    if not ranked or ranked[0].score < min_support:
        return ()
    best = ranked[0].score
    return tuple(c for c in ranked[:max_chunks] if c.score >= max(min_support, best - margin))


def _chosen(c: Candidate) -> Chosen:
    return Chosen(c.chunk_id, c.document_id, c.order, c.text, round(c.score, 4))


def grounding_from_citations(citations: Iterable[Mapping[str, Any]]) -> Grounding:
    """The cited chunks that still exist (an answer's stored citations); NO_GROUNDING if none."""
    ids = list(
        dict.fromkeys(
            int(c["chunk_id"])
            for c in citations
            if isinstance(c, Mapping) and str(c.get("chunk_id", "")).isdigit()
        )
    )
    if not ids:
        return NO_GROUNDING
    chunks = {
        c.pk: c
        for c in Chunk.objects.filter(pk__in=ids).exclude(
            document__status=KnowledgeDocument.Status.DISABLED
        )
    }
    chosen = tuple(
        Chosen(c.pk, c.document_id, c.order, c.text, None)
        for c in (chunks.get(i) for i in ids)
        if c is not None
    )
    return Grounding(Method.CITED, chosen[:MAX_CHUNKS]) if chosen else NO_GROUNDING


def document_find(name: str) -> KnowledgeDocument | None:
    """The knowledge-base document an import's `document` names: its file name or its title
    (case-insensitive); a ready document first, and never a disabled one."""
    name = name.strip()
    if not name:
        return None
    named = KnowledgeDocument.objects.filter(
        Q(original_filename__iexact=name) | Q(title__iexact=name)
    ).exclude(status=KnowledgeDocument.Status.DISABLED)
    ready = named.filter(status=KnowledgeDocument.Status.READY)
    return ready.order_by("-pk").first() or named.order_by("-pk").first()


def grounding_choose(
    *,
    answer: str,
    citations: Iterable[Mapping[str, Any]] = (),
    document_id: int | None = None,
) -> Grounding:
    """The grounding of an answer: its citations, else the named document's best chunk, else
    inferred from the knowledge base; NO_GROUNDING (a knowledge gap) when nothing supports it."""
    cited = grounding_from_citations(citations)
    if cited.chunks:
        return cited
    if document_id is not None:
        # The answer is known to come from this document: its best chunk grounds it, even
        # below the threshold (the threshold guards against a wrong document, not a paraphrase).
        candidates = grounding_candidates(answer=answer, document_id=document_id)
        if candidates:
            top = candidates[0]
            picked = grounding_select(candidates, min_support=0.0) or (top,)
            return Grounding(Method.DOCUMENT, tuple(_chosen(c) for c in picked))
    picked = grounding_select(grounding_candidates(answer=answer))
    if not picked:
        return NO_GROUNDING
    return Grounding(Method.INFERRED, tuple(_chosen(c) for c in picked))


def grounding_store(example: Example, grounding: Grounding) -> list[ExampleGrounding]:
    """Replace the example's grounding rows with `grounding` (the caller holds a transaction)."""
    ExampleGrounding.objects.filter(example=example).delete()
    rows = [
        ExampleGrounding(
            example=example,
            document_id=c.document_id,
            chunk_id=c.chunk_id,
            chunk_key=chunk_key(c.text),
            chunk_order=c.order,
            text=c.text,
            score=c.score,
            method=grounding.method,
            rank=rank,
        )
        for rank, c in enumerate(_unique(grounding.chunks), start=1)
    ]
    return ExampleGrounding.objects.bulk_create(rows)


def _unique(chunks: Iterable[Chosen]) -> list[Chosen]:
    seen: set[tuple[int, str]] = set()
    out = []
    for c in chunks:
        key = (c.document_id, chunk_key(c.text))
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def groundings_relink(*, document_id: int) -> int:
    """Point the grounding rows of a document at its current chunks (after re-ingestion): the
    chunk with the same text, else the one at the same position if it still holds most of the
    old text's words (the row then takes the new text); rows with neither keep `chunk` NULL.
    Call inside the transaction that replaced the chunks. Returns the rows changed."""
    rows = list(ExampleGrounding.objects.filter(document_id=document_id).order_by("pk"))
    if not rows:
        return 0
    chunks = list(Chunk.objects.filter(document_id=document_id).only("pk", "order", "text"))
    by_key = {chunk_key(c.text): c for c in chunks}
    by_order = {c.order: c for c in chunks}
    keys = {(r.example_id, r.chunk_key) for r in rows}
    changed: list[ExampleGrounding] = []
    dropped: list[int] = []
    for row in rows:
        target = by_key.get(row.chunk_key)
        if target is None:
            near = by_order.get(row.chunk_order)
            if near is not None and _word_share(content_words(row.text), near.text) >= RELINK_MIN:
                new_key = chunk_key(near.text)
                if (row.example_id, new_key) in keys:
                    dropped.append(row.pk)  # the example already holds the new text
                    continue
                keys.add((row.example_id, new_key))
                row.chunk_key, row.text = new_key, near.text
                target = near
        new_id = target.pk if target is not None else None
        if row.chunk_id != new_id or (target is not None and row.chunk_order != target.order):
            row.chunk_id = new_id
            row.chunk_order = target.order if target is not None else row.chunk_order
            changed.append(row)
    ExampleGrounding.objects.filter(pk__in=dropped).delete()
    ExampleGrounding.objects.bulk_update(changed, ["chunk", "chunk_key", "chunk_order", "text"])
    return len(changed) + len(dropped)
