"""Reads for views and adapters."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Chunk, KnowledgeDocument


def public_document_get(*, document_id: int) -> KnowledgeDocument | None:
    """A document customers may read: ready (not disabled, failed or pending)."""
    return KnowledgeDocument.objects.filter(
        pk=document_id, status=KnowledgeDocument.Status.READY
    ).first()


def document_chunks_list(*, document_id: int) -> QuerySet[Chunk]:
    return (
        Chunk.objects.filter(document_id=document_id)
        .order_by("order")
        .only("pk", "order", "text", "heading_path", "page", "anchor")
    )
