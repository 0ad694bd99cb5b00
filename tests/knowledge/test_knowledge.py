"""Knowledge-base services end to end: real parsers, real embedder, real FAISS index."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from support import knowledge
from support.exceptions import DocumentRejected
from support.models import Chunk, KnowledgeDocument
from support.retrieval import passages_search
from support.search import index as search_index
from tests.factories import agent_user, knowledge_admin_user

pytestmark = pytest.mark.django_db(transaction=True)

ROUTER_MD = b"""# Router guide

## Reset

Hold the reset button on the back for 10 seconds until the light blinks orange.

## Error codes

Error ERR-4032 means the fibre line is down; we fix it remotely within 4 hours.
"""

BILLING_MD = b"""# Billing

## Refunds

Refunds are paid back to the original card within 14 days of the cancellation.
"""


def _upload(name: str, data: bytes) -> KnowledgeDocument:
    doc = knowledge.document_upload(filename=name, data=data, queue=False)
    outcome = knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
    knowledge.index_rebuild()
    doc.refresh_from_db()
    assert outcome.status == doc.status
    return doc


def test_ingest_stores_chunks_with_embeddings_and_headings(kb_env: Path) -> None:
    doc = _upload("router.md", ROUTER_MD)
    assert doc.status == "ready" and doc.progress == 100
    assert doc.title == "Router guide"
    chunks = list(doc.chunks.order_by("order"))
    assert doc.chunk_count == len(chunks) >= 2
    assert [c.heading_path for c in chunks][:2] == [
        ["Router guide", "Reset"],
        ["Router guide", "Error codes"],
    ]
    assert all(len(bytes(c.embedding)) == 384 * 4 for c in chunks)
    # The original file is kept exactly as uploaded.
    with doc.file.open("rb") as fh:
        assert fh.read() == ROUTER_MD


def test_search_finds_exact_error_code_and_reports_both_scores(kb_env: Path) -> None:
    _upload("router.md", ROUTER_MD)
    _upload("billing.md", BILLING_MD)
    result = passages_search(query="what does ERR-4032 mean", k=3)
    top = result.passages[0]
    assert "ERR-4032" in top.text
    assert top.lexical_score > 0 and top.dense_score > 0
    assert top.heading == "Router guide › Error codes"
    assert 0.0 <= result.confidence <= 1.0


def test_new_version_is_seen_before_the_next_search(kb_env: Path) -> None:
    _upload("router.md", ROUTER_MD)
    before = passages_search(query="refund to my card", k=5)
    assert all("Refunds" not in p.text for p in before.passages)
    _upload("billing.md", BILLING_MD)
    after = passages_search(query="refund to my card", k=5)
    assert after.index_version == (before.index_version or 0) + 1
    assert "Refunds" in after.passages[0].text


def test_unchanged_knowledge_base_does_not_rebuild(kb_env: Path) -> None:
    _upload("router.md", ROUTER_MD)
    version = search_index.current_version(kb_env / "index")
    assert knowledge.index_rebuild().version == version
    assert knowledge.index_rebuild(force=True).version == (version or 0) + 1


def test_disable_enable_and_delete_control_retrieval(kb_env: Path) -> None:
    router = _upload("router.md", ROUTER_MD)
    _upload("billing.md", BILLING_MD)
    knowledge.document_set_enabled(document_id=router.pk, enabled=False)
    # Never retrieved, even before the rebuild that the commit queued has run.
    hits = passages_search(query="ERR-4032 fibre line down", k=5).passages
    assert hits and all(p.document_id != router.pk for p in hits)
    knowledge.index_rebuild()
    hits = passages_search(query="ERR-4032 fibre line down", k=5).passages
    assert all(p.document_id != router.pk for p in hits)
    knowledge.document_set_enabled(document_id=router.pk, enabled=True)
    knowledge.index_rebuild()
    assert passages_search(query="ERR-4032", k=1).passages[0].document_id == router.pk
    stored = router.file.path
    knowledge.document_delete(document_id=router.pk)
    knowledge.index_rebuild()
    assert not Chunk.objects.filter(document_id=router.pk).exists()
    assert all(p.document_id != router.pk for p in passages_search(query="ERR-4032", k=5).passages)
    assert not Path(stored).exists()


def test_dead_worker_leaves_document_rerunnable(kb_env: Path) -> None:
    doc = _upload("router.md", ROUTER_MD)
    first = list(doc.chunks.values_list("text", flat=True))
    # A worker killed mid-document leaves it PROCESSING with the previous chunks intact.
    KnowledgeDocument.objects.filter(pk=doc.pk).update(status="processing", progress=40)
    outcome = knowledge.document_ingest(document_id=doc.pk)
    doc.refresh_from_db()
    assert outcome.status == "ready" and doc.status == "ready"
    assert list(doc.chunks.values_list("text", flat=True)) == first


def test_embedding_failure_midway_fails_the_document_and_keeps_old_chunks(
    kb_env: Path, real_embedder: object
) -> None:
    from support import backends

    doc = _upload("router.md", ROUTER_MD)
    count = doc.chunks.count()

    class Exploding:
        model_name = "exploding"
        dimension = 384

        def encode(self, texts: list[str], **_: object) -> object:
            raise MemoryError("out of memory")

    backends.set_backend("embedder", Exploding())
    outcome = knowledge.document_ingest(document_id=doc.pk)
    doc.refresh_from_db()
    assert outcome.status == "failed" and doc.status == "failed"
    assert "Internal error" in doc.error
    assert doc.chunks.count() == count


@pytest.mark.parametrize(
    ("name", "data", "code", "text"),
    [
        ("empty.md", b"  \n", "empty", "empty"),
        ("notes.exe", b"MZ\x90\x00binary", "unknown_type", "not supported"),
        ("manual.pdf", b"<html><body>hello</body></html>", "type_mismatch", "not a PDF"),
        ("../../etc/passwd", b"root:x:0:0", "unknown_type", ""),
    ],
)
def test_bad_uploads_are_rejected_with_a_clear_message(
    kb_env: Path, name: str, data: bytes, code: str, text: str
) -> None:
    with pytest.raises(DocumentRejected) as info:
        knowledge.document_upload(filename=name, data=data, queue=False)
    assert info.value.code == code
    assert text.lower() in info.value.message.lower()
    assert not KnowledgeDocument.objects.exists()


def test_oversize_upload_is_rejected(kb_env: Path, settings: object) -> None:
    settings.SUPPORT_MAX_UPLOAD_BYTES = 1000  # type: ignore[attr-defined]
    with pytest.raises(DocumentRejected) as info:
        knowledge.document_upload(filename="big.txt", data=b"word " * 400, queue=False)
    assert info.value.code == "too_large"


def test_duplicate_upload_names_the_original(kb_env: Path) -> None:
    original = _upload("router.md", ROUTER_MD)
    with pytest.raises(DocumentRejected) as info:
        knowledge.document_upload(filename="copy.md", data=ROUTER_MD, queue=False)
    assert info.value.code == "duplicate"
    assert f"#{original.pk}" in info.value.message and "Router guide" in info.value.message


def test_path_traversal_name_is_reduced_to_a_bare_name(kb_env: Path) -> None:
    doc = knowledge.document_upload(filename="../../../tmp/evil.md", data=ROUTER_MD, queue=False)
    assert doc.original_filename == "evil.md"
    assert Path(doc.file.path).resolve().is_relative_to((kb_env / "media").resolve())


def _zip_bomb_docx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<w:document>" + " " * 300_000_000 + "</w:document>")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "code_text"),
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage that is not a pdf\n", "corrupt"),
        ("bomb.docx", None, "zip"),
        (
            "latin.txt",
            "Café crème: the menu costs 5 € and the crème brûlée is très bon. Déjà vu, naïve "
            "garçon: à la carte.".encode("cp1252"),
            None,
        ),
    ],
)
def test_bad_content_fails_that_document_only(
    kb_env: Path, name: str, data: bytes | None, code_text: str | None
) -> None:
    good = _upload("router.md", ROUTER_MD)
    payload = data if data is not None else _zip_bomb_docx()
    try:
        doc = knowledge.document_upload(filename=name, data=payload, queue=False)
    except DocumentRejected as exc:  # caught at upload time: equally clear, nothing stored
        assert code_text is not None and code_text in (exc.code + exc.message).lower()
        return
    outcome = knowledge.document_ingest(document_id=doc.pk)
    doc.refresh_from_db()
    if code_text is None:
        assert doc.status == "ready"
        assert "Café crème" in doc.chunks.get().text
    else:
        assert doc.status == "failed", doc.error
        assert code_text in doc.error.lower() or outcome.error
    good.refresh_from_db()
    assert good.status == "ready" and good.chunks.exists()


def test_kb_ingest_and_kb_search_commands(kb_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = kb_env / "kb"
    (folder / "sub").mkdir(parents=True)
    (folder / "router.md").write_bytes(ROUTER_MD)
    (folder / "sub" / "billing.md").write_bytes(BILLING_MD)
    call_command("kb_ingest", str(folder))
    lines = capsys.readouterr().out.strip().splitlines()
    assert sum("\tready\t" in line for line in lines) == 2

    call_command("kb_search", "ERR-4032", "--k", "2", "--json")
    body = json.loads(capsys.readouterr().out)
    assert set(body) >= {"confidence", "results"}
    first = body["results"][0]
    assert set(first) >= {
        "document_id",
        "filename",
        "title",
        "source_url",
        "chunk_id",
        "heading",
        "score",
        "text",
    }
    assert first["filename"] == "router.md" and "ERR-4032" in first["text"]

    queries = kb_env / "q.jsonl"
    queries.write_text('{"id": "a", "query": "refund"}\n{"id": "b", "query": "reset button"}\n')
    out = kb_env / "r.jsonl"
    call_command("kb_search", "--file", str(queries), "--out", str(out), "--k", "3")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    assert "Refunds" in rows[0]["results"][0]["text"]


def test_kb_ingest_exits_non_zero_when_a_file_fails(kb_env: Path) -> None:
    folder = kb_env / "kb"
    folder.mkdir()
    (folder / "ok.md").write_bytes(ROUTER_MD)
    (folder / "empty.txt").write_bytes(b"")
    with pytest.raises(CommandError, match="1 of 2"):
        call_command("kb_ingest", str(folder))
    assert KnowledgeDocument.objects.get().status == "ready"


def test_only_knowledge_admins_upload_in_the_admin(kb_env: Path) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = reverse("admin:support_knowledgedocument_upload")
    agent = Client()
    agent.force_login(agent_user())
    assert agent.get(url).status_code == 403
    assert agent.get(reverse("admin:support_knowledgedocument_add")).status_code == 403

    admin = Client()
    admin.force_login(knowledge_admin_user())
    assert admin.get(url).status_code == 200
    response = admin.post(
        url,
        {
            "files": [
                SimpleUploadedFile("router.md", ROUTER_MD),
                SimpleUploadedFile("billing.md", BILLING_MD),
                SimpleUploadedFile("empty.md", b""),
            ]
        },
    )
    assert response.status_code == 302
    docs = KnowledgeDocument.objects.order_by("original_filename")
    # Eager Celery ran the ingestion on commit; the empty file got a message, no document.
    assert [(d.original_filename, d.status) for d in docs] == [
        ("billing.md", "ready"),
        ("router.md", "ready"),
    ]
    listing = admin.get(reverse("admin:support_knowledgedocument_changelist"))
    assert b"router.md" in listing.content
    change = admin.get(reverse("admin:support_knowledgedocument_change", args=[docs[1].pk]))
    assert b"Hold the reset button" in change.content  # the chunk inspector
    # Actions are services too: disabling through the admin removes it from retrieval.
    admin.post(
        reverse("admin:support_knowledgedocument_changelist"),
        {"action": "disable_documents", "_selected_action": [docs[1].pk]},
    )
    assert KnowledgeDocument.objects.get(pk=docs[1].pk).status == "disabled"


def test_a_document_indexed_with_warnings_is_marked_for_review_in_the_list(
    kb_env: Path,
) -> None:
    doc = knowledge.document_upload(filename="router.md", data=ROUTER_MD, queue=False)
    knowledge.document_ingest(document_id=doc.pk)
    KnowledgeDocument.objects.filter(pk=doc.pk).update(
        error="Hidden text found (1 passage(s) on page(s) 1: white text)"
    )
    admin = Client()
    admin.force_login(knowledge_admin_user())
    listing = admin.get(reverse("admin:support_knowledgedocument_changelist"))
    assert b"<strong>review</strong>" in listing.content
    assert b"Hidden text found" in listing.content


class _CountingEmbedder:
    """The real embedder, remembering the single words it embedded (the bridge's vocabulary)."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.words: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def encode(self, texts: list[str], *, batch_size: int | None = None) -> object:
        self.words.extend(t for t in texts if t.isalpha())
        return self.inner.encode(texts, batch_size=batch_size)  # type: ignore[attr-defined]


def test_the_paraphrase_bridge_is_built_with_each_version_when_on(
    kb_env: Path, real_embedder: object
) -> None:
    from django.test import override_settings

    from support import backends

    _upload("router.md", ROUTER_MD)
    assert search_index.read_manifest(kb_env / "index", 1).bridge_file is None  # off by default

    with override_settings(SUPPORT_BRIDGE=True, SUPPORT_BRIDGE_THRESHOLD=0.6):
        counting = _CountingEmbedder(real_embedder)
        backends.set_backend("embedder", counting)
        version = knowledge.index_rebuild(force=True).version
        manifest = search_index.read_manifest(kb_env / "index", version)
        assert manifest.bridge_file and manifest.bridge_terms == len(counting.words) > 5
        assert "reset" in counting.words

        counting.words.clear()
        _upload("billing.md", BILLING_MD)
        # Only the new page's words are embedded again; the served version's vectors are reused.
        assert counting.words and "reset" not in counting.words
        assert {"refunds", "refund"} & set(counting.words)

        # "reimbursed" is no word of the knowledge base: it stands in for its nearest ones.
        result = passages_search(query="reimbursed", k=3)
        assert {e.term for e in result.bridged} & {"refund", "paid"}
        assert "Refunds" in result.passages[0].text
