"""Question memory: the questions of approved examples are extra search keys of their grounding
chunks, published with an index version (docs/learning.md)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from support import backends, knowledge
from support.learning.examples import examples_review
from support.learning.grounding import chunk_key
from support.models import Chunk, Example, ExampleGrounding, KnowledgeDocument
from support.retrieval import passages_search
from support.search import index as search_index
from support.search.memory import MemoryKeys, QuestionMemory

pytestmark = pytest.mark.django_db

SHIPPING_MD = b"""# Shipping

## Delivery times

Parcels within the country arrive in two to three working days; abroad it takes a week.

## Lost parcels

If the tracking page has not changed for five days, we open an investigation with the carrier.

## Address changes

The delivery address can be changed until the parcel leaves the warehouse.
"""

# The customer's words for the error-code chunk ("Error ERR-4032 means the fibre line is
# down; we fix it remotely within 4 hours."): none of its content words.
KEY = "Why has my internet stopped working completely?"
PARAPHRASE = "my internet stopped working completely, why?"


@pytest.fixture
def kb3(kb: dict[str, KnowledgeDocument]) -> dict[str, KnowledgeDocument]:
    doc = knowledge.document_upload(filename="shipping.md", data=SHIPPING_MD, queue=False)
    knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
    knowledge.index_rebuild()
    return {d.original_filename: d for d in KnowledgeDocument.objects.all()}


def _chunk(text: str) -> Chunk:
    return Chunk.objects.get(text__contains=text)


def _example(
    question: str, chunk: Chunk, *, state: str = "approved", held_back: bool = False, n: int = 1
) -> Example:
    example = Example.objects.create(
        question=question,
        answer="We will look at the line.",
        source=Example.Source.AGENT_REPLY,
        state=state,
        reviewed_at=None if state == "pending" else "2026-12-02T10:00:00Z",
        grounding_method=Example.GroundingMethod.REVIEWER,
        split_key=f"k{n}",
        held_back=held_back,
    )
    ExampleGrounding.objects.create(
        example=example,
        document=chunk.document,
        chunk=chunk,
        chunk_key=chunk_key(chunk.text),
        chunk_order=chunk.order,
        text=chunk.text,
        method=Example.GroundingMethod.REVIEWER,
    )
    return example


def _rank(query: str, chunk: Chunk, *, memory: bool = True) -> int | None:
    result = passages_search(query=query, k=10, memory=memory)
    ids = [p.chunk_id for p in result.passages]
    return ids.index(chunk.pk) + 1 if chunk.pk in ids else None


def _ranking(query: str) -> list[tuple[int, float]]:
    return [(p.chunk_id, round(p.score, 6)) for p in passages_search(query=query, k=10).passages]


def _snapshot() -> search_index.IndexSnapshot:
    return backends.get_index_reader().snapshot()


def test_a_paraphrase_finds_the_chunk_the_plain_index_ranks_low(
    kb3: dict[str, KnowledgeDocument],
) -> None:
    target = _chunk("ERR-4032")
    plain = _rank(PARAPHRASE, target)
    assert plain is None or plain > 1
    _example(KEY, target)
    built = knowledge.index_rebuild()
    assert built.memory_keys == 1
    assert _rank(PARAPHRASE, target) == 1
    assert _rank(PARAPHRASE, target, memory=False) == plain  # the chunks' own texts
    # A key vouches for its chunk's rank, never for the question being answerable.
    before = passages_search(query=PARAPHRASE, k=5, memory=False)
    after = passages_search(query=PARAPHRASE, k=5)
    assert after.confidence == before.confidence


def test_held_back_and_unapproved_examples_are_never_keys(
    kb3: dict[str, KnowledgeDocument],
) -> None:
    target = _chunk("ERR-4032")
    plain = _rank(PARAPHRASE, target)
    _example(KEY, target, held_back=True, n=1)
    _example(KEY, target, state="pending", n=2)
    _example(KEY, target, state="rejected", n=3)
    built = knowledge.index_rebuild()
    assert built.memory_keys == 0
    assert _snapshot().memory is None
    assert _rank(PARAPHRASE, target) == plain


def test_a_rejected_example_stops_being_a_key_after_the_rebuild(
    kb3: dict[str, KnowledgeDocument], django_capture_on_commit_callbacks: Any, knowledge_admin: Any
) -> None:
    target = _chunk("ERR-4032")
    plain = _rank(PARAPHRASE, target)
    example = _example(KEY, target, state="pending")
    with django_capture_on_commit_callbacks(execute=True):  # the rebuild task runs (eager)
        examples_review(example_ids=[example.pk], state="approved", by=knowledge_admin)
    approved_version = _snapshot().version
    assert _snapshot().memory is not None and len(_snapshot().memory) == 1  # type: ignore[arg-type]
    assert _rank(PARAPHRASE, target) == 1
    with django_capture_on_commit_callbacks(execute=True):
        examples_review(example_ids=[example.pk], state="rejected", by=knowledge_admin)
    assert _snapshot().version > approved_version
    assert _snapshot().memory is None
    assert _rank(PARAPHRASE, target) == plain


def test_a_grounding_edit_moves_the_key_and_reingestion_keeps_it(
    kb3: dict[str, KnowledgeDocument], django_capture_on_commit_callbacks: Any
) -> None:
    from support.learning.examples import example_edit

    target = _chunk("ERR-4032")
    example = _example(KEY, _chunk("Parcels within the country"))
    knowledge.index_rebuild()
    with django_capture_on_commit_callbacks(execute=True):
        example_edit(example_id=example.pk, chunk_ids=[target.pk])
    assert _rank(PARAPHRASE, target) == 1
    # Re-ingesting the document gives the chunk a new id; the key follows it.
    with django_capture_on_commit_callbacks(execute=True):
        knowledge.document_ingest(document_id=kb3["router.md"].pk)
    moved = _chunk("ERR-4032")
    assert moved.pk != target.pk
    assert _rank(PARAPHRASE, moved) == 1


def test_the_memory_swaps_atomically_with_its_version(kb3: dict[str, KnowledgeDocument]) -> None:
    target = _chunk("ERR-4032")
    old = _snapshot()
    _example(KEY, target)
    built = knowledge.index_rebuild()
    new = _snapshot()
    assert new.version == built.version > old.version
    # Only the examples changed: the new version shares the chunks' files, with its own memory.
    manifest = new.manifest
    assert manifest.memory_keys == 1 and manifest.memory_file and manifest.memory_lexical_file
    assert manifest.count == old.manifest.count
    assert old.memory is None and new.memory is not None
    assert new.memory.example_ids.tolist() == [Example.objects.get().pk]
    # A search that holds the old snapshot finishes on it: no key there.
    vector = backends.get_embedder().encode_query(PARAPHRASE)
    from support.search.hybrid import hybrid_search

    on_old = hybrid_search(old, vector, PARAPHRASE, k=5)
    on_new = hybrid_search(new, vector, PARAPHRASE, k=5)
    assert on_new.hits[0].chunk_id == target.pk
    assert on_old.hits[0].chunk_id != target.pk
    # The next rebuild with nothing changed publishes nothing.
    assert knowledge.index_rebuild().version == new.version
    assert knowledge.index_sync() is None


def test_without_examples_the_results_are_identical(kb3: dict[str, KnowledgeDocument]) -> None:
    queries = [PARAPHRASE, "How do I get a refund?", "where is my parcel", "reset the router"]
    before = [_ranking(q) for q in queries]
    _example(KEY, _chunk("ERR-4032"), state="pending")
    knowledge.index_rebuild()
    assert _snapshot().memory is None
    assert [_ranking(q) for q in queries] == before
    without = [passages_search(query=q, k=10, memory=False).passages for q in queries]
    assert [[(p.chunk_id, round(p.score, 6)) for p in ps] for ps in without] == before


def test_memory_file_round_trip_and_chunk_scores(tmp_path: Any) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    keys = MemoryKeys(
        example_ids=np.array([7, 8, 9], dtype=np.int64),
        texts=("how do I reset it", "refund missing", "no chunk"),
        vectors=vectors,
        chunk_ids=((1, 2), (3,), ()),
        text_hashes=("a", "b", "c"),
    )
    memory = QuestionMemory.build(keys)
    assert len(memory) == 2  # a key without a chunk is no key
    memory.save(tmp_path / "m.npz", tmp_path / "l.npz")
    loaded = QuestionMemory.load(tmp_path / "m.npz", tmp_path / "l.npz")
    assert loaded.example_ids.tolist() == [7, 8]
    assert loaded.text_hashes == ("a", "b")
    scores = loaded.chunk_scores(vectors[0], "how do I reset it")
    assert set(scores) >= {1, 2}
    assert scores[1] == scores[2] == pytest.approx(1.0, abs=1e-5)
    # Keys below the least score that counts name nothing.
    assert loaded.chunk_scores(vectors[0], "how do I reset it", min_score=1.01) == {}
