from __future__ import annotations

import itertools
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from support.search import index as vindex
from support.search.index import IndexNotReady, IndexReader, build, current_version

from .conftest import FAKE_DIM, FakeEmbedder, random_unit_vectors


def _build_corpus(directory: Path, corpus: dict[int, str], **kwargs: object) -> int:
    ids = list(corpus)
    texts = list(corpus.values())
    return build(directory, ids, FakeEmbedder().encode(texts), texts=texts, **kwargs)  # type: ignore[arg-type]


def test_build_writes_version_manifest_and_pointer(tmp_path: Path, corpus: dict[int, str]) -> None:
    version = _build_corpus(tmp_path, corpus, metadata={"embedding_model": "fake"})

    assert version == 1
    assert current_version(tmp_path) == 1
    assert (tmp_path / "index-v1.faiss").is_file()
    assert (tmp_path / "lexical-v1.npz").is_file()
    manifest = json.loads((tmp_path / "manifest-v1.json").read_text())
    assert manifest["kind"] == "flat"
    assert manifest["count"] == len(corpus)
    assert manifest["dimension"] == FAKE_DIM
    assert manifest["metadata"] == {"embedding_model": "fake"}
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


def test_exact_search_returns_chunk_ids_by_cosine(
    tmp_path: Path, corpus: dict[int, str], fake_embedder: FakeEmbedder
) -> None:
    _build_corpus(tmp_path, corpus)
    reader = IndexReader(tmp_path)

    hits = reader.search(fake_embedder.encode_query("reset password login"), 3)

    assert hits[0].chunk_id == 101
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].score == pytest.approx(
        float(
            fake_embedder.encode_query("reset password login")
            @ fake_embedder.encode([corpus[101]])[0]
        ),
        abs=1e-5,
    )
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


def test_reader_before_first_build_raises(tmp_path: Path) -> None:
    with pytest.raises(IndexNotReady):
        IndexReader(tmp_path).snapshot()


def test_new_version_is_picked_up_before_the_next_search(
    tmp_path: Path, corpus: dict[int, str], fake_embedder: FakeEmbedder
) -> None:
    _build_corpus(tmp_path, corpus)
    reader = IndexReader(tmp_path)
    query = fake_embedder.encode_query("gift cards")
    assert 201 not in [h.chunk_id for h in reader.search(query, 3)]
    assert reader.version == 1

    version = _build_corpus(tmp_path, {**corpus, 201: "Gift cards never expire"})

    assert version == 2
    assert reader.search(query, 1)[0].chunk_id == 201
    assert reader.version == 2


def test_snapshot_held_by_a_search_survives_swap_and_prune(
    tmp_path: Path, corpus: dict[int, str], fake_embedder: FakeEmbedder
) -> None:
    _build_corpus(tmp_path, corpus)
    reader = IndexReader(tmp_path)
    old = reader.snapshot()
    query = fake_embedder.encode_query("refund policy")

    # Three more versions: version 1's files are pruned (keep=2) while `old` is still in use.
    for extra in range(3):
        _build_corpus(tmp_path, {**corpus, 300 + extra: f"new chunk {extra}"})
    assert not (tmp_path / "index-v1.faiss").exists()
    assert sorted(p.name for p in tmp_path.glob("index-v*.faiss")) == [
        "index-v3.faiss",
        "index-v4.faiss",
    ]

    assert old.version == 1
    assert old.search(query, 1)[0].chunk_id == 106  # still served from memory
    assert old.lexical is not None and old.lexical.search("refund", 1)[0].chunk_id == 106
    assert reader.snapshot().version == 4
    assert old.version == 1  # the swap replaced the reference, never mutated the old one


def test_concurrent_searches_during_rebuilds(
    tmp_path: Path, corpus: dict[int, str], fake_embedder: FakeEmbedder
) -> None:
    _build_corpus(tmp_path, corpus)
    reader = IndexReader(tmp_path)
    query = fake_embedder.encode_query("shipping to canada")
    errors: list[BaseException] = []
    stop = threading.Event()

    def search_loop() -> None:
        try:
            while not stop.is_set():
                assert reader.search(query, 1)[0].chunk_id == 108
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=search_loop) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for extra in range(5):
            _build_corpus(tmp_path, {**corpus, 400 + extra: f"unrelated text {extra}"})
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert reader.snapshot().version == 6


def test_concurrent_builders_get_distinct_versions(tmp_path: Path, corpus: dict[int, str]) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = list(pool.map(lambda _: _build_corpus(tmp_path, corpus), range(4)))

    assert sorted(versions) == [1, 2, 3, 4]
    assert current_version(tmp_path) == 4  # versions are allocated in lock order
    assert len(list(tmp_path.glob("index-v*.faiss"))) == 2


def test_build_lock_times_out_while_another_writer_holds_it(
    tmp_path: Path, corpus: dict[int, str]
) -> None:
    with vindex.build_lock(tmp_path), pytest.raises(vindex.IndexBuildBusy):
        _build_corpus(tmp_path, corpus, lock_timeout=0.1)
    assert current_version(tmp_path) is None


def test_crashed_build_leftovers_are_ignored_and_cleaned(
    tmp_path: Path, corpus: dict[int, str]
) -> None:
    # A build that died after writing index-v5 but before flipping CURRENT.
    _build_corpus(tmp_path, corpus)
    (tmp_path / "index-v5.faiss").write_bytes(b"partial")
    (tmp_path / "index-v6.faiss.tmp-999").write_bytes(b"partial")

    version = _build_corpus(tmp_path, corpus)

    assert version == 6  # never reuses a number seen on disk
    assert not (tmp_path / "index-v6.faiss.tmp-999").exists()
    assert IndexReader(tmp_path).snapshot().version == 6


def test_hnsw_is_used_above_the_threshold(tmp_path: Path) -> None:
    vectors = random_unit_vectors(300)
    ids = np.arange(1000, 1300, dtype=np.int64)

    build(tmp_path / "flat", ids, vectors, hnsw_threshold=300)
    build(tmp_path / "hnsw", ids, vectors, hnsw_threshold=299, ef_search=100)
    flat = IndexReader(tmp_path / "flat").snapshot()
    hnsw = IndexReader(tmp_path / "hnsw").snapshot()

    assert flat.manifest.kind == "flat"
    assert hnsw.manifest.kind == "hnsw"
    assert hnsw.manifest.ef_search == 100
    for q in vectors[:20]:
        assert hnsw.search(q, 1)[0].chunk_id == flat.search(q, 1)[0].chunk_id


@pytest.mark.parametrize("threshold", [10_000, 10])
def test_filtered_ids_are_never_returned(tmp_path: Path, threshold: int) -> None:
    vectors = random_unit_vectors(200, seed=1)
    ids = np.arange(1, 201, dtype=np.int64) * 10
    build(tmp_path, ids, vectors, hnsw_threshold=threshold)
    snap = IndexReader(tmp_path).snapshot()
    disabled = set(ids[:150].tolist())
    allowed = [int(i) for i in ids[100:]]

    for q in vectors[:30]:
        denied_hits = snap.search(q, 20, deny_ids=disabled)
        assert len(denied_hits) == 20
        assert not disabled & {h.chunk_id for h in denied_hits}
        allowed_hits = snap.search(q, 20, allow_ids=allowed, deny_ids=disabled)
        assert {h.chunk_id for h in allowed_hits} <= set(allowed) - disabled
        assert len(allowed_hits) == 20
    # Almost everything disabled: the few survivors are still all found.
    survivors = {int(i) for i in ids[190:]}
    assert {h.chunk_id for h in snap.search(vectors[0], 10, deny_ids=ids[:190])} == survivors
    # The query vector of a disabled chunk must not find it even as its own best match.
    assert snap.search(vectors[0], 1, deny_ids=[10])[0].chunk_id != 10
    assert snap.search(vectors[0], 5, allow_ids=[]) == []


def test_validation_rejects_bad_input(tmp_path: Path) -> None:
    vectors = random_unit_vectors(3)
    with pytest.raises(ValueError, match="unique"):
        build(tmp_path, [1, 1, 2], vectors)
    with pytest.raises(ValueError, match="normalised"):
        build(tmp_path, [1, 2, 3], vectors * 2)
    with pytest.raises(ValueError, match="texts"):
        build(tmp_path, [1, 2, 3], vectors, texts=["a"])
    assert current_version(tmp_path) is None


def test_empty_index_builds_and_searches(tmp_path: Path) -> None:
    build(tmp_path, [], np.zeros((0, FAKE_DIM), dtype=np.float32), texts=[])
    snap = IndexReader(tmp_path).snapshot()
    assert len(snap) == 0
    assert snap.search(random_unit_vectors(1)[0], 5) == []
    assert snap.lexical is not None and snap.lexical.search("anything", 5) == []


def test_stored_embedding_bytes_round_trip(tmp_path: Path) -> None:
    vectors = random_unit_vectors(4)
    blobs = [vindex.vector_to_bytes(v) for v in vectors]

    assert all(len(b) == FAKE_DIM * 4 for b in blobs)
    np.testing.assert_array_equal(vindex.vectors_from_bytes(blobs, FAKE_DIM), vectors)
    build(tmp_path, [1, 2, 3, 4], vindex.vectors_from_bytes(blobs, FAKE_DIM))
    with pytest.raises(ValueError, match="dimension"):
        vindex.vectors_from_bytes([*blobs, b"\x00" * 8], FAKE_DIM)


def test_opening_ids_are_versioned_with_the_index(tmp_path: Path, corpus: dict[int, str]) -> None:
    ids = list(corpus)
    _build_corpus(tmp_path, corpus, opening_ids=[ids[2], ids[0]], keep=1)
    assert json.loads((tmp_path / "manifest-v1.json").read_text())["opening_file"] == (
        "opening-v1.npy"
    )
    snap = IndexReader(tmp_path).snapshot()
    assert snap.opening is not None and snap.opening.tolist() == sorted([ids[0], ids[2]])
    assert snap.opens_document([ids[0], ids[1], 999_999]).tolist() == [True, False, False]
    _build_corpus(tmp_path, corpus, keep=1)
    assert not (tmp_path / "opening-v1.npy").exists()  # pruned with its version
    assert IndexReader(tmp_path).snapshot().opens_document([ids[0]]).tolist() == [False]
