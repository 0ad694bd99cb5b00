"""Reads for views and adapters."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from .exceptions import ConversationNotFound
from .models import Chunk, Conversation, KnowledgeDocument


def conversation_lock(conversation_id: UUID) -> Conversation:
    """The conversation, its row locked until the surrounding transaction ends (every write
    that changes who has a conversation or what it holds takes this lock first);
    ConversationNotFound when it does not exist."""
    conv = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
    if conv is None:
        raise ConversationNotFound("This conversation does not exist.")
    return conv


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
