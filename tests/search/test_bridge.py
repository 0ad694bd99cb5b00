"""The paraphrase bridge (support.search.bridge): the embedded vocabulary stored with an index
version, and query words the knowledge base lacks standing in for its terms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from support.search import index as search_index
from support.search.bridge import (
    BRIDGE_OFF,
    BridgeConfig,
    Expansion,
    VocabularyBridge,
    bridge_build,
    unknown_words,
    vocabulary_terms,
)
from support.search.hybrid import HybridSearcher, hybrid_search
from support.search.index import IndexReader, build, load_snapshot
from support.search.lexical import Bm25Index

from .conftest import FakeEmbedder

TEXTS = {
    1: "Moving house: tell us about your move three weeks before the moving date",
    2: "Changing your plan: upgrade or downgrade your plan in the app",
    3: "Slow Wi-Fi: place the router in a central spot",
    4: "Missed payments are retried after five days",
}

# Word vectors by hand: "relocating" is close to "moving" and "move", "capital" to nothing.
_AXES = {"moving": 0, "move": 0, "relocating": 0, "plan": 1, "router": 2, "capital": 3}


class WordEmbedder(FakeEmbedder):
    """FakeEmbedder for texts; single words get hand-made vectors (`_AXES`), every other word
    its own direction, so only the pairs meant to be similar are."""

    def __init__(self) -> None:
        self.encoded: list[str] = []

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> NDArray[np.float32]:
        if not all(t.isalpha() for t in texts):
            return super().encode(texts)
        self.encoded.extend(texts)
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, word in enumerate(texts):
            axis = _AXES.get(word)
            if axis is None:
                out[row, 10 + (sum(map(ord, word)) % 50)] = 1.0
                continue
            out[row, axis] = 1.0
            # "move" a little off "moving": cosine 0.8 between them and with "relocating".
            if word == "move":
                out[row] = [0.8 if i == 0 else 0.6 if i == 9 else 0.0 for i in range(64)]
        return out


def _lexical() -> Bm25Index:
    return Bm25Index.build(list(TEXTS), list(TEXTS.values()))


def test_vocabulary_terms_are_alphabetic_most_frequent_first() -> None:
    lexical = Bm25Index.build([1, 2, 3], ["plan plan 2021 ok", "plan router", "router wi-fi"])

    assert vocabulary_terms(lexical, limit=10) == ["plan", "router"]
    assert vocabulary_terms(lexical, limit=1) == ["plan"]
    assert vocabulary_terms(lexical, limit=0) == []


def test_unknown_words_are_the_query_terms_no_chunk_holds() -> None:
    lexical = _lexical()

    # "wifi" matches "wi-fi" (a spelling variant), "plans" stems to "plan"; "on" and "ok" are
    # stopwords or too short, "2024" is no word.
    assert unknown_words(lexical, "Relocating: my plans, wifi and capital in 2024 ok?") == [
        "relocating",
        "capital",
    ]
    assert unknown_words(lexical, "moving plan") == []


def test_neighbours_keep_the_nearest_above_the_threshold() -> None:
    embedder = WordEmbedder()
    bridge = bridge_build(_lexical(), embedder.encode, model="words", limit=100)
    assert bridge is not None
    vectors = embedder.encode(["relocating", "capital"])

    near = bridge.neighbours(vectors, k=2, threshold=0.7)

    assert near[0] == [("moving", pytest.approx(1.0)), ("move", pytest.approx(0.8))]
    assert near[1] == []
    assert bridge.neighbours(vectors, k=1, threshold=0.9)[0] == [("moving", pytest.approx(1.0))]


def test_expand_maps_only_unknown_words_and_caches_their_vectors() -> None:
    embedder = WordEmbedder()
    lexical = _lexical()
    bridge = bridge_build(lexical, embedder.encode, model="words", limit=100)
    assert bridge is not None
    embedder.encoded.clear()
    config = BridgeConfig(threshold=0.7, weight=0.5, neighbours=2)

    found = bridge.expand(lexical, "I am relocating, what about my plan?", embedder.encode, config)
    again = bridge.expand(lexical, "relocating", embedder.encode, config)

    assert [(e.word, e.term, e.weight) for e in found] == [
        ("relocating", "moving", 0.5),
        ("relocating", "move", 0.5),
    ]
    assert again == found
    assert embedder.encoded == ["relocating"]  # once; "plan" is in the vocabulary
    assert bridge.expand(lexical, "relocating", embedder.encode, BRIDGE_OFF) == ()
    assert bridge.expand(lexical, "capital", embedder.encode, config) == ()


def test_bridge_build_reuses_vectors_of_the_same_model_only() -> None:
    embedder = WordEmbedder()
    first = bridge_build(Bm25Index.build([1], ["moving plan"]), embedder.encode, model="a", limit=9)
    embedder.encoded.clear()
    lexical = Bm25Index.build([1, 2], ["moving plan", "router"])

    same = bridge_build(lexical, embedder.encode, model="a", limit=9, previous=first)
    assert embedder.encoded == ["router"]
    other = bridge_build(lexical, embedder.encode, model="b", limit=9, previous=first)
    assert sorted(embedder.encoded) == ["moving", "plan", "router", "router"]
    assert same is not None and other is not None
    assert same.terms == other.terms
    np.testing.assert_allclose(same.vectors, other.vectors)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    bridge = bridge_build(_lexical(), WordEmbedder().encode, model="words", limit=100)
    assert bridge is not None
    bridge.save(tmp_path / "b.npz")

    loaded = VocabularyBridge.load(tmp_path / "b.npz")

    assert loaded.terms == bridge.terms and loaded.model == "words"
    np.testing.assert_allclose(loaded.vectors, bridge.vectors, atol=1e-3)


def test_extra_terms_score_at_their_weight_and_never_twice() -> None:
    lexical = _lexical()
    full = lexical.score_all("moving")

    half = lexical.score_all("relocating", extra={"moving": 0.5})
    np.testing.assert_allclose(half, 0.5 * full, rtol=1e-6)
    # Already a query term: the extra one adds nothing.
    np.testing.assert_allclose(lexical.score_all("moving", extra={"moving": 0.5}), full)
    # Not an index term: ignored.
    np.testing.assert_allclose(lexical.score_all("moving", extra={"zzz": 1.0}), full)


def test_a_substituting_stand_in_lowers_the_coverage_ceiling() -> None:
    lexical = _lexical()
    unknown = lexical.max_score("relocating")
    known = lexical.max_score("moving")
    assert known < unknown

    half = lexical.max_score("relocating", stand_ins={"relocating": ("moving", 0.5)})

    assert half == pytest.approx(0.5 * known + 0.5 * unknown)
    assert lexical.max_score("moving", stand_ins={"moving": ("plan", 1.0)}) == known


def _built(tmp_path: Path) -> WordEmbedder:
    embedder = WordEmbedder()
    texts = list(TEXTS.values())

    def vocabulary(lexical: Bm25Index) -> VocabularyBridge | None:
        return bridge_build(lexical, embedder.encode, model="words", limit=100)

    build(tmp_path, list(TEXTS), embedder.encode(texts), texts=texts, bridge=vocabulary)
    return embedder


def test_the_bridge_is_stored_and_loaded_with_its_version(tmp_path: Path) -> None:
    _built(tmp_path)

    manifest = search_index.read_manifest(tmp_path, 1)
    assert manifest.bridge_file == "bridge-v1.npz"
    assert manifest.bridge_terms == len(vocabulary_terms(_lexical(), limit=100))
    snapshot = load_snapshot(tmp_path, 1)
    assert snapshot.bridge is not None and "moving" in snapshot.bridge.terms

    # A new question memory shares the chunks' files, the bridge's too.
    version = search_index.republish(tmp_path, 1, memory=None)
    again = load_snapshot(tmp_path, version)
    assert again.bridge is not None and again.bridge.terms == snapshot.bridge.terms
    assert search_index.staged_exists(tmp_path, version)


def test_a_staged_version_discarded_takes_its_bridge(tmp_path: Path) -> None:
    embedder = _built(tmp_path)
    texts = list(TEXTS.values())
    staged = build(
        tmp_path,
        list(TEXTS),
        embedder.encode(texts),
        texts=texts,
        bridge=lambda lex: bridge_build(lex, embedder.encode, model="words", limit=100),
        publish=False,
    )
    assert (tmp_path / "bridge-v2.npz").is_file()

    assert search_index.discard(tmp_path, staged)
    assert not (tmp_path / "bridge-v2.npz").exists()


def test_a_version_without_a_bridge_searches_as_before(tmp_path: Path) -> None:
    embedder = WordEmbedder()
    texts = list(TEXTS.values())
    build(tmp_path, list(TEXTS), embedder.encode(texts), texts=texts)
    snapshot = load_snapshot(tmp_path, 1)
    assert snapshot.bridge is None and snapshot.manifest.bridge_file is None

    result = HybridSearcher(IndexReader(tmp_path), embedder).search("relocating", k=3)
    assert result.bridged == () and result.lexical_coverage == 0.0


def test_a_bridged_word_finds_the_chunk_of_its_stand_in(tmp_path: Path) -> None:
    embedder = _built(tmp_path)
    reader = IndexReader(tmp_path)
    on = HybridSearcher(reader, embedder, bridge=BridgeConfig(threshold=0.7, weight=0.5))
    off = HybridSearcher(reader, embedder, bridge=BRIDGE_OFF)

    bridged = on.search("relocating with my plan", k=3)
    plain = off.search("relocating with my plan", k=3)

    assert [(e.word, e.term) for e in bridged.bridged] == [
        ("relocating", "moving"),
        ("relocating", "move"),
    ]
    assert plain.bridged == ()
    moving = next(h for h in bridged.hits if h.chunk_id == 1)
    assert moving.lexical_score > 0
    assert all(h.lexical_score == 0 for h in plain.hits if h.chunk_id == 1)
    alone = on.search("relocating", k=3)
    assert alone.hits[0].chunk_id == 1
    assert alone.lexical_coverage > off.search("relocating", k=3).lexical_coverage == 0.0
    # Words the knowledge base uses are never bridged: the same search either way.
    assert on.search("moving plan", k=3) == off.search("moving plan", k=3)


def test_hybrid_search_without_expansions_is_unchanged(tmp_path: Path) -> None:
    embedder = _built(tmp_path)
    snapshot = load_snapshot(tmp_path, 1)
    vector = embedder.encode_query("relocating")
    expansion = Expansion("relocating", "moving", 1.0, 0.5)

    plain = hybrid_search(snapshot, vector, "relocating", k=3)
    bridged = hybrid_search(snapshot, vector, "relocating", k=3, bridged=[expansion])
    substituted = hybrid_search(
        snapshot,
        vector,
        "relocating",
        k=3,
        bridged=[Expansion("relocating", "moving", 1.0, 0.5, substitute=True)],
    )

    assert plain.lexical_coverage == 0.0 and plain.bridged == ()
    assert bridged.bridged == (expansion,) and bridged.lexical_coverage > 0
    assert substituted.lexical_coverage > bridged.lexical_coverage
