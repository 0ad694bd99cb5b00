"""Staged index versions: written like any version, served only once published."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.search import index as vindex
from support.search.index import IndexNotReady, IndexReader, build, current_version

from .conftest import FakeEmbedder


def _build(directory: Path, corpus: dict[int, str], **kwargs: object) -> int:
    ids = list(corpus)
    texts = list(corpus.values())
    return build(directory, ids, FakeEmbedder().encode(texts), texts=texts, **kwargs)  # type: ignore[arg-type]


def test_a_staged_version_is_searchable_but_not_served_until_published(
    tmp_path: Path, corpus: dict[int, str], fake_embedder: FakeEmbedder
) -> None:
    first = _build(tmp_path, corpus)
    reader = IndexReader(tmp_path)
    assert reader.snapshot().version == first

    smaller = {k: v for k, v in corpus.items() if k != 101}
    staged = _build(tmp_path, smaller, publish=False)
    assert staged == first + 1
    assert current_version(tmp_path) == first
    assert reader.snapshot().version == first  # CURRENT did not move
    assert vindex.staged_exists(tmp_path, staged)
    # Searchable by loading it explicitly (what the gate does).
    snapshot = vindex.load_snapshot(tmp_path, staged)
    assert 101 not in snapshot.ids()
    assert snapshot.ids() == frozenset(smaller)
    hits = snapshot.search(fake_embedder.encode_query("reset password login"), 3)
    assert 101 not in [h.chunk_id for h in hits]

    vindex.publish(tmp_path, staged)
    assert current_version(tmp_path) == staged
    assert reader.snapshot().version == staged


def test_discard_deletes_a_staged_version_never_the_served_one(
    tmp_path: Path, corpus: dict[int, str]
) -> None:
    first = _build(tmp_path, corpus)
    staged = _build(tmp_path, corpus, publish=False)
    assert vindex.discard(tmp_path, first) is False  # being served
    assert vindex.staged_exists(tmp_path, first)
    assert vindex.discard(tmp_path, staged) is True
    assert not vindex.staged_exists(tmp_path, staged)
    assert vindex.discard(tmp_path, staged) is False  # already gone
    with pytest.raises(IndexNotReady):
        vindex.publish(tmp_path, staged)
    assert current_version(tmp_path) == first
    # Version numbers never repeat, even after a discard.
    assert _build(tmp_path, corpus, publish=False) == staged + 1


def test_staging_prunes_nothing_and_publishing_keeps_the_newest(
    tmp_path: Path, corpus: dict[int, str]
) -> None:
    versions = [_build(tmp_path, corpus) for _ in range(2)]
    staged = [_build(tmp_path, corpus, publish=False) for _ in range(2)]
    for version in [*versions, *staged]:
        assert vindex.staged_exists(tmp_path, version)
    vindex.publish(tmp_path, staged[0], keep=2)
    # Newest two by number plus the served one stay.
    assert vindex.staged_exists(tmp_path, staged[0])
    assert vindex.staged_exists(tmp_path, staged[1])
    assert not vindex.staged_exists(tmp_path, versions[0])
    assert not vindex.staged_exists(tmp_path, versions[1])
