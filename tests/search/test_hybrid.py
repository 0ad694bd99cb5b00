from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from support.search.hybrid import (
    DEFAULT_CONFIDENCE,
    ConfidenceModel,
    FusionConfig,
    HybridSearcher,
    content_coverage,
    content_query,
    fuse,
    hybrid_search,
    lexical_coverage,
)
from support.search.index import DenseHit, IndexReader, build
from support.search.lexical import Bm25Index, LexicalHit

from .conftest import FakeEmbedder


@pytest.fixture
def searcher(tmp_path: Path, corpus: dict[int, str], fake_embedder: FakeEmbedder) -> HybridSearcher:
    texts = list(corpus.values())
    build(tmp_path, list(corpus), fake_embedder.encode(texts), texts=texts)
    return HybridSearcher(IndexReader(tmp_path), fake_embedder)


def test_hits_carry_both_scores_and_ranks(searcher: HybridSearcher) -> None:
    result = searcher.search("card declined with ERR-4032", k=5)

    assert result.index_version == 1
    assert result.hits[0].chunk_id == 102
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    top = result.hits[0]
    assert top.dense_score > 0 and top.lexical_score > 0
    assert top.dense_rank is not None and top.lexical_rank is not None
    assert all(a.score >= b.score for a, b in zip(result.hits, result.hits[1:], strict=False))
    assert 0.0 <= result.confidence <= 1.0
    # Every hit has an exact dense cosine, even those only the lexical side proposed.
    expected = searcher.embedder.encode(["card declined with ERR-4032"])[0]
    snap = searcher.reader.snapshot()
    for hit in result.hits:
        assert hit.dense_score == pytest.approx(
            float(snap.vectors([hit.chunk_id])[0] @ expected), abs=1e-5
        )


def test_exact_code_wins_over_near_miss_in_hybrid(searcher: HybridSearcher) -> None:
    hits = searcher.search("ERR-4033", k=3).hits
    assert hits[0].chunk_id == 103
    assert hits[0].lexical_score > next(h.lexical_score for h in hits if h.chunk_id == 102)


def test_disabled_chunks_never_returned(searcher: HybridSearcher) -> None:
    result = searcher.search("card declined with ERR-4032", k=8, deny_ids=[102, 103])
    assert {102, 103}.isdisjoint(h.chunk_id for h in result.hits)
    only = searcher.search("refund", k=8, allow_ids=[101, 108])
    assert {h.chunk_id for h in only.hits} <= {101, 108}


def test_rrf_and_convex_fusion() -> None:
    dense = [DenseHit(1, 0.9, 1), DenseHit(2, 0.8, 2)]
    lexical = [LexicalHit(2, 12.0, 1), LexicalHit(3, 6.0, 2)]
    dense_scores = {1: 0.9, 2: 0.8, 3: 0.1}
    lexical_scores = {1: 0.0, 2: 12.0, 3: 6.0}

    rrf = fuse(
        dense,
        lexical,
        dense_scores=dense_scores,
        lexical_scores=lexical_scores,
        k=3,
        config=FusionConfig(method="rrf", dense_weight=0.5),
    )
    convex = fuse(
        dense,
        lexical,
        dense_scores=dense_scores,
        lexical_scores=lexical_scores,
        k=3,
        config=FusionConfig(method="convex", dense_weight=0.5),
    )

    assert [h.chunk_id for h in rrf] == [2, 1, 3]
    assert [h.chunk_id for h in convex] == [2, 1, 3]
    assert convex[0].score == pytest.approx(0.5 * 0.8 + 0.5 * 1.0)
    assert convex[2].dense_rank is None and convex[2].lexical_rank == 2
    dense_only = fuse(
        dense,
        lexical,
        dense_scores=dense_scores,
        lexical_scores=lexical_scores,
        k=3,
        config=FusionConfig(dense_weight=1.0),
    )
    assert [h.chunk_id for h in dense_only] == [1, 2, 3]


def test_dense_only_snapshot_without_lexical_index(
    tmp_path: Path, corpus: dict[int, str], fake_embedder: FakeEmbedder
) -> None:
    texts = list(corpus.values())
    build(tmp_path, list(corpus), fake_embedder.encode(texts))
    snap = IndexReader(tmp_path).snapshot()
    result = hybrid_search(snap, fake_embedder.encode_query("refund policy"), "refund policy")
    assert result.hits[0].chunk_id == 106
    assert all(h.lexical_score == 0.0 and h.lexical_rank is None for h in result.hits)


@pytest.mark.parametrize("coverage", [0.0, 0.4, 1.0])
def test_confidence_is_monotone_in_top_score(coverage: float) -> None:
    values = [DEFAULT_CONFIDENCE(s, coverage) for s in np.linspace(-1.0, 1.0, 41)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert values[-1] > values[0]


def test_confidence_is_monotone_in_lexical_coverage() -> None:
    values = [DEFAULT_CONFIDENCE(0.5, c) for c in np.linspace(0.0, 1.0, 11)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    assert DEFAULT_CONFIDENCE.w_dense >= 0 and DEFAULT_CONFIDENCE.w_lexical >= 0


def test_confidence_ranks_on_topic_above_off_topic(searcher: HybridSearcher) -> None:
    model = ConfidenceModel(intercept=-3.0, w_dense=4.0, w_lexical=4.0)
    searcher.confidence = model
    on_topic = searcher.search("refund policy days", k=3)
    off_topic = searcher.search("quantum teleporter warranty", k=3)
    assert on_topic.confidence > off_topic.confidence


def test_opening_chunk_prior_breaks_near_ties_only(
    tmp_path: Path, corpus: dict[int, str], fake_embedder: FakeEmbedder
) -> None:
    texts = list(corpus.values())
    vectors = fake_embedder.encode(texts)
    query = "card declined with ERR-4032"
    plain_dir, marked_dir = tmp_path / "plain", tmp_path / "marked"
    build(plain_dir, list(corpus), vectors, texts=texts)
    plain = IndexReader(plain_dir).snapshot()
    assert plain.opening is None
    qv = fake_embedder.encode([query])[0]
    base = hybrid_search(plain, qv, query, k=8).hits
    runner_up = base[1]
    build(marked_dir, list(corpus), vectors, texts=texts, opening_ids=[runner_up.chunk_id])
    marked = IndexReader(marked_dir).snapshot()
    assert marked.opens_document([runner_up.chunk_id, base[0].chunk_id]).tolist() == [True, False]
    gap = base[0].score - runner_up.score
    small = hybrid_search(marked, qv, query, k=8, fusion=FusionConfig(opening_boost=gap / 2)).hits
    assert [h.chunk_id for h in small[:2]] == [base[0].chunk_id, runner_up.chunk_id]
    assert small[1].score == pytest.approx(runner_up.score + gap / 2)
    lifted = hybrid_search(marked, qv, query, k=8, fusion=FusionConfig(opening_boost=gap * 2)).hits
    assert lifted[0].chunk_id == runner_up.chunk_id
    off = hybrid_search(marked, qv, query, k=8, fusion=FusionConfig(opening_boost=0.0)).hits
    assert [h.chunk_id for h in off] == [h.chunk_id for h in base]


def test_opening_ids_must_be_indexed_chunks(tmp_path: Path) -> None:
    vectors = np.eye(2, dtype=np.float32)
    with pytest.raises(ValueError, match="subset"):
        build(tmp_path, [1, 2], vectors, opening_ids=[3])


# --- coverage over the question's content words -----------------------------------------------
_BILLING = {
    1: "Late payment fee: a fee of 5 EUR is added when a bill is paid after its due date.",
    2: "Changing your plan: you can downgrade your contract at the end of a billing period.",
    3: "Refunds are paid within 14 days of the request.",
    4: "Wi-Fi: place the router upstairs for a stronger signal.",
}


@pytest.fixture
def billing_bm25() -> Bm25Index:
    return Bm25Index.build(list(_BILLING), list(_BILLING.values()))


def test_content_query_drops_phrasing_words_only(billing_bm25: Bm25Index) -> None:
    assert content_query(billing_bm25, "How much is the fee if I pay late?") == "fee pay late"
    # Negations are content: dropping one would make a question its opposite.
    assert content_query(billing_bm25, "can I not pay the fee") == "not pay fee"
    assert content_query(billing_bm25, "how can I get it?") == ""
    # Particles say what is asked: "cut off" is not "cut".
    assert content_query(billing_bm25, "Will you cut off my service?") == "cut off service"


def test_unseen_compound_counts_by_its_known_parts(billing_bm25: Bm25Index) -> None:
    assert content_query(billing_bm25, "downgrade mid-contract") == "downgrade mid contract"
    # A compound the index holds stays whole; one with no known part stays too (it is what
    # makes a question about something else look uncovered).
    assert content_query(billing_bm25, "wi-fi upstairs") == "wi-fi upstairs"
    assert content_query(billing_bm25, "error ZX-9001") == "error zx-9001"


def test_content_coverage_ignores_phrasing_words(billing_bm25: Bm25Index) -> None:
    top = billing_bm25.search("How much is the fee if I pay late?", 1)[0]
    assert top.chunk_id == 1
    all_terms = lexical_coverage(billing_bm25, "How much is the fee if I pay late?", top.score)
    content = content_coverage(billing_bm25, "How much is the fee if I pay late?")
    assert content > all_terms
    assert content == pytest.approx(
        lexical_coverage(
            billing_bm25, "fee pay late", billing_bm25.search("fee pay late", 1)[0].score
        )
    )
    compound = content_coverage(billing_bm25, "can I downgrade my plan mid-contract")
    assert compound > lexical_coverage(
        billing_bm25,
        "can I downgrade my plan mid-contract",
        billing_bm25.search("can I downgrade my plan mid-contract", 1)[0].score,
    )


def test_content_coverage_stays_low_off_topic(billing_bm25: Bm25Index) -> None:
    assert content_coverage(billing_bm25, "What is the capital of France?") == 0.0
    # Only allowed chunks count: with the fee chunk denied nothing matches "late".
    deny = np.asarray([1], dtype=np.int64)
    assert content_coverage(billing_bm25, "late fee", deny=deny) < content_coverage(
        billing_bm25, "late fee"
    )


def test_search_uses_the_models_coverage(searcher: HybridSearcher) -> None:
    query = "how much does the refund policy take in days"
    searcher.confidence = ConfidenceModel(-3.0, 4.0, 4.0, coverage="all_terms")
    all_terms = searcher.search(query, k=3)
    searcher.confidence = ConfidenceModel(-3.0, 4.0, 4.0, coverage="content_terms")
    content = searcher.search(query, k=3)
    assert [h.chunk_id for h in content.hits] == [h.chunk_id for h in all_terms.hits]
    assert content.lexical_coverage > all_terms.lexical_coverage
    assert content.confidence > all_terms.confidence
