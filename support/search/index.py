"""Versioned FAISS vector store on disk, plus the BM25 index of the same version.

Layout of an index directory::

    CURRENT                 "7\n": the version being served; replaced atomically
    index-v7.faiss          IndexIDMap2(IndexFlatIP | IndexHNSWFlat(IP)) keyed by int64 chunk id
    lexical-v7.npz          BM25 postings (optional; see support.search.lexical)
    opening-v7.npy          sorted ids of the chunks that open their document (optional)
    memory-v7.npz           question memory: approved examples' questions as keys of their
    memlex-v7.npz           chunks, vectors + chunk lists and BM25 (optional; search.memory)
    bridge-v7.npz           the BM25 vocabulary's terms embedded (optional; search.bridge)
    manifest-v7.json        what was built, how, and with which parameters
    discarded-v8.mark       a staged version that was discarded (its number stays taken)
    .build.lock             fcntl lock: one writer at a time across processes
    .gate.lock              fcntl lock: one staged change evaluated at a time (support.golden)

Rules that keep serving safe (STYLE.md: never write to an index that is being served):

* `build` (and `republish`, a new version with the chunks of an existing one and a new
  question memory) never touches a file of an existing version. It writes every file of version N+1
  under a temporary name, fsyncs, `os.replace`s it into place, writes the manifest last and
  only then flips `CURRENT`. A crash leaves either the old version or the new one current.
* A version can be **staged**: `build(..., publish=False)` writes it the same way but leaves
  `CURRENT` alone, so nothing serves it; `load_snapshot` can still search it (the golden
  questions are run against it before the swap). `publish` flips `CURRENT` to it later;
  `discard` deletes a staged version's files. Neither touches the version being served.
* `IndexReader` loads whole files into memory (no mmap), so pruning old files never pulls
  data from under a search. It checks `CURRENT` with one `stat` before each search and swaps
  its snapshot reference under a lock; searches in flight keep the snapshot they started with.
* FAISS CPU indexes allow concurrent searches; nothing here mutates a loaded index.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import faiss
import numpy as np
from numpy.typing import NDArray

from support.exceptions import SupportError
from support.search.bridge import VocabularyBridge
from support.search.lexical import TOKENIZER_VERSION, Bm25Index, Bm25Params
from support.search.memory import QuestionMemory

CURRENT_FILE: Final = "CURRENT"
LOCK_FILE: Final = ".build.lock"
GATE_LOCK_FILE: Final = ".gate.lock"
_VERSION_FILE_RE: Final = re.compile(
    r"^(?:index|lexical|manifest|opening|memory|memlex|bridge|discarded)-v(\d+)\.(?:faiss|npz|json|npy|mark)$"
)
_TMP_MARK: Final = ".tmp-"
# faiss's bundled stubs miss the search-parameter classes; go through an untyped alias there.
_faiss: Any = faiss

DEFAULT_HNSW_THRESHOLD: Final = 50_000
DEFAULT_HNSW_M: Final = 32
DEFAULT_EF_CONSTRUCTION: Final = 80
# Recall@10 against exact search on 100k clustered vectors (bench): ef 64 -> 0.84,
# ef 128 -> 0.91, at ~0.2 ms per query either way.
DEFAULT_EF_SEARCH: Final = 128
# Below this many allowed ids a filtered HNSW search is replaced by an exact scan of just those
# vectors: HNSW graph walks degrade (and can return fewer than k hits) when most nodes are
# filtered out, while scanning a few thousand vectors costs well under a millisecond.
EXACT_FILTER_LIMIT: Final = 20_000

IndexKind = Literal["flat", "hnsw"]


class IndexNotReady(SupportError):
    code = "index_not_ready"


class IndexBuildBusy(SupportError):
    code = "index_build_busy"


@dataclass(frozen=True, slots=True)
class IndexManifest:
    version: int
    kind: IndexKind
    count: int
    dimension: int
    created_at: str
    index_file: str
    lexical_file: str | None = None
    opening_file: str | None = None
    hnsw_m: int | None = None
    ef_construction: int | None = None
    ef_search: int | None = None
    bm25_k1: float | None = None
    bm25_b: float | None = None
    tokenizer_version: int | None = None
    memory_file: str | None = None
    memory_lexical_file: str | None = None
    memory_keys: int = 0
    bridge_file: str | None = None
    bridge_terms: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["metadata"] = dict(self.metadata)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> IndexManifest:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True, slots=True)
class DenseHit:
    chunk_id: int
    score: float  # inner product = cosine similarity for L2-normalised vectors
    rank: int  # 1-based


def set_search_threads(threads: int) -> None:
    """Set faiss's OpenMP thread count for this process (call once at worker start).

    Serving processes should use 1: single-query searches gain nothing from OpenMP, and with
    2 threads on 2 busy cores each search stalled ~8 ms waiting at an OpenMP barrier
    (bench: hybrid p50 0.4 ms with 1 thread vs 8 ms with 2). Index builds (HNSW
    construction) do use several threads.
    """
    faiss.omp_set_num_threads(max(1, threads))


# -- stored embeddings ------------------------------------------------------------------------


def vector_to_bytes(vector: NDArray[np.float32]) -> bytes:
    """One embedding as float32 little-endian bytes (the Chunk.embedding column format)."""
    return np.ascontiguousarray(vector, dtype="<f4").reshape(-1).tobytes()


def vectors_from_bytes(blobs: Sequence[bytes], dimension: int) -> NDArray[np.float32]:
    """Stack stored embeddings back into an (n, dimension) float32 matrix for `build`."""
    if not blobs:
        return np.zeros((0, dimension), dtype=np.float32)
    flat = np.frombuffer(b"".join(blobs), dtype="<f4")
    if flat.size != len(blobs) * dimension:
        raise ValueError(f"stored embeddings do not all have dimension {dimension}")
    return flat.reshape(len(blobs), dimension).astype(np.float32)


# -- writing ----------------------------------------------------------------------------------


def index_file_name(version: int) -> str:
    return f"index-v{version}.faiss"


def lexical_file_name(version: int) -> str:
    return f"lexical-v{version}.npz"


def opening_file_name(version: int) -> str:
    return f"opening-v{version}.npy"


def manifest_file_name(version: int) -> str:
    return f"manifest-v{version}.json"


def memory_file_names(version: int) -> tuple[str, str]:
    return f"memory-v{version}.npz", f"memlex-v{version}.npz"


def bridge_file_name(version: int) -> str:
    return f"bridge-v{version}.npz"


def discarded_file_name(version: int) -> str:
    return f"discarded-v{version}.mark"


def build(
    directory: str | os.PathLike[str],
    ids: Sequence[int] | NDArray[np.int64],
    vectors: NDArray[np.float32],
    *,
    texts: Sequence[str] | None = None,
    opening_ids: Sequence[int] | NDArray[np.int64] | None = None,
    hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
    hnsw_m: int = DEFAULT_HNSW_M,
    ef_construction: int = DEFAULT_EF_CONSTRUCTION,
    ef_search: int = DEFAULT_EF_SEARCH,
    bm25_params: Bm25Params | None = None,
    metadata: Mapping[str, Any] | None = None,
    memory: QuestionMemory | None = None,
    bridge: Callable[[Bm25Index], VocabularyBridge | None] | None = None,
    keep: int = 2,
    lock_timeout: float | None = None,
    publish: bool = True,
) -> int:
    """Build a new index version from scratch, publish it atomically and return its number.

    With `publish=False` the version is only staged: every file is written, `CURRENT` is not
    flipped and nothing is pruned (see `publish` and `discard`).

    `vectors` must be L2-normalised float32 rows aligned with the unique int64 `ids`. When
    `texts` (aligned with `ids`) is given, a BM25 index of the same version is written too.
    `opening_ids`, a subset of `ids`, marks the chunks that open their document (searches can
    give them a prior, see hybrid.FusionConfig.opening_boost).
    An HNSW graph is used when there are more than `hnsw_threshold` vectors, else an exact
    flat index. `memory` (keys pointing at some of `ids`) is written with the version and
    loaded with it. `bridge`, given the version's BM25 index (so `texts` is needed), returns
    its embedded vocabulary (support.search.bridge), written and loaded with the version.
    Blocks while another process builds in the same directory (at most
    `lock_timeout` seconds when given, then raises IndexBuildBusy). Keeps the newest `keep`
    versions on disk and deletes older ones.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    id_array, matrix = _validate(ids, vectors)
    if texts is not None and len(texts) != len(id_array):
        raise ValueError(f"{len(id_array)} ids but {len(texts)} texts")
    opening = None
    if opening_ids is not None:
        opening = np.unique(np.asarray(opening_ids, dtype=np.int64).reshape(-1))
        if not np.isin(opening, id_array).all():
            raise ValueError("opening_ids must be a subset of ids")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)

    # The CPU-heavy parts run before taking the lock so a concurrent builder only waits for
    # the file writes, not for another graph construction.
    kind: IndexKind = "hnsw" if len(id_array) > hnsw_threshold else "flat"
    dense = _make_faiss_index(
        matrix, id_array, kind=kind, hnsw_m=hnsw_m, ef_construction=ef_construction
    )
    params = bm25_params or Bm25Params()
    lexical = Bm25Index.build(id_array, texts, params=params) if texts is not None else None
    vocabulary = bridge(lexical) if bridge is not None and lexical is not None else None

    with build_lock(root, timeout=lock_timeout):
        version = _next_version(root)
        index_name = index_file_name(version)
        _atomic_write(root / index_name, lambda tmp: faiss.write_index(dense, str(tmp)))
        lexical_name = None
        if lexical is not None:
            lexical_name = lexical_file_name(version)
            _atomic_write(root / lexical_name, lexical.save)
        opening_name = None
        if opening is not None:
            opening_name = opening_file_name(version)
            _atomic_write(root / opening_name, lambda tmp: _save_array(tmp, opening))
        memory_names = _write_memory(root, version, memory)
        bridge_name = None
        if vocabulary is not None:
            bridge_name = bridge_file_name(version)
            _atomic_write(root / bridge_name, vocabulary.save)
        manifest = IndexManifest(
            version=version,
            kind=kind,
            count=len(id_array),
            dimension=int(matrix.shape[1]),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            index_file=index_name,
            lexical_file=lexical_name,
            opening_file=opening_name,
            hnsw_m=hnsw_m if kind == "hnsw" else None,
            ef_construction=ef_construction if kind == "hnsw" else None,
            ef_search=ef_search if kind == "hnsw" else None,
            bm25_k1=params.k1 if lexical is not None else None,
            bm25_b=params.b if lexical is not None else None,
            tokenizer_version=TOKENIZER_VERSION if lexical is not None else None,
            memory_file=memory_names[0] if memory_names else None,
            memory_lexical_file=memory_names[1] if memory_names else None,
            memory_keys=len(memory) if memory_names and memory is not None else 0,
            bridge_file=bridge_name,
            bridge_terms=len(vocabulary) if vocabulary is not None else 0,
            metadata=dict(metadata or {}),
        )
        if publish:
            _publish(root, manifest, keep=keep)
        else:
            _atomic_write_text(root / manifest_file_name(version), manifest.to_json())
            _fsync_dir(root)
    return version


def republish(
    directory: str | os.PathLike[str],
    base_version: int,
    *,
    memory: QuestionMemory | None,
    metadata: Mapping[str, Any] | None = None,
    keep: int = 2,
    lock_timeout: float | None = None,
) -> int:
    """Publish a new version with the chunks of `base_version` (its FAISS, BM25 and opening
    files, hard-linked or copied, never rewritten) and a new question memory; return its number.

    What an approved or rejected example costs: no graph is built again. Published like `build`.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    root = Path(directory)
    with build_lock(root, timeout=lock_timeout):
        base = read_manifest(root, base_version)
        version = _next_version(root)
        names: dict[str, str | None] = {
            "index_file": index_file_name(version),
            "lexical_file": lexical_file_name(version) if base.lexical_file else None,
            "opening_file": opening_file_name(version) if base.opening_file else None,
            "bridge_file": bridge_file_name(version) if base.bridge_file else None,
        }
        for attr, name in names.items():
            old = getattr(base, attr)
            if name is not None and old:
                _atomic_write(root / name, lambda tmp, old=old: _link_or_copy(root / old, tmp))
        memory_names = _write_memory(root, version, memory)
        data = asdict(base)
        data.update(names)
        data.update(
            version=version,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            memory_file=memory_names[0] if memory_names else None,
            memory_lexical_file=memory_names[1] if memory_names else None,
            memory_keys=len(memory) if memory_names and memory is not None else 0,
            metadata=dict(metadata if metadata is not None else base.metadata),
        )
        _publish(root, IndexManifest(**data), keep=keep)
    return version


def _publish(root: Path, manifest: IndexManifest, *, keep: int) -> None:
    """Write the manifest, then flip CURRENT (the caller holds the build lock)."""
    _atomic_write_text(root / manifest_file_name(manifest.version), manifest.to_json())
    _flip(root, manifest.version, keep=keep)


def _flip(root: Path, version: int, *, keep: int) -> None:
    # Publishing point: readers switch on their next search. Called with the build lock held.
    _atomic_write_text(root / CURRENT_FILE, f"{version}\n")
    _fsync_dir(root)
    _prune(root, keep=keep)


def _write_memory(
    root: Path, version: int, memory: QuestionMemory | None
) -> tuple[str, str] | None:
    if memory is None or not len(memory):
        return None
    names = memory_file_names(version)
    # One writer, two files: the keys' BM25 first, so a crash never leaves keys without it
    # (and the manifest, written last, names both or neither).
    lexical_tmp = root / f"{names[1]}{_TMP_MARK}{os.getpid()}"
    try:
        _atomic_write(root / names[0], lambda tmp: memory.save(tmp, lexical_tmp))
        with open(lexical_tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(lexical_tmp, root / names[1])
    finally:
        with contextlib.suppress(FileNotFoundError):
            lexical_tmp.unlink()
    return names


def _link_or_copy(source: Path, target: Path) -> None:
    # A hard link shares the bytes: readers load whole files, and pruning the old name keeps
    # the new one. Copy where links are not allowed.
    try:
        os.link(source, target)
    except OSError:
        import shutil

        shutil.copyfile(source, target)


def staged_exists(directory: str | os.PathLike[str], version: int) -> bool:
    """Every file of `version`'s manifest is on disk (a staged or published version)."""
    root = Path(directory)
    try:
        manifest = read_manifest(root, version)
    except (FileNotFoundError, ValueError, TypeError):
        return False
    names = [
        manifest.index_file,
        manifest.lexical_file,
        manifest.opening_file,
        manifest.memory_file,
        manifest.memory_lexical_file,
        manifest.bridge_file,
    ]
    return all((root / name).is_file() for name in names if name)


def publish(
    directory: str | os.PathLike[str],
    version: int,
    *,
    keep: int = 2,
    lock_timeout: float | None = None,
) -> None:
    """Make a version already on disk (staged, or an older one) the one served, atomically.

    Raises IndexNotReady when its files are gone (pruned or discarded since).
    """
    root = Path(directory)
    with build_lock(root, timeout=lock_timeout):
        if not staged_exists(root, version):
            raise IndexNotReady(f"Index version {version} is not on disk in {root}")
        if current_version(root) != version:
            _flip(root, version, keep=keep)


def discard(directory: str | os.PathLike[str], version: int) -> bool:
    """Delete the files of a staged version; False (and nothing deleted) when it is the version
    being served or is already gone."""
    root = Path(directory)
    with build_lock(root):
        if current_version(root) == version:
            return False
        names = [
            index_file_name(version),
            lexical_file_name(version),
            opening_file_name(version),
            *memory_file_names(version),
            bridge_file_name(version),
            manifest_file_name(version),
        ]
        if not any((root / name).exists() for name in names):
            return False
        # A mark keeps the number taken: version numbers never repeat (a reader that once
        # loaded a number never mistakes another build for it). Pruned like any old version.
        _atomic_write_text(root / discarded_file_name(version), "")
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (root / name).unlink()
        _fsync_dir(root)
        return True


@contextlib.contextmanager
def build_lock(
    directory: Path, *, timeout: float | None = None, name: str = LOCK_FILE
) -> Iterator[None]:
    """Exclusive cross-process lock on `directory` (fcntl.flock on .build.lock, or `name`).

    Not re-entrant: a process holding one lock file must not take the same one again."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise IndexBuildBusy(
                            f"Another process is building the index in {directory}"
                        ) from exc
                    time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def current_version(directory: str | os.PathLike[str]) -> int | None:
    """The version `CURRENT` points at, or None before the first build."""
    try:
        text = (Path(directory) / CURRENT_FILE).read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    return int(text.strip())


def read_manifest(directory: str | os.PathLike[str], version: int) -> IndexManifest:
    path = Path(directory) / manifest_file_name(version)
    return IndexManifest.from_json(path.read_text(encoding="utf-8"))


def _validate(
    ids: Sequence[int] | NDArray[np.int64], vectors: NDArray[np.float32]
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    id_array = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"vectors must be 2-D, got shape {matrix.shape}")
    if matrix.shape[0] != id_array.shape[0]:
        raise ValueError(f"{id_array.shape[0]} ids but {matrix.shape[0]} vectors")
    if matrix.shape[1] == 0:
        raise ValueError("vectors must have at least one dimension")
    if len(np.unique(id_array)) != len(id_array):
        raise ValueError("chunk ids must be unique")
    if len(matrix):
        norms = np.linalg.norm(matrix, axis=1)
        if not np.allclose(norms, 1.0, atol=1e-3):
            raise ValueError("vectors must be L2-normalised (inner product = cosine)")
    return id_array, matrix


def _make_faiss_index(
    matrix: NDArray[np.float32],
    ids: NDArray[np.int64],
    *,
    kind: IndexKind,
    hnsw_m: int,
    ef_construction: int,
) -> Any:
    dim = int(matrix.shape[1])
    base: Any
    if kind == "hnsw":
        base = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = ef_construction
    else:
        base = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(base)
    if len(ids):
        index.add_with_ids(matrix, ids)
    return index


def _next_version(root: Path) -> int:
    # Max over CURRENT and every file on disk, so numbers never repeat even after a crash
    # between writing files and flipping CURRENT.
    latest = current_version(root) or 0
    for name in os.listdir(root):
        match = _VERSION_FILE_RE.match(name)
        if match:
            latest = max(latest, int(match.group(1)))
    return latest + 1


def _atomic_write(final: Path, write: Any) -> None:
    tmp = final.with_name(f"{final.name}{_TMP_MARK}{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _save_array(path: Path, array: NDArray[Any]) -> None:
    # Through a file object: np.save would append ".npy" to the temporary name.
    with open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def _atomic_write_text(final: Path, text: str) -> None:
    _atomic_write(final, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _fsync_dir(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(root: Path, *, keep: int) -> None:
    """Delete all but the newest `keep` versions and leftovers of crashed builds.

    Called with the build lock held, so no temporary file belongs to a live writer.
    """
    by_version: dict[int, list[str]] = {}
    for name in os.listdir(root):
        if _TMP_MARK in name:
            with contextlib.suppress(FileNotFoundError):
                (root / name).unlink()
            continue
        match = _VERSION_FILE_RE.match(name)
        if match:
            by_version.setdefault(int(match.group(1)), []).append(name)
    current = current_version(root)
    newest = set(sorted(by_version, reverse=True)[:keep])
    for version, names in by_version.items():
        if version in newest or version == current:
            continue
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                (root / name).unlink()


# -- reading ----------------------------------------------------------------------------------


def _id_array(ids: Iterable[int] | None) -> NDArray[np.int64] | None:
    if ids is None:
        return None
    if isinstance(ids, np.ndarray):
        return np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
    return np.fromiter(ids, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class IndexSnapshot:
    """One loaded, immutable index version. Safe to search from many threads."""

    manifest: IndexManifest
    dense: Any  # faiss.IndexIDMap2; faiss ships no type stubs
    lexical: Bm25Index | None
    ef_search: int
    # Sorted ids of the chunks that open their document; None for an index built without them.
    opening: NDArray[np.int64] | None = None
    # Approved examples' questions as extra keys of their chunks; None without examples.
    memory: QuestionMemory | None = None
    # The BM25 vocabulary embedded (support.search.bridge); None for a version without one.
    bridge: VocabularyBridge | None = None

    @property
    def version(self) -> int:
        return self.manifest.version

    def __len__(self) -> int:
        return int(self.dense.ntotal)

    def search(
        self,
        query: NDArray[np.float32],
        k: int,
        *,
        allow_ids: Iterable[int] | None = None,
        deny_ids: Iterable[int] | None = None,
    ) -> list[DenseHit]:
        """Top `k` chunks by cosine similarity; ids outside `allow_ids` or in `deny_ids`
        are never returned (None means no restriction)."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if q.shape[1] != self.manifest.dimension:
            raise ValueError(
                f"query has dimension {q.shape[1]}, index has {self.manifest.dimension}"
            )
        total = len(self)
        if k <= 0 or total == 0:
            return []
        allow = _id_array(allow_ids)
        deny = _id_array(deny_ids)
        if allow is not None and deny is not None and len(deny):
            allow = np.setdiff1d(allow, deny)
            deny = None
        if allow is not None:
            if not len(allow):
                return []
            if self.manifest.kind == "hnsw" and len(allow) <= EXACT_FILTER_LIMIT:
                return self._exact_subset(q[0], allow, k)
        # Selectors stay referenced by these locals until the search returns (faiss does not
        # own them).
        selector: Any = None
        inner: Any = None
        if allow is not None:
            selector = faiss.IDSelectorBatch(allow)
        elif deny is not None and len(deny):
            inner = faiss.IDSelectorBatch(deny)
            selector = faiss.IDSelectorNot(inner)
        if self.manifest.kind != "hnsw":
            params = None if selector is None else _faiss.SearchParameters(sel=selector)
            return self._run(q, min(k, total), params)
        # A filtered graph walk can come back short when many nodes are excluded: widen the
        # beam until enough hits are found (bounded by the index size).
        wanted = min(k, total - (len(deny) if deny is not None else 0))
        ef = max(self.ef_search, k)
        while True:
            params = _faiss.SearchParametersHNSW(efSearch=ef)
            if selector is not None:
                params.sel = selector
            hits = self._run(q, min(k, total), params)
            if len(hits) >= wanted or selector is None or ef >= total:
                return hits
            ef = min(ef * 4, total)

    def _run(self, q: NDArray[np.float32], k: int, params: Any) -> list[DenseHit]:
        scores, labels = self.dense.search(q, k, params=params)
        found = labels[0] >= 0
        return [
            DenseHit(chunk_id=int(label), score=float(score), rank=rank)
            for rank, (score, label) in enumerate(
                zip(scores[0][found], labels[0][found], strict=True), start=1
            )
        ]

    def vectors(self, chunk_ids: Iterable[int]) -> NDArray[np.float32]:
        """Stored vectors of `chunk_ids`; every id must be in this snapshot."""
        keys = _id_array(chunk_ids)
        assert keys is not None
        if not len(keys):
            return np.zeros((0, self.manifest.dimension), dtype=np.float32)
        return np.asarray(self.dense.reconstruct_batch(keys), dtype=np.float32)

    def opens_document(self, chunk_ids: Sequence[int]) -> NDArray[np.bool_]:
        """Which of `chunk_ids` open their document (all False without opening ids)."""
        keys = np.asarray(chunk_ids, dtype=np.int64).reshape(-1)
        opening = self.opening
        if opening is None or not len(opening) or not len(keys):
            return np.zeros(len(keys), dtype=bool)
        where = np.minimum(np.searchsorted(opening, keys), len(opening) - 1)
        found: NDArray[np.bool_] = opening[where] == keys
        return found

    def scores(self, query: NDArray[np.float32], chunk_ids: Iterable[int]) -> NDArray[np.float32]:
        """Exact cosine similarity of `query` to each of `chunk_ids`."""
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        result: NDArray[np.float32] = self.vectors(chunk_ids) @ q
        return result

    def _exact_subset(
        self, query: NDArray[np.float32], allow: NDArray[np.int64], k: int
    ) -> list[DenseHit]:
        known = allow[np.isin(allow, self._all_ids())]
        if not len(known):
            return []
        sims = self.scores(query, known)
        top = np.lexsort((known, -sims))[:k]
        return [
            DenseHit(chunk_id=int(known[i]), score=float(sims[i]), rank=rank)
            for rank, i in enumerate(top, start=1)
        ]

    def contains(self, chunk_ids: NDArray[np.int64]) -> NDArray[np.bool_]:
        """Which of `chunk_ids` this snapshot holds."""
        found: NDArray[np.bool_] = np.isin(chunk_ids, self._all_ids())
        return found

    def _all_ids(self) -> NDArray[np.int64]:
        return np.asarray(faiss.vector_to_array(self.dense.id_map), dtype=np.int64)

    def ids(self) -> frozenset[int]:
        """Every chunk id in this version."""
        return frozenset(self._all_ids().tolist())


def load_snapshot(
    directory: str | os.PathLike[str],
    version: int,
    *,
    ef_search: int | None = None,
    load_lexical: bool = True,
    bm25_params: Bm25Params | None = None,
) -> IndexSnapshot:
    """Load one version fully into memory."""
    root = Path(directory)
    manifest = read_manifest(root, version)
    dense = faiss.read_index(str(root / manifest.index_file))
    lexical = None
    if load_lexical and manifest.lexical_file:
        lexical = Bm25Index.load(root / manifest.lexical_file, params=bm25_params)
    opening = None
    if manifest.opening_file:
        opening = np.load(root / manifest.opening_file, allow_pickle=False).astype(np.int64)
    memory = None
    if manifest.memory_file and manifest.memory_lexical_file:
        memory = QuestionMemory.load(
            root / manifest.memory_file, root / manifest.memory_lexical_file
        )
    bridge = None
    if manifest.bridge_file:
        bridge = VocabularyBridge.load(root / manifest.bridge_file)
    return IndexSnapshot(
        manifest=manifest,
        dense=dense,
        lexical=lexical,
        ef_search=ef_search or manifest.ef_search or DEFAULT_EF_SEARCH,
        opening=opening,
        memory=memory,
        bridge=bridge,
    )


_Stamp = tuple[int, int, int]


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    # os.replace gives CURRENT a new inode, so the inode alone detects a swap even when two
    # builds land within the filesystem's mtime granularity.
    return (st.st_ino, st.st_mtime_ns, st.st_size)


class IndexReader:
    """Serves the current index version of a directory, following `CURRENT` as it moves.

    Before each search one `stat` of `CURRENT` (about a microsecond) tells whether a newer
    version was published; if so one thread loads it while the others keep searching the
    snapshot they already have, then the reference is swapped. Snapshots are immutable, so
    a search that started on the old version finishes on it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        ef_search: int | None = None,
        load_lexical: bool = True,
        bm25_params: Bm25Params | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._ef_search = ef_search
        self._load_lexical = load_lexical
        self._bm25_params = bm25_params
        self._lock = threading.Lock()
        # (stamp of CURRENT when loaded, snapshot): one tuple so readers see a consistent pair.
        self._state: tuple[_Stamp | None, IndexSnapshot] | None = None

    @property
    def version(self) -> int | None:
        state = self._state
        return state[1].version if state else None

    def reset(self) -> None:
        """Forget the loaded snapshot (tests, or to free memory); the next search reloads."""
        with self._lock:
            self._state = None

    def snapshot(self) -> IndexSnapshot:
        """The newest published snapshot, loading it if `CURRENT` changed.

        Raises IndexNotReady before the first build.
        """
        pointer = self.directory / CURRENT_FILE
        stamp = _stamp(pointer)
        state = self._state
        if state is not None and (stamp == state[0] or stamp is None):
            return state[1]
        if state is not None:
            # Someone else is already loading the new version: keep serving the old one.
            if not self._lock.acquire(blocking=False):
                return state[1]
        else:
            self._lock.acquire()
        try:
            return self._reload()
        finally:
            self._lock.release()

    def _reload(self) -> IndexSnapshot:
        pointer = self.directory / CURRENT_FILE
        for _attempt in range(5):
            stamp = _stamp(pointer)
            state = self._state
            if state is not None and stamp == state[0]:
                return state[1]
            version = current_version(self.directory)
            if version is None:
                if state is not None:
                    return state[1]
                raise IndexNotReady(f"No search index has been built in {self.directory} yet")
            if state is not None and state[1].version == version:
                self._state = (stamp, state[1])
                return state[1]
            try:
                snapshot = load_snapshot(
                    self.directory,
                    version,
                    ef_search=self._ef_search,
                    load_lexical=self._load_lexical,
                    bm25_params=self._bm25_params,
                )
            except FileNotFoundError:
                # Pruned by a newer build between reading CURRENT and opening the files.
                continue
            except RuntimeError as exc:  # faiss reports a vanished file as RuntimeError
                if (self.directory / index_file_name(version)).exists():
                    raise
                del exc
                continue
            self._state = (stamp, snapshot)
            return snapshot
        raise IndexNotReady(f"The index in {self.directory} kept changing while loading")

    def search(
        self,
        query: NDArray[np.float32],
        k: int,
        *,
        allow_ids: Iterable[int] | None = None,
        deny_ids: Iterable[int] | None = None,
    ) -> list[DenseHit]:
        """Dense top-`k` on the newest snapshot; see IndexSnapshot.search."""
        return self.snapshot().search(query, k, allow_ids=allow_ids, deny_ids=deny_ids)
