"""Knowledge-base services: upload, ingest (parse, chunk, embed, store), enable/disable, delete,
and the index rebuild from the embeddings stored in the database."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Count, Max, QuerySet, Sum
from django.utils import timezone
from numpy.typing import NDArray

from . import jobs, webhooks
from .backends import get_retrieval_embedder
from .conf import SupportSettings, get_support_settings
from .exceptions import DocumentRejected
from .golden import gate
from .golden.questions import golden_active_exists
from .ingest.chunking import ChunkDraft, chunk, embedding_token_counter
from .ingest.detect import safe_filename, sniff
from .ingest.document import ParsedDocument
from .ingest.errors import IngestError, IngestErrorCode
from .ingest.sandbox import ParseLimits, parse_isolated
from .learning.grounding import groundings_relink
from .learning.memory import memory_build, memory_fingerprint
from .models import Chunk, KnowledgeDocument
from .search import index as search_index
from .search import retrievers
from .search.bridge import VocabularyBridge, bridge_build
from .search.embedder import Embedder
from .search.lexical import Bm25Index

logger = logging.getLogger(__name__)

# Documents whose chunks are embedded in one pass: about this many chunks (whole documents).
# Bounds memory and how much embedding work a worker that dies mid-group throws away.
INGEST_GROUP_CHUNKS = 512
# Texts per embedder call inside a pass, only so progress can be reported between calls.
EMBED_BLOCK = 256
# Documents per queued batch-ingestion task (documents_ingest_queue).
INGEST_TASK_DOCUMENTS = 32


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    document_id: int
    status: str
    chunk_count: int
    error: str
    seconds: float


def _checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def document_upload(
    *,
    filename: str,
    data: bytes,
    title: str = "",
    source_url: str = "",
    uploaded_by: Any = None,
    queue: bool = True,
) -> KnowledgeDocument:
    """Vet and store an uploaded file as a pending document; queue its ingestion on commit.

    Raises DocumentRejected (with a message for the uploader) for a bad name, an empty, oversize,
    unknown or mislabelled file, or a duplicate of an existing document.
    """
    conf = get_support_settings()
    try:
        name = safe_filename(filename)
        sniffed = sniff(data, name, max_bytes=conf.max_upload_bytes)
    except IngestError as exc:
        raise DocumentRejected(exc.message, code=str(exc.code)) from exc
    checksum = _checksum(data)
    with transaction.atomic():
        duplicate = KnowledgeDocument.objects.filter(checksum=checksum).first()
        if duplicate is not None:
            raise DocumentRejected(
                f"{name} duplicates document #{duplicate.pk} “{duplicate}” "
                f"(uploaded {duplicate.created_at:%Y-%m-%d}, status {duplicate.status}).",
                code="duplicate",
            )
        document = KnowledgeDocument(
            title=title[:300],
            original_filename=name,
            source_url=source_url,
            checksum=checksum,
            file_format=str(sniffed.file_type),
            size_bytes=len(data),
            uploaded_by=uploaded_by,
        )
        # Stored under a generated name (see models._document_upload_to), bytes untouched.
        document.file.save(name, ContentFile(data), save=False)
        document.save()
        if queue:
            jobs.document_ingest_enqueue(document_id=document.pk)
    return document


def _set_progress(document_ids: Sequence[int], progress: int) -> None:
    KnowledgeDocument.objects.filter(pk__in=document_ids).update(
        progress=progress, updated_at=timezone.now()
    )


@dataclass(slots=True)
class _Prepared:
    """A parsed and chunked document waiting for its embeddings."""

    document_id: int
    started: float
    parsed: ParsedDocument
    drafts: list[ChunkDraft]
    texts: list[str]


def document_ingest(
    *, document_id: int, rebuild_index: bool = True, progress: Callable[[int], None] | None = None
) -> IngestOutcome:
    """Parse, chunk and embed a document, then swap its chunks in one transaction.

    Never raises for bad content: the document ends FAILED with the reason. A worker that dies
    midway leaves the previous chunks untouched and the document re-runnable.
    """
    report = None if progress is None else (lambda _ids, pct: progress(pct))
    return _ingest([document_id], rebuild_index=rebuild_index, report=report)[0]


def documents_ingest(
    *, document_ids: Sequence[int], rebuild_index: bool = True
) -> list[IngestOutcome]:
    """`document_ingest` for many documents, embedding the chunks of several at once.

    Documents are parsed and chunked one by one, then the chunks of a group of them (about
    INGEST_GROUP_CHUNKS) are embedded in one length-sorted pass, which pads far less and runs
    fewer, fuller batches than one pass per document. Each document still fails alone and gets
    its chunks swapped in its own transaction. Returns one outcome per distinct id, in order.
    """
    return _ingest(list(dict.fromkeys(document_ids)), rebuild_index=rebuild_index, report=None)


def _ingest(
    document_ids: list[int],
    *,
    rebuild_index: bool,
    report: Callable[[Sequence[int], int], None] | None,
) -> list[IngestOutcome]:
    conf = get_support_settings()
    outcomes: dict[int, IngestOutcome] = {}
    group: list[_Prepared] = []
    pending_chunks = 0
    for document_id in document_ids:
        prepared = _prepare(document_id, conf)
        if isinstance(prepared, IngestOutcome):
            outcomes[document_id] = prepared
            continue
        group.append(prepared)
        pending_chunks += len(prepared.drafts)
        if pending_chunks >= INGEST_GROUP_CHUNKS:
            outcomes.update(_embed_and_store(group, report or _set_progress))
            group, pending_chunks = [], 0
    if group:
        outcomes.update(_embed_and_store(group, report or _set_progress))
    if rebuild_index and any(o.status == KnowledgeDocument.Status.READY for o in outcomes.values()):
        _queue_index_rebuild()
    return [outcomes[i] for i in document_ids]


def _prepare(document_id: int, conf: SupportSettings) -> _Prepared | IngestOutcome:
    """Mark a document PROCESSING, then parse and chunk it (FAILED outcome on bad content)."""
    started = time.perf_counter()
    doc = KnowledgeDocument.objects.filter(pk=document_id).first()
    if doc is None or doc.status == KnowledgeDocument.Status.DISABLED:
        status = "missing" if doc is None else doc.status
        return IngestOutcome(document_id, status, doc.chunk_count if doc else 0, "", 0.0)
    KnowledgeDocument.objects.filter(pk=document_id).update(
        status=KnowledgeDocument.Status.PROCESSING, progress=0, error="", updated_at=timezone.now()
    )
    try:
        with doc.file.open("rb") as fh:
            data = fh.read()
        # PDF and DOCX in a child process: a hostile file fails the document, not the worker.
        parsed = parse_isolated(
            data,
            doc.original_filename,
            max_bytes=conf.max_upload_bytes,
            limits=ParseLimits(conf.parse_timeout_s, conf.parse_memory_mb * 1024 * 1024),
        )
        drafts = chunk(
            parsed,
            count_tokens=embedding_token_counter(),
            max_tokens=conf.chunk_tokens,
            overlap_tokens=min(conf.chunk_overlap_tokens, conf.chunk_tokens // 2),
        )
        if not drafts:
            raise IngestError(
                IngestErrorCode.NO_TEXT, f"{doc.original_filename} has no extractable text."
            )
    except IngestError as exc:
        return _fail(document_id, exc.message, started)
    except Exception as exc:
        logger.exception("Ingesting document %s failed", document_id)
        return _fail(document_id, f"Internal error while processing: {type(exc).__name__}", started)
    texts = [_embedding_text(parsed.title, d.heading_path, d.text) for d in drafts]
    return _Prepared(document_id, started, parsed, drafts, texts)


def _embed_and_store(
    group: list[_Prepared], report: Callable[[Sequence[int], int], None]
) -> dict[int, IngestOutcome]:
    embedder = get_retrieval_embedder()
    ids = [p.document_id for p in group]
    try:
        report(ids, 10)
        matrix = _encode(
            embedder, [t for p in group for t in p.texts], lambda pct: report(ids, pct)
        )
    except Exception as exc:
        if len(group) > 1:
            # Whatever broke the shared pass, find the document it belongs to: one at a time.
            outcomes: dict[int, IngestOutcome] = {}
            for p in group:
                outcomes.update(_embed_and_store([p], report))
            return outcomes
        logger.exception("Embedding document %s failed", ids[0])
        message = f"Internal error while processing: {type(exc).__name__}"
        return {ids[0]: _fail(ids[0], message, group[0].started)}
    outcomes = {}
    start = 0
    for p in group:
        vectors = matrix[start : start + len(p.drafts)]
        start += len(p.drafts)
        try:
            outcomes[p.document_id] = _store(p, vectors, embedder.model_name)
        except Exception as exc:
            logger.exception("Storing the chunks of document %s failed", p.document_id)
            message = f"Internal error while storing: {type(exc).__name__}"
            outcomes[p.document_id] = _fail(p.document_id, message, p.started)
    return outcomes


def _encode(
    embedder: Embedder, texts: list[str], report: Callable[[int], None]
) -> NDArray[np.float32]:
    """Embed `texts` longest first in blocks of EMBED_BLOCK (for progress reports), in the
    caller's order. Sorted once over all texts, the blocks form exactly the batches one
    encode call over everything would; blocks that each re-sorted themselves would not."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    blocks = []
    for start in range(0, len(order), EMBED_BLOCK):
        part = order[start : start + EMBED_BLOCK]
        blocks.append(embedder.encode([texts[i] for i in part]))
        report(10 + int(85 * min(len(order), start + EMBED_BLOCK) / len(order)))
    matrix = np.empty((len(texts), blocks[0].shape[1]), dtype="<f4")
    matrix[order] = np.vstack(blocks)
    return matrix


def _store(p: _Prepared, vectors: NDArray[np.float32], model_name: str) -> IngestOutcome:
    """Swap the document's chunks for the new ones in one transaction."""
    document_id = p.document_id
    with transaction.atomic():
        locked = KnowledgeDocument.objects.select_for_update().filter(pk=document_id).first()
        if locked is None:
            return IngestOutcome(document_id, "missing", 0, "", time.perf_counter() - p.started)
        if locked.status == KnowledgeDocument.Status.DISABLED:
            # Disabled while we worked: keep the new chunks, stay disabled.
            final_status = KnowledgeDocument.Status.DISABLED
        else:
            final_status = KnowledgeDocument.Status.READY
        Chunk.objects.filter(document_id=document_id).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(
                    document_id=document_id,
                    order=d.order,
                    text=d.text,
                    heading_path=list(d.heading_path),
                    page=d.page,
                    anchor=(d.anchor or "")[:200],
                    token_count=d.token_count,
                    embedding=vectors[i].tobytes(),
                    embedding_model=model_name,
                )
                for i, d in enumerate(p.drafts)
            ],
            batch_size=500,
        )
        # Examples grounded on the old chunks follow them to the new rows (new primary keys).
        groundings_relink(document_id=document_id)
        locked.status = final_status
        locked.progress = 100
        locked.chunk_count = len(p.drafts)
        locked.error = "\n".join(p.parsed.warnings)[:2000]
        locked.indexed_at = timezone.now()
        if not locked.title:
            locked.title = p.parsed.title[:300]
        locked.save()
        if final_status == KnowledgeDocument.Status.READY:
            webhooks.document_event(document_id)
    return IngestOutcome(
        document_id, final_status, len(p.drafts), "", time.perf_counter() - p.started
    )


def _embedding_text(title: str, heading_path: tuple[str, ...], text: str) -> str:
    # The title and section give short chunks the context a question refers to.
    parts = [title] if title else []
    parts += [h for h in heading_path if h and h != title]
    return f"{' › '.join(parts)}\n{text}" if parts else text


def _fail(document_id: int, message: str, started: float) -> IngestOutcome:
    with transaction.atomic():
        KnowledgeDocument.objects.filter(pk=document_id).update(
            status=KnowledgeDocument.Status.FAILED,
            error=message,
            progress=0,
            updated_at=timezone.now(),
        )
        webhooks.document_event(document_id)
    return IngestOutcome(document_id, "failed", 0, message, time.perf_counter() - started)


def _queue_index_rebuild() -> None:
    jobs.index_rebuild_enqueue()


def _removal_gated(doc: KnowledgeDocument) -> bool:
    # Only a document in the index changes what is served; with golden questions its removal
    # waits for them (support.golden.gate).
    return (
        doc.status == KnowledgeDocument.Status.READY
        and doc.chunk_count > 0
        and golden_active_exists()
    )


@transaction.atomic
def document_set_enabled(*, document_id: int, enabled: bool) -> KnowledgeDocument:
    """Disable (never retrieved again) or re-enable a document; rebuilds the index on commit.

    With golden questions, disabling an indexed document only marks it (`pending_removal`):
    it is served until the index without it passes the gate. Enabling cancels a pending
    removal."""
    doc = KnowledgeDocument.objects.select_for_update().get(pk=document_id)
    if enabled and doc.pending_removal:
        doc.pending_removal = ""
        doc.save(update_fields=["pending_removal", "updated_at"])
    if enabled and doc.status == KnowledgeDocument.Status.DISABLED:
        doc.status = (
            KnowledgeDocument.Status.READY if doc.chunk_count else KnowledgeDocument.Status.PENDING
        )
        doc.save(update_fields=["status", "updated_at"])
        if doc.status == KnowledgeDocument.Status.PENDING:
            jobs.document_ingest_enqueue(document_id=doc.pk)
    elif not enabled and doc.status != KnowledgeDocument.Status.DISABLED:
        if _removal_gated(doc):
            if not doc.pending_removal:
                doc.pending_removal = KnowledgeDocument.Removal.DISABLE
                doc.save(update_fields=["pending_removal", "updated_at"])
        else:
            doc.status = KnowledgeDocument.Status.DISABLED
            doc.pending_removal = ""
            doc.save(update_fields=["status", "pending_removal", "updated_at"])
    _queue_index_rebuild()
    return doc


@transaction.atomic
def document_reindex(*, document_id: int) -> KnowledgeDocument:
    """Queue a fresh parse/chunk/embed of a document (after a failure or a settings change)."""
    doc = KnowledgeDocument.objects.select_for_update().get(pk=document_id)
    if doc.status != KnowledgeDocument.Status.DISABLED:
        doc.status = KnowledgeDocument.Status.PENDING
        doc.progress = 0
        doc.save(update_fields=["status", "progress", "updated_at"])
    jobs.document_ingest_enqueue(document_id=doc.pk)
    return doc


@transaction.atomic
def documents_reindex(*, document_ids: Sequence[int]) -> int:
    """`document_reindex` for many documents, queued as batch-ingestion tasks; returns how many
    documents were queued."""
    ids = list(dict.fromkeys(document_ids))
    KnowledgeDocument.objects.filter(pk__in=ids).exclude(
        status=KnowledgeDocument.Status.DISABLED
    ).update(status=KnowledgeDocument.Status.PENDING, progress=0, updated_at=timezone.now())
    documents_ingest_queue(document_ids=ids)
    return len(ids)


def documents_ingest_queue(*, document_ids: Sequence[int]) -> None:
    """Queue the ingestion of uploaded documents on commit, INGEST_TASK_DOCUMENTS per task, so
    a bulk upload is embedded in large batches (see `documents_ingest`)."""
    ids = list(dict.fromkeys(document_ids))
    for start in range(0, len(ids), INGEST_TASK_DOCUMENTS):
        jobs.documents_ingest_enqueue(document_ids=ids[start : start + INGEST_TASK_DOCUMENTS])


def document_delete(*, document_id: int) -> bool:
    """Delete a document, its chunks and its stored file; its chunks leave the index on commit.

    With golden questions an indexed document is only marked for deletion (`pending_removal`)
    and deleted once the index without it passes the gate: returns False then, True when it
    was deleted (or did not exist)."""
    with transaction.atomic():
        doc = KnowledgeDocument.objects.select_for_update().filter(pk=document_id).first()
        if doc is None:
            return True
        if _removal_gated(doc):
            doc.pending_removal = KnowledgeDocument.Removal.DELETE
            doc.save(update_fields=["pending_removal", "updated_at"])
            _queue_index_rebuild()
            return False
        _document_delete_now(doc)
        _queue_index_rebuild()
    return True


def _document_delete_now(doc: KnowledgeDocument) -> None:
    storage, name = doc.file.storage, doc.file.name
    doc.delete()
    if name:
        transaction.on_commit(lambda: storage.delete(name))


def _removals_apply(document_ids: Sequence[int]) -> None:
    """Apply the pending removals a just-published version was built without."""
    if not document_ids:
        return
    with transaction.atomic():
        for doc in KnowledgeDocument.objects.select_for_update().filter(pk__in=list(document_ids)):
            if doc.pending_removal == KnowledgeDocument.Removal.DELETE:
                _document_delete_now(doc)
            elif doc.pending_removal == KnowledgeDocument.Removal.DISABLE:
                doc.status = KnowledgeDocument.Status.DISABLED
                doc.pending_removal = ""
                doc.save(update_fields=["status", "pending_removal", "updated_at"])


@dataclass(frozen=True, slots=True)
class IndexBuildResult:
    version: int  # the version served after the call
    chunks: int
    seconds: float
    memory_keys: int = 0  # questions of approved examples in the version's question memory
    # A new version waits for a decision (support.golden.gate): `version` is the old one.
    held: bool = False
    report_id: int | None = None


def _indexable_chunks() -> QuerySet[Chunk]:
    # A document whose removal is pending is served but left out of the next version.
    return Chunk.objects.filter(
        document__status=KnowledgeDocument.Status.READY,
        document__pending_removal="",
        embedding__isnull=False,
    )


def _chunks_fingerprint() -> str:
    agg = _indexable_chunks().aggregate(n=Count("pk"), top=Max("pk"), total=Sum("pk"))
    # The suffix names what a build writes; a new one makes the first rebuild after an upgrade
    # run even on unchanged chunks ("o": with opening-chunk ids; then the specialised model the
    # vectors come from, so a promotion or rollback is caught up with by index_sync).
    model = retrievers.current(get_support_settings().retrievers_dir)
    suffix = f":{model.label}" if model is not None else ""
    return f"{agg['n']}:{agg['top']}:{agg['total']}:o{suffix}"


def _fingerprint() -> str:
    """What an index version is built from: the indexable chunks and the question memory."""
    return f"{_chunks_fingerprint()}|m:{memory_fingerprint()}"


def index_sync() -> IndexBuildResult | None:
    """Rebuild this machine's index if it does not match the database; None when it does.

    Web and worker processes on one machine share SUPPORT_DATA_DIR and see every published
    version. A worker on another machine (no shared disk) has only what it built itself: this
    check, run periodically by every serving process (`index_sync_loop_start`), lets it catch up
    from the embeddings stored in the database, and with the question memory of the approved
    examples. Cheap when nothing changed: one aggregate query, one read of the training
    examples' grounding rows (ids and times) and a manifest read.
    """
    conf = get_support_settings()
    current = search_index.current_version(conf.index_dir)
    if current is not None:
        manifest = search_index.read_manifest(conf.index_dir, current)
        if manifest.metadata.get("fingerprint") == _fingerprint():
            return None
    result = index_rebuild()
    if result.held:
        return None  # behind the database on purpose: the change waits for a decision
    logger.info("index on this machine was behind the database: built version %s", result.version)
    return result


_sync_loop_lock = threading.Lock()
_sync_loop: threading.Thread | None = None
_sync_loop_stop = threading.Event()


def index_sync_loop_start() -> bool:
    """Keep this process's machine in step with the database: `index_sync` every
    SUPPORT_INDEX_SYNC_INTERVAL_S in a daemon thread (once per process; False when off or
    already running). Called where a serving process starts (a Celery worker process, the
    embedded mode), so searches never start a write and no customer waits for a rebuild."""
    global _sync_loop
    interval = get_support_settings().index_sync_interval_s
    with _sync_loop_lock:
        if not interval or (_sync_loop is not None and _sync_loop.is_alive()):
            return False
        _sync_loop_stop.clear()

        def run() -> None:
            while not _sync_loop_stop.is_set():
                try:
                    index_sync()
                except Exception:
                    logger.exception("index sync failed; searches keep the current version")
                finally:
                    connection.close()  # this thread's own database connection
                _sync_loop_stop.wait(interval)

        _sync_loop = threading.Thread(target=run, name="index-sync", daemon=True)
        _sync_loop.start()
    return True


def index_sync_loop_stop(timeout: float = 5.0) -> None:
    """Stop the background check (tests; a process shutting down)."""
    global _sync_loop
    with _sync_loop_lock:
        loop, _sync_loop = _sync_loop, None
        _sync_loop_stop.set()
    if loop is not None:
        loop.join(timeout)


# A rebuild waits at most this long for another one on this machine (gate included).
GATE_LOCK_TIMEOUT_S = 300


def index_rebuild(*, force: bool = False) -> IndexBuildResult:
    """Build a new index version from the stored embeddings of every READY document.

    The version carries the question memory of the approved examples (docs/learning.md).
    Written to new files and published atomically; serving processes switch before their next
    search. Disabled and failed documents are left out, and so are those whose removal is
    pending. Skipped (returning the current version) when the indexable chunks and the memory's
    examples are unchanged since the current version, so a burst of queued rebuilds after a
    bulk upload costs one build. When only the examples changed (one approved, rejected or
    edited), the new version shares the chunks' files with the current one and only the memory
    is built. When the chunks changed and golden questions are active, the new version is
    staged first and published only if it passes the gate (support.golden.gate); a held
    version leaves the current one served (`held`). Pending removals are applied once the
    version without them is published.
    """
    started = time.perf_counter()
    conf = get_support_settings()
    root = conf.index_dir
    root.mkdir(parents=True, exist_ok=True)
    # One change at a time on this machine: a second rebuild waits, then finds the first's
    # result (published, or held) and has nothing left to do.
    with search_index.build_lock(
        root, timeout=GATE_LOCK_TIMEOUT_S, name=search_index.GATE_LOCK_FILE
    ):
        chunks_fingerprint = _chunks_fingerprint()
        fingerprint = f"{chunks_fingerprint}|m:{memory_fingerprint()}"
        metadata = {"fingerprint": fingerprint, "chunks": chunks_fingerprint}
        current = search_index.current_version(root)
        if current is not None and not force:
            manifest = search_index.read_manifest(root, current)
            if manifest.metadata.get("fingerprint") == fingerprint:
                return IndexBuildResult(
                    current, manifest.count, time.perf_counter() - started, manifest.memory_keys
                )
            if manifest.metadata.get("chunks") == chunks_fingerprint:
                # Only the examples changed: a learned change, not one of the knowledge base.
                indexed = set(_indexable_chunks().values_list("pk", flat=True))
                memory = memory_build(indexed_chunk_ids=indexed, index_dir=root)
                version = search_index.republish(
                    root, current, memory=memory, metadata=metadata, lock_timeout=120
                )
                keys = len(memory) if memory is not None else 0
                return IndexBuildResult(
                    version, manifest.count, time.perf_counter() - started, keys
                )
        prior = gate.kb_change_prior(fingerprint=fingerprint)
        if current is not None and prior.verdict == "held":
            held = search_index.read_manifest(root, current)
            return IndexBuildResult(
                current,
                held.count,
                time.perf_counter() - started,
                held.memory_keys,
                held=True,
                report_id=prior.report.pk if prior.report else None,
            )
        # The removals this version is built without; applied once it is published, unless
        # a held change is only being served where no index existed yet (a new machine).
        removal_ids = (
            []
            if prior.verdict == "held"
            else list(
                KnowledgeDocument.objects.exclude(pending_removal="").values_list("pk", flat=True)
            )
        )
        gated = current is not None and prior.verdict == "evaluate" and golden_active_exists()
        staged = _approved_staged(root, prior, fingerprint)
        if staged is not None:
            # Published anyway (or approved elsewhere): the held version itself, if still here.
            search_index.publish(root, staged.version, lock_timeout=120)
            version, chunks, keys = staged.version, staged.count, staged.memory_keys
        else:
            version, chunks, keys = _index_build(metadata, publish=not gated)
        if gated:
            assert current is not None
            outcome = gate.kb_change_gate(
                staged_version=version,
                published_version=current,
                fingerprint=fingerprint,
                removal_ids=removal_ids,
            )
            if not outcome.publish:
                served = search_index.read_manifest(root, current)
                return IndexBuildResult(
                    current,
                    served.count,
                    time.perf_counter() - started,
                    served.memory_keys,
                    held=True,
                    report_id=outcome.report.pk if outcome.report else None,
                )
            search_index.publish(root, version, lock_timeout=120)
        _removals_apply(removal_ids)
    return IndexBuildResult(version, chunks, time.perf_counter() - started, keys)


def _approved_staged(
    root: Path, prior: gate.KbPrior, fingerprint: str
) -> search_index.IndexManifest | None:
    """The staged version of an approved report when it is on this disk, built from exactly
    this database state."""
    if prior.verdict != "approved" or prior.report is None or prior.report.after_version is None:
        return None
    version = prior.report.after_version
    if not search_index.staged_exists(root, version):
        return None
    manifest = search_index.read_manifest(root, version)
    return manifest if manifest.metadata.get("fingerprint") == fingerprint else None


def _index_build(metadata: dict[str, str], *, publish: bool) -> tuple[int, int, int]:
    """Write a new version from the indexable chunks and the question memory (published, or
    only staged); returns its number, chunk count and memory keys."""
    conf = get_support_settings()
    rows = list(
        _indexable_chunks()
        .order_by("pk")
        .values_list(
            "pk", "embedding", "text", "heading_path", "document__title", "order", "embedding_model"
        )
    )
    embedder = get_retrieval_embedder()
    model = retrievers.current(conf.retrievers_dir)
    rows = _reembed_stale(rows, embedder, model)
    # Which model made these vectors: searches embed their query with it.
    metadata = {
        **metadata,
        "embedding_model": model.label if model is not None else embedder.model_name,
    }
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    dim = embedder.dimension
    if rows:
        vectors = np.frombuffer(
            b"".join(bytes(cast(bytes, r[1])) for r in rows), dtype="<f4"
        ).reshape(len(rows), -1)
    else:
        vectors = np.zeros((0, dim), dtype=np.float32)
    texts = [_lexical_text(r[4], r[3], r[2]) for r in rows]
    memory = memory_build(
        indexed_chunk_ids=set(ids.tolist()), index_dir=conf.index_dir, embedder=embedder
    )
    version = search_index.build(
        conf.index_dir,
        ids,
        np.ascontiguousarray(vectors, dtype=np.float32),
        texts=texts,
        opening_ids=[r[0] for r in rows if r[5] == 0],
        hnsw_threshold=conf.hnsw_threshold,
        metadata=metadata,
        memory=memory,
        bridge=_bridge_factory(embedder, metadata["embedding_model"], conf),
        lock_timeout=120,
        publish=publish,
    )
    keys = len(memory) if memory is not None else 0
    return version, len(rows), keys


def _bridge_factory(
    embedder: Embedder, model: str, conf: SupportSettings
) -> Callable[[Bm25Index], VocabularyBridge | None] | None:
    """What embeds a new version's vocabulary (support.search.bridge), reusing the served
    version's vectors of the terms it already had; None when the bridge is off
    (SUPPORT_BRIDGE) or SUPPORT_BRIDGE_VOCABULARY is 0."""
    if not conf.bridge or conf.bridge_vocabulary <= 0:
        return None

    def build(lexical: Bm25Index) -> VocabularyBridge | None:
        return bridge_build(
            lexical,
            embedder.encode,
            model=model,
            limit=conf.bridge_vocabulary,
            previous=_served_bridge(conf.index_dir),
        )

    return build


def _served_bridge(root: Path) -> VocabularyBridge | None:
    current = search_index.current_version(root)
    if current is None:
        return None
    try:
        manifest = search_index.read_manifest(root, current)
        if not manifest.bridge_file:
            return None
        return VocabularyBridge.load(root / manifest.bridge_file)
    except (FileNotFoundError, ValueError):
        return None  # pruned meanwhile, or another format: embed everything again


_Row = tuple[Any, ...]


def _reembed_stale(
    rows: list[_Row], embedder: Embedder, model: retrievers.RetrieverModel | None
) -> list[_Row]:
    """Embed again, and store, the chunks whose vectors another model made than the one in use.

    Only a specialised model's promotion or rollback makes such chunks (a document ingested
    while it happened): with a specialised model in use, every chunk not made by it; with the
    shipped model, every chunk made by a specialised one. Labels of the shipped model are not
    compared, so nothing is re-embedded on installations that never specialised.
    """

    def stale(label: str) -> bool:
        return label != model.label if model is not None else retrievers.is_specialised_label(label)

    todo = [i for i, r in enumerate(rows) if stale(r[6] or "")]
    if not todo:
        return rows
    texts = [_embedding_text(rows[i][4] or "", tuple(rows[i][3] or ()), rows[i][2]) for i in todo]
    vectors = _encode(embedder, texts, lambda _pct: None)
    label = embedder.model_name
    out = list(rows)
    updates = []
    for j, i in enumerate(todo):
        blob = vectors[j].tobytes()
        out[i] = (*rows[i][:1], blob, *rows[i][2:6], label)
        updates.append(Chunk(pk=rows[i][0], embedding=blob, embedding_model=label))
    Chunk.objects.bulk_update(updates, ["embedding", "embedding_model"], batch_size=500)
    logger.info("re-embedded %d chunk(s) made by another model with %s", len(todo), label)
    return out


def _lexical_text(title: str | None, heading_path: Sequence[str] | None, text: str) -> str:
    # BM25 sees the title and headings too: product names often live there.
    return " ".join([title or "", " ".join(heading_path or []), text])


@dataclass(frozen=True, slots=True)
class IndexInputs:
    """What an index version is built from, except the vectors (learning.specialise embeds
    these texts with another model and builds a staged version of its own)."""

    ids: list[int]
    embedding_texts: list[str]  # as ingestion embeds them (title and headings first)
    lexical_texts: list[str]
    opening_ids: list[int]


def index_inputs() -> IndexInputs:
    """The chunks of every READY document, in index order, with their texts."""
    rows = list(
        _indexable_chunks()
        .order_by("pk")
        .values_list("pk", "text", "heading_path", "document__title", "order")
    )
    return IndexInputs(
        ids=[r[0] for r in rows],
        embedding_texts=[_embedding_text(r[3] or "", tuple(r[2] or ()), r[1]) for r in rows],
        lexical_texts=[_lexical_text(r[3], r[2], r[1]) for r in rows],
        opening_ids=[r[0] for r in rows if r[4] == 0],
    )


def chunk_embeddings_store(
    *, chunk_ids: Sequence[int], vectors: NDArray[np.float32], model_name: str
) -> int:
    """Replace the stored embeddings of the chunks that still exist; returns how many.

    A chunk re-ingested meanwhile has a new primary key and is not touched: the next
    `index_rebuild` embeds it with the model in use (`_reembed_stale`).
    """
    existing = set(Chunk.objects.filter(pk__in=list(chunk_ids)).values_list("pk", flat=True))
    updates = [
        Chunk(
            pk=cid,
            embedding=np.ascontiguousarray(vectors[i], dtype="<f4").tobytes(),
            embedding_model=model_name,
        )
        for i, cid in enumerate(chunk_ids)
        if cid in existing
    ]
    with transaction.atomic():
        Chunk.objects.bulk_update(updates, ["embedding", "embedding_model"], batch_size=500)
    return len(updates)


def index_publish_model() -> IndexBuildResult:
    """Build and publish a new index version from the stored embeddings after the retriever
    model changed (a promotion or rollback by learning.specialise, which ran its own gate):
    not held by the knowledge-base gate. Under the same lock as `index_rebuild`."""
    started = time.perf_counter()
    root = get_support_settings().index_dir
    root.mkdir(parents=True, exist_ok=True)
    with search_index.build_lock(
        root, timeout=GATE_LOCK_TIMEOUT_S, name=search_index.GATE_LOCK_FILE
    ):
        chunks_fingerprint = _chunks_fingerprint()
        metadata = {
            "fingerprint": f"{chunks_fingerprint}|m:{memory_fingerprint()}",
            "chunks": chunks_fingerprint,
        }
        version, chunks, keys = _index_build(metadata, publish=True)
    return IndexBuildResult(version, chunks, time.perf_counter() - started, keys)
