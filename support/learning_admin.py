"""Admin: the review queue of examples the bot learns from (docs/learning.md).

Filters by source, state and grounding document; bulk approve / reject; the answer text and the
grounding chunks are edited on the example's page; counts per state above the list; who
approved what and when in the list. Everything goes through support.learning.examples; the
text shown is the stored, redacted text (escaped).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join

from .learning import examples
from .models import Example, ExampleGrounding, KnowledgeDocument


class GroundingDocumentFilter(admin.SimpleListFilter):
    title = "grounding document"
    parameter_name = "document"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        used = ExampleGrounding.objects.values("document_id")
        return [
            (str(d.pk), str(d))
            for d in KnowledgeDocument.objects.filter(pk__in=used).order_by("title")
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value():
            return queryset.filter(grounding__document_id=self.value()).distinct()
        return queryset


class GroundingInline(admin.TabularInline):  # type: ignore[type-arg]
    """The chunks that ground the answer; a reviewer picks others (saved by example_edit)."""

    model = ExampleGrounding
    extra = 1
    fields = ("chunk", "document", "score", "method", "excerpt")
    readonly_fields = ("document", "score", "method", "excerpt")
    autocomplete_fields = ("chunk",)
    verbose_name = "grounding chunk"
    verbose_name_plural = "grounding (the chunks that support the answer)"

    @admin.display(description="Text")
    def excerpt(self, obj: ExampleGrounding) -> str:
        text = obj.text if obj.pk else ""
        return text[:300] + ("…" if len(text) > 300 else "")

    # Grounding rows are part of the example: whoever may change the example may edit them.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("support.change_example")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("support.change_example")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("support.change_example")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("support.view_example")


@admin.register(Example)
class ExampleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    change_list_template = "admin/support/example/change_list.html"
    change_form_template = "admin/support/example/change_form.html"
    list_display = (
        "id",
        "short_question",
        "short_answer",
        "source",
        "state",
        "knowledge_gap",
        "documents",
        "reviewed",
        "created_at",
    )
    list_filter = ("state", "source", GroundingDocumentFilter, "knowledge_gap", "held_back")
    search_fields = ("question", "answer", "external_id")
    date_hierarchy = "created_at"
    actions = ("approve_examples", "reject_examples")
    inlines = (GroundingInline,)
    fields = (
        "question",
        "history_display",
        "answer",
        "source",
        "state",
        "reviewed",
        "knowledge_gap",
        "grounding_method",
        "conversation",
        "external_id",
        "document_hint",
        "redactions",
        "held_back",
        "created_at",
        "updated_at",
    )
    # Only the answer is edited here (and the grounding, below); the state by the buttons.
    readonly_fields = tuple(f for f in fields if f != "answer")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # examples come from conversations and imports

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return (
            super()
            .get_queryset(request)
            .select_related("reviewed_by")
            .prefetch_related("grounding__document")
        )

    @admin.display(description="Question")
    def short_question(self, obj: Example) -> str:
        return obj.question[:80]

    @admin.display(description="Answer")
    def short_answer(self, obj: Example) -> str:
        return obj.answer[:80]

    @admin.display(description="History")
    def history_display(self, obj: Example) -> str:
        if not obj.history:
            return "—"
        return format_html_join(
            "", "<div><strong>{}:</strong> {}</div>", ((t["role"], t["text"]) for t in obj.history)
        )

    @admin.display(description="Documents")
    def documents(self, obj: Example) -> str:
        if obj.knowledge_gap:
            return "knowledge gap"
        return ", ".join(dict.fromkeys(str(g.document) for g in obj.grounding.all()))

    @admin.display(description="Reviewed", ordering="reviewed_at")
    def reviewed(self, obj: Example) -> str:
        if obj.reviewed_at is None:
            return "—"
        who = obj.reviewed_by.get_username() if obj.reviewed_by else "automatically"
        return format_html(
            "{} by {}, {}", obj.get_state_display(), who, f"{obj.reviewed_at:%Y-%m-%d %H:%M}"
        )

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        counts = examples.example_counts()
        labels = dict(Example.State.choices)
        context = {
            **(extra_context or {}),
            "state_counts": [(labels[state], n, state) for state, n in counts.items()],
        }
        return super().changelist_view(request, extra_context=context)

    @admin.action(description="Approve selected examples", permissions=["change"])
    def approve_examples(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        changed = examples.examples_review(
            example_ids=list(queryset.values_list("pk", flat=True)),
            state=Example.State.APPROVED,
            by=request.user,
        )
        messages.success(request, f"{changed} example(s) approved.")

    @admin.action(description="Reject selected examples", permissions=["change"])
    def reject_examples(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        changed = examples.examples_review(
            example_ids=list(queryset.values_list("pk", flat=True)),
            state=Example.State.REJECTED,
            by=request.user,
        )
        messages.success(request, f"{changed} example(s) rejected.")

    def save_model(self, request: HttpRequest, obj: Example, form: Any, change: bool) -> None:
        if "answer" in form.changed_data:
            examples.example_edit(
                example_id=obj.pk, answer=form.cleaned_data["answer"], by=request.user
            )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        # The admin's change message reads these; the rows are rewritten by the service.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not formset.has_changed():
            return
        chunk_ids = []
        for row in formset.forms:
            data = getattr(row, "cleaned_data", None) or {}
            if data.get("DELETE") or data.get("chunk") is None:
                continue
            chunk_ids.append(data["chunk"].pk)
        examples.example_edit(example_id=form.instance.pk, chunk_ids=chunk_ids, by=request.user)

    def response_change(self, request: HttpRequest, obj: Example) -> HttpResponse:
        for button, state in (
            ("_approve", Example.State.APPROVED),
            ("_reject", Example.State.REJECTED),
        ):
            if button in request.POST:
                examples.examples_review(example_ids=[obj.pk], state=state, by=request.user)
                self.message_user(
                    request, f"Example {obj.pk}: {Example.State(state).label.lower()}."
                )
        return super().response_change(request, obj)
