"""Question memory from approved examples (docs/learning.md): which questions become keys of
which chunks, and the memory that `knowledge.index_rebuild` publishes with an index version.

A key is the question of an example that may be learned from (`examples_for_training`:
approved, grounded, not held back, no knowledge gap), pointing at its grounding chunks that are
in the index. Held-back examples are never keys: the gate evaluates on them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from ..backends import get_retrieval_embedder
from ..models_learning import ExampleGrounding
from ..search import index as search_index
from ..search.embedder import Embedder
from ..search.memory import MemoryKeys, QuestionMemory
from .examples import examples_for_training

logger = logging.getLogger(__name__)


def _key_rows() -> list[tuple[int, str, int]]:
    """(example id, question, chunk id) of every training example's linked grounding rows."""
    return list(
        ExampleGrounding.objects.filter(example__in=examples_for_training(), chunk__isnull=False)
        .order_by("example_id", "rank", "pk")
        .values_list("example_id", "example__question", "chunk_id")
    )


def memory_fingerprint() -> str:
    """What the memory is built from (keys, their chunks, when each example last changed):
    equal fingerprints build equal memories."""
    rows = (
        ExampleGrounding.objects.filter(example__in=examples_for_training(), chunk__isnull=False)
        .order_by("example_id", "rank", "pk")
        .values_list("example_id", "example__updated_at", "chunk_id")
    )
    h = hashlib.sha256()
    n = 0
    for example_id, updated_at, chunk_id in rows.iterator(chunk_size=2000):
        h.update(f"{example_id}:{updated_at.isoformat()}:{chunk_id};".encode())
        n += 1
    return f"{n}:{h.hexdigest()[:16]}"


def _text_hash(model_name: str, text: str) -> str:
    return hashlib.sha256(f"{model_name}\n{text}".encode()).hexdigest()[:32]


def _encode_questions(embedder: Embedder, texts: list[str]) -> NDArray[np.float32]:
    # Query side: keys and queries are both questions (models with query/passage prefixes).
    many = getattr(embedder, "encode_queries", None)
    if many is not None:
        return np.asarray(many(texts), dtype=np.float32)
    return np.asarray([embedder.encode_query(t) for t in texts], dtype=np.float32).reshape(
        len(texts), -1
    )


def _previous_vectors(index_dir: Path, dimension: int) -> dict[str, NDArray[np.float32]]:
    """The key vectors of the current version's memory, by text hash (reused when unchanged)."""
    version = search_index.current_version(index_dir)
    if version is None:
        return {}
    try:
        manifest = search_index.read_manifest(index_dir, version)
        if not (manifest.memory_file and manifest.memory_lexical_file):
            return {}
        old = QuestionMemory.load(
            index_dir / manifest.memory_file, index_dir / manifest.memory_lexical_file
        )
    except (OSError, ValueError, KeyError):
        return {}  # pruned meanwhile, or an older format: embed again
    if old.dimension != dimension or len(old.text_hashes) != len(old):
        return {}
    return {h: old.vectors[i] for i, h in enumerate(old.text_hashes)}


def memory_build(
    *,
    indexed_chunk_ids: Collection[int],
    index_dir: Path | None = None,
    embedder: Embedder | None = None,
) -> QuestionMemory | None:
    """The question memory of the approved training examples whose grounding chunks are in
    `indexed_chunk_ids`; None when there is no such example. Key vectors of the current
    version's memory in `index_dir` are reused for unchanged questions. Keys are embedded with
    `embedder` (the model of the version being built; default: the one new embeddings are made
    with, backends.get_retrieval_embedder)."""
    by_example: dict[int, tuple[str, list[int]]] = {}
    for example_id, question, chunk_id in _key_rows():
        if chunk_id not in indexed_chunk_ids:
            continue
        _, chunks = by_example.setdefault(example_id, (question, []))
        if chunk_id not in chunks:
            chunks.append(chunk_id)
    usable = [(eid, q, c) for eid, (q, c) in by_example.items() if q.strip() and c]
    if not usable:
        return None
    embedder = embedder or get_retrieval_embedder()
    dimension = embedder.dimension
    model = embedder.model_name
    hashes = [_text_hash(model, q) for _, q, _ in usable]
    known = _previous_vectors(index_dir, dimension) if index_dir is not None else {}
    missing = [i for i, h in enumerate(hashes) if h not in known]
    vectors = np.zeros((len(usable), dimension), dtype=np.float32)
    if missing:
        fresh = _encode_questions(embedder, [usable[i][1] for i in missing])
        vectors[missing] = fresh
    for i, h in enumerate(hashes):
        if h in known:
            vectors[i] = known[h]
    logger.info(
        "question memory: %s keys (%s embedded, %s reused)",
        len(usable),
        len(missing),
        len(usable) - len(missing),
    )
    keys = MemoryKeys(
        example_ids=np.fromiter((u[0] for u in usable), dtype=np.int64, count=len(usable)),
        texts=tuple(u[1] for u in usable),
        vectors=vectors,
        chunk_ids=tuple(tuple(u[2]) for u in usable),
        text_hashes=tuple(hashes),
    )
    return QuestionMemory.build(keys)
