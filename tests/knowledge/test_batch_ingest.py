"""Bulk ingestion: the chunks of many documents embedded together, each document stored alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from support import backends, knowledge
from support.models import Chunk, KnowledgeDocument

pytestmark = pytest.mark.django_db(transaction=True)


def _page(n: int) -> bytes:
    return (
        f"# Topic {n}\n\n## Section\n\nArticle {n} explains how to renew permit {n} online.\n"
    ).encode()


def _uploads(count: int, *, first: int = 0) -> list[int]:
    return [
        knowledge.document_upload(filename=f"page{i}.md", data=_page(i), queue=False).pk
        for i in range(first, first + count)
    ]


class Recording:
    """The real embedder, recording each call's size; texts holding `poison` raise."""

    def __init__(self, inner: Any, poison: str | None = None) -> None:
        self.inner = inner
        self.poison = poison
        self.calls: list[int] = []
        self.model_name = inner.model_name
        self.dimension = inner.dimension

    def encode(self, texts: Sequence[str], **kwargs: Any) -> Any:
        if self.poison and any(self.poison in t for t in texts):
            raise RuntimeError("tokenizer blew up")
        self.calls.append(len(texts))
        return self.inner.encode(texts, **kwargs)

    def encode_query(self, text: str) -> Any:
        return self.inner.encode_query(text)


def test_chunks_of_many_documents_are_embedded_in_one_pass(
    kb_env: Path, real_embedder: Any
) -> None:
    ids = _uploads(5)
    recording = Recording(real_embedder)
    backends.set_backend("embedder", recording)
    outcomes = knowledge.documents_ingest(document_ids=ids, rebuild_index=False)
    assert [o.document_id for o in outcomes] == ids
    assert {o.status for o in outcomes} == {"ready"}
    assert recording.calls == [sum(o.chunk_count for o in outcomes)]
    # Each document got its own vectors: the same as embedding it alone.
    for doc_id in ids:
        chunk = Chunk.objects.filter(document_id=doc_id).get()
        alone = real_embedder.encode(
            [
                knowledge._embedding_text(
                    KnowledgeDocument.objects.get(pk=doc_id).title,
                    tuple(chunk.heading_path),
                    chunk.text,
                )
            ]
        )[0]
        stored = np.frombuffer(bytes(chunk.embedding), dtype="<f4")
        assert float(stored @ alone) > 0.999


def test_a_bad_document_in_a_batch_fails_alone(kb_env: Path) -> None:
    ids = _uploads(2)
    bad = knowledge.document_upload(
        filename="broken.pdf", data=b"%PDF-1.4\n1 0 obj garbage that is not a pdf\n", queue=False
    ).pk
    ids.insert(1, bad)
    ids += _uploads(2, first=2)
    outcomes = {o.document_id: o for o in knowledge.documents_ingest(document_ids=ids)}
    assert outcomes[bad].status == "failed" and outcomes[bad].error
    assert KnowledgeDocument.objects.get(pk=bad).status == "failed"
    good = [i for i in ids if i != bad]
    assert all(outcomes[i].status == "ready" for i in good)
    assert set(KnowledgeDocument.objects.filter(pk__in=good).values_list("status", flat=True)) == {
        "ready"
    }
    assert not Chunk.objects.filter(document_id=bad).exists()


def test_an_embedding_failure_is_traced_to_its_document(kb_env: Path, real_embedder: Any) -> None:
    ids = _uploads(4)
    backends.set_backend("embedder", Recording(real_embedder, poison="permit 2"))
    outcomes = {o.document_id: o for o in knowledge.documents_ingest(document_ids=ids)}
    assert outcomes[ids[2]].status == "failed"
    assert "Internal error" in KnowledgeDocument.objects.get(pk=ids[2]).error
    assert [outcomes[i].status for i in (ids[0], ids[1], ids[3])] == ["ready"] * 3


class WorkerKilled(BaseException):
    """Stands in for the process dying (nothing catches a BaseException on the way out)."""


def test_a_worker_dying_mid_batch_leaves_no_half_indexed_document(
    kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _uploads(3)
    knowledge.documents_ingest(document_ids=ids, rebuild_index=False)
    before = {
        i: list(Chunk.objects.filter(document_id=i).values_list("pk", flat=True)) for i in ids
    }
    original = Chunk.objects.bulk_create
    written: list[int] = []

    def dies_on_the_second(objs: list[Chunk], *args: Any, **kwargs: Any) -> Any:
        if written:
            raise WorkerKilled
        written.append(objs[0].document_id)
        return original(objs, *args, **kwargs)

    monkeypatch.setattr(Chunk.objects, "bulk_create", dies_on_the_second)
    with pytest.raises(WorkerKilled):
        knowledge.documents_ingest(document_ids=ids, rebuild_index=False)
    monkeypatch.undo()
    # The first document was swapped completely, the second not at all (its transaction rolled
    # back: old chunks intact), the third never reached: both re-runnable.
    assert (
        list(Chunk.objects.filter(document_id=ids[0]).values_list("pk", flat=True))
        != (before[ids[0]])
    )
    assert (
        list(Chunk.objects.filter(document_id=ids[1]).values_list("pk", flat=True))
        == (before[ids[1]])
    )
    statuses = dict(KnowledgeDocument.objects.values_list("pk", "status"))
    assert statuses[ids[0]] == "ready"
    assert statuses[ids[1]] == "processing"
    outcomes = knowledge.documents_ingest(document_ids=ids, rebuild_index=False)
    assert [o.status for o in outcomes] == ["ready"] * 3
    assert all(Chunk.objects.filter(document_id=i).count() == 1 for i in ids)


def test_groups_are_bounded_by_chunk_count(
    kb_env: Path, real_embedder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(knowledge, "INGEST_GROUP_CHUNKS", 2)
    ids = _uploads(5)
    recording = Recording(real_embedder)
    backends.set_backend("embedder", recording)
    outcomes = knowledge.documents_ingest(document_ids=ids + ids[:1], rebuild_index=False)
    assert len(outcomes) == 5 and {o.status for o in outcomes} == {"ready"}
    assert recording.calls == [2, 2, 1]


def test_queued_bulk_upload_ingests_in_batch_tasks(
    kb_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from support import tasks

    monkeypatch.setattr(knowledge, "INGEST_TASK_DOCUMENTS", 2)
    batches: list[list[int]] = []
    original = tasks.documents_ingest_task.run

    def spy(*, document_ids: list[int]) -> list[str]:
        batches.append(list(document_ids))
        return original(document_ids=document_ids)

    monkeypatch.setattr(tasks.documents_ingest_task, "run", spy)
    ids = _uploads(3)
    with django_capture_on_commit_callbacks(execute=True):
        knowledge.documents_ingest_queue(document_ids=ids)
    assert batches == [ids[:2], ids[2:]]
    assert set(KnowledgeDocument.objects.values_list("status", flat=True)) == {"ready"}


def test_reindex_many_marks_pending_and_reingests(
    kb_env: Path, django_capture_on_commit_callbacks: Any
) -> None:
    ids = _uploads(3)
    knowledge.documents_ingest(document_ids=ids, rebuild_index=False)
    knowledge.document_set_enabled(document_id=ids[2], enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert knowledge.documents_reindex(document_ids=ids) == 3
    statuses = dict(KnowledgeDocument.objects.values_list("pk", "status"))
    assert [statuses[i] for i in ids] == ["ready", "ready", "disabled"]
