"""Admin: golden questions (list, edit, import a JSON Lines file) and the gate's reports, with
the two decisions on a held knowledge-base change ("publish anyway", "keep the old index").

The held report is also shown on the page of each document in the change (support.admin).
Everything goes through support.golden; deciding needs the permission to change documents.
"""

from __future__ import annotations

import io
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from .admin_access import NoEditing
from .exceptions import SupportError
from .golden import gate
from .golden.questions import ImportSummary, golden_import
from .models import GateReport, GoldenQuestion

DECIDE_PERMISSION = "support.change_knowledgedocument"
# Lines of an import shown one by one; the rest are counted in the summary.
IMPORT_MESSAGES = 50


class GoldenImportForm(forms.Form):
    file = forms.FileField(
        help_text='One JSON object per line: {"question": "...", "document": "file name or '
        'title"} or {"question": "...", "decline": true}.'
    )


@admin.register(GoldenQuestion)
class GoldenQuestionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("question", "expected", "active", "updated_at")
    list_filter = ("active", "should_decline", "document")
    search_fields = ("question", "note")
    fields = ("question", "document", "should_decline", "note", "active")
    autocomplete_fields = ("document",)
    change_list_template = "admin/support/goldenquestion/change_list.html"

    @admin.display(description="Expected")
    def expected(self, obj: GoldenQuestion) -> str:
        return "should be declined" if obj.should_decline else f"in the top 5: {obj.document}"

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="support_goldenquestion_import",
            )
        ]
        return custom + super().get_urls()

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = GoldenImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            summary = ImportSummary()
            stream = io.BytesIO(form.cleaned_data["file"].read())
            for i, line in enumerate(golden_import(lines=stream, summary=summary)):
                if i < IMPORT_MESSAGES:
                    level = messages.ERROR if line.outcome == "error" else messages.INFO
                    messages.add_message(request, level, line.render())
            messages.success(request, summary.render())
            return redirect("admin:support_goldenquestion_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "form": form,
            "title": "Import golden questions",
        }
        return TemplateResponse(request, "admin/support/goldenquestion/import.html", context)


def gate_report_render(request: HttpRequest, report: GateReport) -> SafeString:
    """The report as HTML (measures before and after, what got worse, what changed), with the
    two decisions when it is held and the user may decide."""
    can_decide = (
        report.decision == GateReport.Decision.HELD
        and report.kind == GateReport.Kind.KB_CHANGE
        and request.user.has_perm(DECIDE_PERMISSION)
    )
    measures = []
    for name in sorted(set(report.before) | set(report.after)):
        before, after = report.before.get(name, {}), report.after.get(name, {})
        # Retrieval reports measure ranks, the chat model's answers (learning.chat_specialise):
        # a row neither side has is left out.
        rows = [
            (label, before.get(key), after.get(key))
            for key, label in (
                ("version", "index version"),
                ("questions", "questions"),
                ("recall_at_5", "recall@5"),
                ("mrr_at_10", "MRR@10"),
                ("answer_f1", "answer token F1 vs the approved answers"),
                ("support", "content-word support in the facts"),
                ("declined_when_should", "declined when they should be"),
                ("answered_when_should_decline", "answered when they should be declined"),
                ("answerable_declined", "answerable but declined"),
                ("ttft_ms", "time to first token (ms, median)"),
                ("tokens_per_s", "tokens/s (median)"),
            )
            if before.get(key) is not None or after.get(key) is not None
        ]
        measures.append((name, rows))
    html = render_to_string(
        "admin/support/gatereport/summary.html",
        {
            "report": report,
            "measures": measures,
            "can_decide": can_decide,
            "publish_url": reverse("admin:support_gatereport_publish", args=[report.pk]),
            "keep_url": reverse("admin:support_gatereport_keep", args=[report.pk]),
        },
        request=request,
    )
    return SafeString(html)


@admin.register(GateReport)
class GateReportAdmin(NoEditing, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("__str__", "kind", "decision", "versions", "decided_by", "created_at")
    list_filter = ("kind", "decision")
    fields = ("kind", "decision", "decided_by", "decided_at", "note", "created_at")
    readonly_fields = fields
    change_form_template = "admin/support/gatereport/change_form.html"

    @admin.display(description="Index versions")
    def versions(self, obj: GateReport) -> str:
        return format_html("{} → {}", obj.before_version or "–", obj.after_version or "–")

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        report = get_object_or_404(GateReport, pk=object_id)
        context = {**(extra_context or {}), "gate_report_html": gate_report_render(request, report)}
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "<int:report_id>/publish/",
                self.admin_site.admin_view(require_POST(self.publish_view)),
                name="support_gatereport_publish",
            ),
            path(
                "<int:report_id>/keep/",
                self.admin_site.admin_view(require_POST(self.keep_view)),
                name="support_gatereport_keep",
            ),
        ]
        return custom + super().get_urls()

    def _back(self, request: HttpRequest, report_id: int) -> HttpResponseRedirect:
        target = request.POST.get("next", "")
        if not target.startswith("/") or target.startswith("//"):
            target = reverse("admin:support_gatereport_change", args=[report_id])
        return HttpResponseRedirect(target)

    def publish_view(self, request: HttpRequest, report_id: int) -> HttpResponse:
        if not request.user.has_perm(DECIDE_PERMISSION):
            raise PermissionDenied
        get_object_or_404(GateReport, pk=report_id)
        try:
            report = gate.gate_publish_anyway(report_id=report_id, user=request.user)
        except SupportError as exc:
            messages.error(request, exc.message)
        else:
            messages.warning(
                request,
                f"Index version {report.after_version} is being published despite the "
                "regressions (logged with your name).",
            )
        return self._back(request, report_id)

    def keep_view(self, request: HttpRequest, report_id: int) -> HttpResponse:
        if not request.user.has_perm(DECIDE_PERMISSION):
            raise PermissionDenied
        get_object_or_404(GateReport, pk=report_id)
        try:
            kept = gate.gate_keep_old(report_id=report_id, user=request.user)
        except SupportError as exc:
            messages.error(request, exc.message)
        else:
            parts = ["Kept the old index."]
            if kept.disabled:
                parts.append("Disabled (enable to try again): " + ", ".join(kept.disabled) + ".")
            if kept.restored:
                parts.append("Removal cancelled: " + ", ".join(kept.restored) + ".")
            messages.success(request, " ".join(parts))
        return self._back(request, report_id)
