"""Admin registrations. Read-mostly; actions call services. Customer text is always escaped."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from . import knowledge
from .conf import get_support_settings
from .exceptions import DocumentRejected
from .golden.gate import gate_report_held
from .golden_admin import gate_report_render  # also registers the golden-question admin
from .models import Chunk, Conversation, Escalation, Feedback, KnowledgeDocument, Message
from .selectors import answer_trace_get

TRACE_URL = "admin:support_message_trace"


def trace_link(obj: Message) -> str:
    """The link to a bot message's trace (blank for other roles)."""
    if obj.pk is None or obj.role != Message.Role.BOT:
        return ""
    return format_html('<a href="{}">trace</a>', reverse(TRACE_URL, args=[obj.pk]))


class MessageInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Message
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "role",
        "text",
        "action",
        "retrieval_confidence",
        "internal",
        "trace_column",
    )
    readonly_fields = fields
    show_change_link = True

    @admin.display(description="Trace")
    def trace_column(self, obj: Message) -> str:
        return trace_link(obj)

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
        "rating",
    )
    list_filter = ("status", "channel", "language", "rating")
    search_fields = ("id", "customer_name", "customer_email")
    readonly_fields = (
        "id",
        "created_at",
        "updated_at",
        "last_message_at",
        "resolved_at",
        "origin",
        "channel",
        # The customer's end-of-chat rating (support.conversations.conversation_rate).
        "rating",
        "rating_comment",
        "rated_at",
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
        "trace_column",
    )
    # reason: e.g. `learned`, the answers answer memory gave (docs/learning.md).
    list_filter = ("role", "action", "reason", "grounded", "internal")
    search_fields = ("text",)
    readonly_fields = (
        "trace_column",
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

    @admin.display(description="Trace")
    def trace_column(self, obj: Message) -> str:
        return trace_link(obj)

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:message_id>/trace/",
                self.admin_site.admin_view(self.trace_view),
                name="support_message_trace",
            )
        ]
        return custom + super().get_urls()

    def trace_view(self, request: HttpRequest, message_id: int) -> HttpResponse:
        """What produced one bot message: staff who may read messages only."""
        if not self.has_view_permission(request):
            raise PermissionDenied("The trace is for staff who may read messages.")
        found = answer_trace_get(message_id=message_id)
        if found is None:
            raise Http404("No bot message with this id.")
        return TemplateResponse(
            request,
            "admin/support/message/trace.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Trace of bot message {found.message.pk}",
                "t": found,
                "raw_json": json.dumps(found.raw, indent=2, ensure_ascii=False, sort_keys=True),
                "message_url": reverse("admin:support_message_change", args=[found.message.pk]),
                "conversation_url": reverse(
                    "admin:support_conversation_change", args=[found.message.conversation_id]
                ),
            },
        )


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


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        # Empty files reach the upload service, which explains the problem per file.
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(*args, **kwargs)

    def clean(self, data: Any, initial: Any = None) -> Any:
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class DocumentUploadForm(forms.Form):
    files = MultipleFileField(  # type: ignore[assignment]
        help_text="Markdown, text, HTML, PDF, DOCX or FAQ CSV (question,answer). "
        "Several files at once are fine."
    )
    source_url = forms.URLField(
        required=False, assume_scheme="https", help_text="Optional: where these documents live"
    )


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "__str__",
        "original_filename",
        "file_format",
        "status_display",
        "chunk_count",
        "updated_at",
    )
    list_filter = ("status", "file_format")
    search_fields = ("title", "original_filename", "source_url")
    fields = (
        "title",
        "source_url",
        "original_filename",
        "file",
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
    # Only the title and source URL are editable; everything else is the ingestion's record.
    readonly_fields = tuple(f for f in fields if f not in ("title", "source_url"))
    inlines = (ChunkInline,)
    actions = ("reindex_documents", "disable_documents", "enable_documents")
    change_form_template = "admin/support/knowledgedocument/change_form.html"

    @admin.display(description="Status", ordering="status")
    def status_display(self, obj: KnowledgeDocument) -> str:
        if obj.pending_removal:
            # Served until the index without it passes the golden questions (support.golden).
            deleting = obj.pending_removal == KnowledgeDocument.Removal.DELETE
            return format_html(
                "{} — <strong>{} pending</strong> (golden questions)",
                obj.get_status_display(),
                "deletion" if deleting else "disable",
            )
        if obj.status == KnowledgeDocument.Status.PROCESSING:
            return format_html("processing ({}%)", obj.progress)
        if obj.status == KnowledgeDocument.Status.FAILED:
            return format_html('failed: <span class="errornote-inline">{}</span>', obj.error)
        if obj.status == KnowledgeDocument.Status.READY and obj.error:
            # Indexed with warnings (hidden text, pages without text): someone should look.
            return format_html(
                'ready — <strong>review</strong>: <span title="{}">{}</span>',
                obj.error,
                obj.error[:120],
            )
        return obj.get_status_display()

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="support_knowledgedocument_upload",
            )
        ]
        return custom + super().get_urls()

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> Any:
        if not self.has_add_permission(request):
            raise PermissionDenied
        return redirect("admin:support_knowledgedocument_upload")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> Any:
        # A held change of the index that includes this document: its report and the decisions.
        context = dict(extra_context or {})
        if object_id.isdigit():
            report = gate_report_held(document_id=int(object_id))
            if report is not None:
                context["gate_report_html"] = gate_report_render(request, report)
        return super().change_view(request, object_id, form_url, context)

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        report = gate_report_held()
        if report is not None:
            link = reverse("admin:support_gatereport_change", args=[report.pk])
            messages.warning(
                request,
                format_html(
                    "A change of the knowledge base is held back by the golden questions: "
                    '<a href="{}">report #{}</a> (customers still get index version {}).',
                    link,
                    report.pk,
                    report.before_version,
                ),
            )
        return super().changelist_view(request, extra_context)

    def upload_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = DocumentUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            accepted: list[int] = []
            for upload in form.cleaned_data["files"]:
                try:
                    doc = knowledge.document_upload(
                        filename=upload.name or "upload",
                        data=upload.read(),
                        source_url=form.cleaned_data["source_url"] or "",
                        uploaded_by=request.user,  # type: ignore[arg-type]
                        queue=False,
                    )
                except DocumentRejected as exc:
                    messages.error(request, f"{upload.name}: {exc.message}")
                    continue
                accepted.append(doc.pk)
                messages.success(request, f"{doc.original_filename}: queued for indexing.")
            # Queued together: their chunks are embedded in large batches.
            knowledge.documents_ingest_queue(document_ids=accepted)
            if accepted:
                return redirect("admin:support_knowledgedocument_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Upload knowledge-base documents",
            "max_mb": get_support_settings().max_upload_bytes // (1024 * 1024),
        }
        return TemplateResponse(request, "admin/support/knowledgedocument/upload.html", context)

    @admin.action(description="Re-index selected documents", permissions=["change"])
    def reindex_documents(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queued = knowledge.documents_reindex(
            document_ids=list(queryset.values_list("pk", flat=True))
        )
        messages.success(request, f"{queued} document(s) queued for re-indexing.")

    @admin.action(
        description="Disable selected documents (never retrieved)", permissions=["change"]
    )
    def disable_documents(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        docs = [
            knowledge.document_set_enabled(document_id=pk, enabled=False)
            for pk in queryset.values_list("pk", flat=True)
        ]
        if any(d.pending_removal for d in docs):
            messages.warning(
                request,
                "Marked for disabling: they are served until the index without them passes "
                "the golden questions.",
            )
        else:
            messages.success(request, "Disabled; they leave the index now.")

    @admin.action(description="Enable selected documents", permissions=["change"])
    def enable_documents(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for pk in queryset.values_list("pk", flat=True):
            knowledge.document_set_enabled(document_id=pk, enabled=True)
        messages.success(request, "Enabled.")

    def delete_model(self, request: HttpRequest, obj: KnowledgeDocument) -> None:
        knowledge.document_delete(document_id=obj.pk)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> Any:
        if KnowledgeDocument.objects.filter(pk=obj_id).exists():
            # Marked only: the golden questions decide first (support.golden.gate).
            messages.warning(
                request,
                f"“{obj_display}” is still served: it is deleted once the index without it "
                "passes the golden questions.",
            )
            return redirect("admin:support_knowledgedocument_change", obj_id)
        return super().response_delete(request, obj_display, obj_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        waiting = [
            pk
            for pk in list(queryset.values_list("pk", flat=True))
            if not knowledge.document_delete(document_id=pk)
        ]
        if waiting:
            messages.warning(
                request,
                f"{len(waiting)} document(s) are still served: they are deleted once the index "
                "without them passes the golden questions.",
            )


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


# Appended by the escalation work; merge into the import block above when convenient.
from .models import SensitiveTopic  # noqa: E402


@admin.register(SensitiveTopic)
class SensitiveTopicAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("name", "enabled", "amount_threshold", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("name", "keywords", "examples")
    fields = ("name", "enabled", "keywords", "examples", "amount_threshold", "customer_message")


# The agent workspace (escalation queue, conversation view, canned responses, holidays).
from . import (  # noqa: E402
    agent_admin,  # noqa: F401
    gaps_admin,  # noqa: F401  (the knowledge gaps and article drafts, for support managers)
    integrations_admin,  # noqa: F401  (API tokens, webhooks, e-mail)
    learning_admin,  # noqa: F401  (the review queue of examples)
    reports_admin,  # noqa: F401  (the report page, for support managers)
    specialise_admin,  # noqa: F401  (runs of specialising the retriever)
)
