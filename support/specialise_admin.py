"""Admin: runs of specialising the retriever or the chat model (docs/learning.md, "A retriever
specialised on the company", "A chat model specialised on the company"): start one (queued on
the `training` queue), cancel it, watch its stage and percent (the list refreshes itself while
a run is active), read each run's gate report, roll the chat model back.

Everything goes through support.learning.specialise and .chat_specialise; the page never trains
or waits.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from .conf import get_support_settings
from .exceptions import SupportError
from .learning import chat_specialise, specialise
from .llm import chat_models
from .models import SpecialiseRun

START_PERMISSION = "support.change_specialiserun"


@admin.register(SpecialiseRun)
class SpecialiseRunAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "__str__",
        "kind",
        "status",
        "stage",
        "percent",
        "outcome",
        "requested_by",
        "created_at",
    )
    list_filter = ("kind", "status")
    fields = (
        "kind",
        "status",
        "stage",
        "progress",
        "message",
        "force",
        "cancel_requested",
        "requested_by",
        "model_version",
        "index_version",
        "gate_report_link",
        "measures",
        "created_at",
        "heartbeat_at",
        "finished_at",
    )
    readonly_fields = fields
    actions = ("cancel_runs",)
    change_list_template = "admin/support/specialiserun/change_list.html"

    @admin.display(description="Done")
    def percent(self, obj: SpecialiseRun) -> str:
        return f"{obj.progress} %"

    @admin.display(description="Outcome")
    def outcome(self, obj: SpecialiseRun) -> str:
        return obj.message[:120]

    @admin.display(description="Gate report")
    def gate_report_link(self, obj: SpecialiseRun) -> str:
        report_id = (obj.report or {}).get("gate_report")
        if not report_id:
            return "–"
        url = reverse("admin:support_gatereport_change", args=[report_id])
        return format_html('<a href="{}">report #{}</a>', url, report_id)

    @admin.display(description="Before → after")
    def measures(self, obj: SpecialiseRun) -> str:
        report = obj.report or {}
        if obj.kind == SpecialiseRun.Kind.MODEL:
            return _model_measures(report)
        before, after = report.get("before") or {}, report.get("after") or {}
        rows = [
            format_html(
                "{}: recall@5 {} → {}, MRR@10 {} → {} ({} questions)",
                name,
                before[name].get("recall_at_5"),
                after.get(name, {}).get("recall_at_5"),
                before[name].get("mrr_at_10"),
                after.get(name, {}).get("mrr_at_10"),
                before[name].get("questions"),
            )
            for name in before
        ]
        trained = report.get("trained_on")
        if trained is not None:
            rows.append(
                format_html(
                    "trained on {} pair(s) in {} s; {} held back",
                    trained,
                    report.get("training_seconds"),
                    report.get("held_back"),
                )
            )
        return (
            format_html("{}", format_html("<br>".join(["{}"] * len(rows)), *rows)) if rows else "–"
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if not request.user.has_perm(START_PERMISSION):
            actions.pop("cancel_runs", None)
        return actions

    @admin.action(description="Cancel selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[SpecialiseRun]) -> None:
        cancelled = sum(specialise.run_cancel(run_id=run.pk) for run in queryset)
        messages.info(request, f"Cancel requested for {cancelled} run(s).")

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        conf = get_support_settings()
        served = chat_models.current(conf.chat_models_dir)
        context = {
            **(extra_context or {}),
            "active_run": SpecialiseRun.objects.filter(holds_lock=True).first(),
            "can_start": request.user.has_perm(START_PERMISSION),
            "served_chat_model": served.label if served else "the shipped model",
            "can_roll_back_chat_model": bool(chat_models.history(conf.chat_models_dir)),
            "chat_model_pinned": bool(conf.model_path),
        }
        return super().changelist_view(request, context)

    def get_urls(self) -> list[Any]:
        custom = [
            path(
                "start/",
                self.admin_site.admin_view(require_POST(self.start_view)),
                name="support_specialiserun_start",
            )
        ]
        return custom + super().get_urls()

    def start_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(START_PERMISSION):
            raise PermissionDenied
        if "_cancel" in request.POST:
            run_id = int(request.POST.get("run") or 0)
            if specialise.run_cancel(run_id=run_id):
                messages.info(request, f"Cancel requested for run #{run_id}.")
            else:
                messages.warning(request, f"Run #{run_id} has already ended.")
        elif "_rollback_model" in request.POST:
            try:
                result = chat_specialise.model_rollback(by=request.user)
            except SupportError as exc:
                messages.error(request, exc.message)
            else:
                label = (
                    chat_models.label_of(result.model_version)
                    if result.model_version
                    else "the shipped model"
                )
                messages.success(request, f"The chat model is rolled back to {label}.")
        else:
            if "_start_model" in request.POST:
                kind = SpecialiseRun.Kind.MODEL
            elif "_start_facts" in request.POST:
                kind = SpecialiseRun.Kind.FACTS
            else:
                kind = SpecialiseRun.Kind.RETRIEVAL
            try:
                run = specialise.specialise_start(by=request.user, kind=kind)
            except SupportError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(
                    request,
                    f"Run #{run.pk} queued on the training queue; this page shows its progress.",
                )
        return HttpResponseRedirect(reverse("admin:support_specialiserun_changelist"))


def _model_measures(report: dict[str, Any]) -> str:
    """A chat-model run's gate measures per slice, and what it was trained on."""
    before, after = report.get("before") or {}, report.get("after") or {}
    rows = [
        format_html(
            "{}: answer F1 {} → {}, support {} → {}, declined when they should be {} → {}, "
            "TTFT {} → {} ms, {} → {} tokens/s ({} questions)",
            name,
            before[name].get("answer_f1"),
            after.get(name, {}).get("answer_f1"),
            before[name].get("support"),
            after.get(name, {}).get("support"),
            before[name].get("declined_when_should"),
            after.get(name, {}).get("declined_when_should"),
            before[name].get("ttft_ms"),
            after.get(name, {}).get("ttft_ms"),
            before[name].get("tokens_per_s"),
            after.get(name, {}).get("tokens_per_s"),
            before[name].get("questions"),
        )
        for name in before
    ]
    for export in report.get("exports") or []:
        rows.append(
            format_html(
                "export {}: check {}, agreement {} on {} prompts{}",
                export.get("qtype"),
                "ok" if export.get("ok") else "failed",
                export.get("agreement"),
                export.get("prompts"),
                " (served)" if export.get("qtype") == report.get("served_qtype") else "",
            )
        )
    if report.get("trained_on") is not None:
        rows.append(
            format_html(
                "trained on {} example(s) in {} s ({} steps); {} held back",
                report.get("trained_on"),
                report.get("training_seconds"),
                report.get("steps"),
                report.get("held_back"),
            )
        )
    return format_html("<br>".join(["{}"] * len(rows)), *rows) if rows else "–"
