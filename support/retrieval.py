"""Retrieval: query text in, passages from the knowledge base out, with a confidence."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .backends import get_searcher
from .models import Chunk, KnowledgeDocument
from .search.index import IndexNotReady


@dataclass(frozen=True, slots=True)
class Passage:
    chunk_id: int
    document_id: int
    filename: str
    title: str
    source_url: str
    heading_path: tuple[str, ...]
    page: int | None
    anchor: str
    text: str
    score: float
    dense_score: float
    lexical_score: float
    rank: int

    @property
    def heading(self) -> str:
        return " › ".join(p for p in (self.title, *self.heading_path) if p)

    def as_dict(self) -> dict[str, object]:
        return {
            "document_id": self.document_id,
            "filename": self.filename,
            "title": self.title,
            "source_url": self.source_url,
            "chunk_id": self.chunk_id,
            "heading": self.heading,
            "page": self.page,
            "score": round(self.score, 4),
            "dense_score": round(self.dense_score, 4),
            "lexical_score": round(self.lexical_score, 4),
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    passages: tuple[Passage, ...]
    confidence: float
    index_version: int | None
    elapsed_ms: float


def passages_search(*, query: str, k: int = 5) -> SearchResult:
    """Hybrid (dense + BM25) search; disabled or deleted documents never appear."""
    started = time.perf_counter()
    deny = list(
        Chunk.objects.filter(document__status=KnowledgeDocument.Status.DISABLED).values_list(
            "pk", flat=True
        )
    )
    try:
        result = get_searcher().search(query, k=k + 5, deny_ids=deny or None)
    except IndexNotReady:
        return SearchResult(query, (), 0.0, None, (time.perf_counter() - started) * 1000)
    ids = [h.chunk_id for h in result.hits]
    chunks = {
        c.pk: c
        for c in Chunk.objects.filter(pk__in=ids)
        .exclude(document__status=KnowledgeDocument.Status.DISABLED)
        .select_related("document")
    }
    passages: list[Passage] = []
    for hit in result.hits:
        c = chunks.get(hit.chunk_id)
        if c is None:
            continue  # deleted since the index version was built
        doc = c.document
        passages.append(
            Passage(
                chunk_id=c.pk,
                document_id=doc.pk,
                filename=doc.original_filename,
                title=doc.title or doc.original_filename,
                source_url=doc.source_url,
                heading_path=tuple(h for h in c.heading_path if h != doc.title),
                page=c.page,
                anchor=c.anchor,
                text=c.text,
                score=hit.score,
                dense_score=hit.dense_score,
                lexical_score=hit.lexical_score,
                rank=len(passages) + 1,
            )
        )
        if len(passages) == k:
            break
    confidence = result.confidence if passages else 0.0
    return SearchResult(
        query,
        tuple(passages),
        confidence,
        result.index_version,
        (time.perf_counter() - started) * 1000,
    )
