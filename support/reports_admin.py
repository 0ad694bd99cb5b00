"""The report page in the Django admin (docs/reports.md, "The report page"): the changelist of
`ReportDay` is the report of a range, for staff with `support.view_reports` only.

Thin: parse the filters, call `report_build` once, lay it out with `report_page_build`; the CSV
export serves one of the same tables.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from .admin_access import ViewableBy
from .conf import get_support_settings
from .events import display_name
from .models import Conversation, KnowledgeDocument, ReportDay
from .reports import InvalidReportRange, local_date, report_build
from .reports.metrics import REPORTS_PERMISSION
from .reports.page import ReportPage, report_page_build, table_csv

DEFAULT_DAYS = 30
FILTERS = ("start", "end", "channel", "document", "agent")


def can_view_reports(user: Any) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm(REPORTS_PERMISSION))


def _require_manager(request: HttpRequest) -> None:
    if not can_view_reports(request.user):
        raise PermissionDenied("The reports are for support managers.")


class AgentChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]
    def label_from_instance(self, obj: Any) -> str:
        return f"{display_name(obj)} ({obj.get_username()})"


class ReportFilterForm(forms.Form):
    start = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    channel = forms.ChoiceField(
        required=False, choices=[("", "all channels"), *Conversation.Channel.choices]
    )
    document = forms.ModelChoiceField(
        required=False,
        queryset=KnowledgeDocument.objects.order_by("title", "pk"),
        empty_label="all documents",
        help_text="conversations in which the bot cited it",
    )
    agent = AgentChoiceField(
        required=False,
        queryset=get_user_model().objects.filter(is_staff=True).order_by("username"),
        empty_label="all agents",
        help_text="conversations the agent claimed or wrote in",
    )

    @classmethod
    def of(cls, request: HttpRequest) -> ReportFilterForm:
        today = local_date(timezone.now(), get_support_settings().report_time_zone)
        data = {
            "start": (today - timedelta(days=DEFAULT_DAYS - 1)).isoformat(),
            "end": today.isoformat(),
            "channel": "",
            **{k: v for k, v in request.GET.items() if k in FILTERS and v},
        }
        return cls(data)


@admin.register(ReportDay)
class ReportAdmin(ViewableBy, admin.ModelAdmin):  # type: ignore[type-arg]
    """No rows to edit: the changelist is the report page."""

    @staticmethod
    def may_view(user: Any) -> bool:
        return can_view_reports(user)

    def get_urls(self) -> list[Any]:
        def wrap(view: Any) -> Any:
            return self.admin_site.admin_view(view)

        return [
            path("", wrap(self.changelist_view), name="support_reportday_changelist"),
            path("<slug:table>.csv", wrap(self.csv_view), name="support_report_csv"),
        ]

    def _page(self, request: HttpRequest) -> tuple[ReportFilterForm, ReportPage | None, str]:
        form = ReportFilterForm.of(request)
        if not form.is_valid():
            return form, None, ""
        start: date = form.cleaned_data["start"]
        end: date = form.cleaned_data["end"]
        try:
            document, agent = form.cleaned_data["document"], form.cleaned_data["agent"]
            report = report_build(
                start=start,
                end=end,
                channel=form.cleaned_data["channel"] or None,
                document=document.pk if document is not None else None,
                agent=agent.pk if agent is not None else None,
            )
        except InvalidReportRange as exc:
            return form, None, exc.message
        return form, report_page_build(report), ""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        _require_manager(request)
        form, page, error = self._page(request)
        query = request.GET.urlencode()
        return TemplateResponse(
            request,
            "admin/support/reportday/report.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Support report",
                "form": form,
                "page": page,
                "error": error,
                "tables": [
                    {
                        "table": t,
                        "rows": t.text_rows(),
                        "csv_url": reverse("admin:support_report_csv", args=[t.key])
                        + (f"?{query}" if query else ""),
                    }
                    for t in (page.tables if page else ())
                ],
            },
        )

    def csv_view(self, request: HttpRequest, table: str) -> HttpResponse:
        _require_manager(request)
        _, page, error = self._page(request)
        found = page.table(table) if page else None
        if found is None or page is None:
            raise Http404(error or "No such table, or the filters are not valid.")
        r = page.report
        name = f"report-{table}-{r.start.isoformat()}-{r.end.isoformat()}"
        if r.channel:
            name += f"-{r.channel}"
        if r.document is not None:
            name += f"-document{r.document}"
        if r.agent is not None:
            name += f"-agent{r.agent}"
        response = HttpResponse(table_csv(found), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response
