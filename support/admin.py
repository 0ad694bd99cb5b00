"""Admin registrations. Read-mostly; actions call services. Customer text is always escaped."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Chunk, Conversation, Escalation, Feedback, KnowledgeDocument, Message


class MessageInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Message
    extra = 0
    can_delete = False
    fields = ("created_at", "role", "text", "action", "retrieval_confidence", "internal")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class EscalationInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Escalation
    extra = 0
    can_delete = False
    fields = ("created_at", "state", "reasons", "claimed_by", "claimed_at", "resolved_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "short_id",
        "status",
        "customer_name",
        "customer_email",
        "channel",
        "assigned_agent",
        "created_at",
        "last_message_at",
    )
    list_filter = ("status", "channel", "language")
    search_fields = ("id", "customer_name", "customer_email")
    readonly_fields = (
        "id",
        "created_at",
        "updated_at",
        "last_message_at",
        "resolved_at",
        "origin",
        "channel",
    )
    inlines = (EscalationInline, MessageInline)
    date_hierarchy = "created_at"

    @admin.display(description="Conversation")
    def short_id(self, obj: Conversation) -> str:
        return obj.id.hex[:8]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "id",
        "conversation",
        "role",
        "short_text",
        "action",
        "retrieval_confidence",
        "grounded",
        "created_at",
    )
    list_filter = ("role", "action", "grounded", "internal")
    search_fields = ("text",)
    readonly_fields = (
        "conversation",
        "role",
        "client_id",
        "in_reply_to",
        "citations",
        "retrieved",
        "retrieval_confidence",
        "answer_confidence",
        "grounded",
        "action",
        "reason",
        "prompt_version",
        "timings",
        "created_at",
        "author",
    )

    @admin.display(description="Text")
    def short_text(self, obj: Message) -> str:
        return obj.text[:80]


@admin.register(Escalation)
class EscalationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("id", "conversation", "state", "reasons", "claimed_by", "created_at")
    list_filter = ("state",)
    readonly_fields = (
        "conversation",
        "reasons",
        "trigger_message",
        "created_at",
        "claimed_at",
        "resolved_at",
    )


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("message", "value", "comment", "created_at")
    list_filter = ("value",)
    readonly_fields = ("message", "value", "comment", "created_at")


class ChunkInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Chunk
    extra = 0
    can_delete = False
    fields = ("order", "heading", "page", "token_count", "text")
    readonly_fields = fields
    ordering = ("order",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "__str__",
        "original_filename",
        "file_format",
        "status",
        "progress",
        "chunk_count",
        "error",
        "updated_at",
    )
    list_filter = ("status", "file_format")
    search_fields = ("title", "original_filename", "source_url")
    readonly_fields = (
        "checksum",
        "file_format",
        "size_bytes",
        "status",
        "progress",
        "error",
        "chunk_count",
        "uploaded_by",
        "created_at",
        "updated_at",
        "indexed_at",
    )
    inlines = (ChunkInline,)


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("document", "order", "heading", "page", "token_count")
    list_filter = ("document",)
    search_fields = ("text",)
    readonly_fields = (
        "document",
        "order",
        "text",
        "heading_path",
        "page",
        "anchor",
        "token_count",
        "embedding_model",
        "created_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
