"""Retrieval: query text in, passages from the knowledge base out, with a confidence."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from django.db.models import Q
from numpy.typing import NDArray

from .backends import get_index_reader, get_searcher
from .models import Chunk, KnowledgeDocument
from .search.bridge import Expansion
from .search.embedder import Embedder
from .search.index import IndexNotReady, IndexSnapshot
from .search.lexical import Bm25Index, tokenize
from .search.memory import QuestionMemory


@dataclass(frozen=True, slots=True)
class PinnedIndex:
    snapshot: IndexSnapshot
    embedder: Embedder | None = None


# Per context (a thread, a task): serving threads of the same process never see another's pin.
_pinned: ContextVar[PinnedIndex | None] = ContextVar("support_pinned_index", default=None)


@contextlib.contextmanager
def index_pinned(snapshot: IndexSnapshot, *, embedder: Embedder | None = None) -> Iterator[None]:
    """Every search in this context (passages, the BM25 vocabulary and IDFs the answer decision
    reads) uses `snapshot`, and `embedder` for queries when given, instead of the published
    index: how the gate runs the serving code against a staged version."""
    token = _pinned.set(PinnedIndex(snapshot, embedder))
    try:
        yield
    finally:
        _pinned.reset(token)


def _lexical() -> Bm25Index | None:
    pinned = _pinned.get()
    if pinned is not None:
        return pinned.snapshot.lexical
    try:
        return get_index_reader().snapshot().lexical
    except IndexNotReady:
        return None


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
    # What the confidence is computed from (support.search.hybrid.ConfidenceModel).
    top_cosine: float = 0.0
    lexical_coverage: float = 0.0
    # The query's embedding and the question memory of the version searched (answer memory
    # matches against them: support.learning.answer_memory); never serialised.
    query_vector: NDArray[np.float32] | None = field(default=None, compare=False, repr=False)
    memory: QuestionMemory | None = field(default=None, compare=False, repr=False)
    # Chunk ids as the chunks' own texts rank them, without question-memory keys (hidden
    # documents left out; support.search.hybrid.HybridResult.own_ranking; empty: as
    # `passages`).
    own_ranking: tuple[int, ...] = field(default=(), compare=False, repr=False)
    # Query words the knowledge base never uses and the terms of its own that stood in for
    # them (support.search.bridge); the answer stage counts them as weaker fact words.
    bridged: tuple[Expansion, ...] = ()


def passages_search(
    *,
    query: str,
    k: int = 5,
    exclude_document_ids: Collection[int] = (),
    memory: bool = True,
) -> SearchResult:
    """Hybrid (dense + BM25) search; disabled or deleted documents never appear, nor those in
    `exclude_document_ids` (an evaluation that withholds a page, a staged change). With
    `memory` the question memory of the index version re-ranks (docs/learning.md); without,
    only the chunks' own texts count (the grounding of an answer)."""
    started = time.perf_counter()
    hidden = Q(document__status=KnowledgeDocument.Status.DISABLED)
    if exclude_document_ids:
        hidden |= Q(document_id__in=list(exclude_document_ids))
    deny = list(Chunk.objects.filter(hidden).values_list("pk", flat=True))
    try:
        pinned = _pinned.get()
        result = get_searcher().search(
            query,
            k=k + 5,
            deny_ids=deny or None,
            memory=memory,
            snapshot=pinned.snapshot if pinned else None,
            embedder=pinned.embedder if pinned else None,
        )
    except IndexNotReady:
        return SearchResult(query, (), 0.0, None, (time.perf_counter() - started) * 1000)
    ids = [h.chunk_id for h in result.hits]
    chunks = {
        c.pk: c
        for c in Chunk.objects.filter(pk__in=ids)
        .exclude(document__status=KnowledgeDocument.Status.DISABLED)
        .select_related("document")
    }
    passages = passages_from_hits(result.hits, chunks, k)
    confidence = result.confidence if passages else 0.0
    return SearchResult(
        query,
        tuple(passages),
        confidence,
        result.index_version,
        (time.perf_counter() - started) * 1000,
        top_cosine=result.top_cosine,
        lexical_coverage=result.lexical_coverage,
        query_vector=result.query_vector,
        memory=result.memory,
        own_ranking=result.own_ranking,
        bridged=result.bridged,
    )


# Names a customer may type for a programme, product or plan: acronyms of 3-12 capitals
# ("VADIP", "TPD"). Two letters are too often shorthand ("SS" for Social Security), and codes
# with digits are mostly the customer's own (order numbers, PINs: "how do I track 7H2K?" is a
# question the knowledge base answers), so capitals inside such a code ("PIN-5522") are not
# an acronym either.
_IDENTIFIER = re.compile(r"(?<![\w/&-])[A-Z][A-Z&]{2,11}(?![\w/&-])")
# Everyday acronyms name no programme or product of a company: "My PIN is ..., how do I reset
# the router?" is a question about the router.
_EVERYDAY_ACRONYMS = frozenset(
    """ATM PIN PDF URL USB SMS MMS GPS FAQ ASAP FYI USA UK EU TV DVD CEO HR IT API APP WIFI
    LAN VPN CPU RAM SIM ETA DOB SSN ZIP POS VIP ACH IBAN BIC PST EST CST MST UTC GMT AM PM
    THE AND FOR NOT YOU HELP""".split()  # noqa: SIM905
)
# A code the customer asks about as an error or fault ("What does error E07 mean?", "my router
# shows code 37", "E07 error"): unlike an order number or a PIN, it names something the
# knowledge base must hold for an answer, and passages about other codes would only yield a
# confident answer about another code (ERR-4032 for E07).
_CODE = r"[A-Za-z]{0,6}-?\d[\w-]*(?![\w-])(?!\s+(?:times?|days?|hours?|minutes?|weeks?|months?)\b)"
_ERROR_CODE = re.compile(
    # "error E07", "fault code 12", "error message 0x80", "warning no. 5"
    rf"\b(?:error|fault|alarm|warning)(?:\s+(?:code|number|message))?\s*(?:no\.?\s*)?[:#]?\s*({_CODE})"
    # "E07 error"
    rf"|(?<![\w-])({_CODE})\s+(?:error|fault)\b"
    # "what does code 37 mean", "code 37 means?": not a zip, promo or verification code
    rf"|\b(?:what(?:'s|\s+is|\s+does)|meaning\s+of)\s+(?:the\s+|this\s+)?code\s*[:#]?\s*({_CODE})"
    rf"|\bcode\s*[:#]?\s*({_CODE})\s+mean",
    re.IGNORECASE,
)


def unknown_identifiers(text: str) -> list[str]:
    """Identifiers in `text` that no indexed chunk contains (the BM25 vocabulary).

    A question about a product name, an acronym or an error code the knowledge base never
    mentions cannot be answered from it, however close the retrieved passages look: "What does
    VADIP offer?" retrieves pages about other VA programmes. Capitals count only inside
    ordinary text: a message typed in capitals is shouting, not a list of acronyms. Codes with
    digits count only as an error or fault code ("error E07", "code 37", "E07 error"), in any
    case.
    """
    letters = [c for c in text if c.isalpha()]
    shouting = bool(letters) and sum(c.isupper() for c in letters) > 0.5 * len(letters)
    lexical = _lexical()
    if lexical is None:
        return []
    unknown = []
    for ident in dict.fromkeys(_IDENTIFIER.findall(text)):
        if shouting:
            break
        if ident in _EVERYDAY_ACRONYMS:
            continue
        terms = tokenize(ident)
        if terms and terms[0] not in lexical.vocab:
            unknown.append(ident)
    for groups in _ERROR_CODE.findall(text):
        code = next(g for g in groups if g)
        terms = tokenize(code)
        if terms and terms[0] not in lexical.vocab and code not in unknown:
            unknown.append(code)
    return unknown


def term_idfs(text: str) -> dict[str, float]:
    """The BM25 terms of `text` with their IDF in the current index; a term no chunk holds
    gets the highest IDF there is (rarer than anything the knowledge base says). Empty
    without an index."""
    lexical = _lexical()
    if lexical is None:
        return {}
    return {term: lexical.idf(term) for term in dict.fromkeys(tokenize(text))}


def known_coverage(text: str, idfs: dict[str, float] | None = None) -> float:
    """IDF-weighted share of the BM25 terms of `text` that some indexed chunk holds (1.0 with
    no terms or no index): a question whose rarest words the knowledge base never uses asks
    about something it does not cover."""
    lexical = _lexical()
    weights = term_idfs(text) if idfs is None else idfs
    total = sum(weights.values())
    if lexical is None or not total:
        return 1.0
    return sum(w for t, w in weights.items() if t in lexical.vocab) / total


def _bigrams(text: str) -> set[tuple[str, str]]:
    terms = [t for t in tokenize(text) if t.isalnum()]
    return set(pairwise(terms))


def phrase_coverage(text: str, sources: Sequence[str]) -> float:
    """Share of the adjacent term pairs of `text` ("moving house", "dental plan") that some
    source also holds as a pair (1.0 when `text` has fewer than two terms): a question whose
    words are all there but never together asks about something else."""
    wanted = _bigrams(text)
    if not wanted:
        return 1.0
    found: set[tuple[str, str]] = set()
    for source in sources:
        found |= _bigrams(source)
    return len(wanted & found) / len(wanted)


def term_coverage(text: str, source: str) -> float:
    """Share of the BM25 terms of `text` found in `source` (1.0 with no terms)."""
    wanted = set(tokenize(text))
    if not wanted:
        return 1.0
    return len(wanted & set(tokenize(source))) / len(wanted)


def idf_coverage(text: str, sources: Sequence[str], idfs: dict[str, float] | None = None) -> float:
    """IDF-weighted share of the BM25 terms of `text` found in `sources` (1.0 with no terms):
    a rare word of the question ("dental") weighs more than a common one ("benefits")."""
    weights = term_idfs(text) if idfs is None else idfs
    total = sum(weights.values())
    if not total:
        return 1.0
    found = {t for s in sources for t in tokenize(s)}
    return sum(w for t, w in weights.items() if t in found) / total


def passages_from_hits(hits: Sequence[Any], chunks: Mapping[int, Chunk], k: int) -> list[Passage]:
    """The first `k` hits whose chunk is in `chunks` (loaded with their documents), as
    passages ranked 1..k; a hit whose chunk is absent (deleted since the index version was
    built, or its document disabled) is skipped."""
    passages: list[Passage] = []
    for hit in hits:
        c = chunks.get(hit.chunk_id)
        if c is None:
            continue
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
    return passages
