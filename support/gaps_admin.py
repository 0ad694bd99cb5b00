"""Admin: the knowledge-gaps page (the changelist of `GapRun`: the newest run's topics with their
volume, trend, example questions and agents' answers, "Recompute" and "Draft an article") and
the article drafts (list, edit, publish). For staff with `support.view_reports`; publishing
also needs `support.add_knowledgedocument` (it adds a document to the knowledge base).

Thin: each view parses its input and calls one service of support.reports.articles.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from .admin_access import ViewableBy
from .exceptions import SupportError
from .models_gaps import ArticleDraft, GapRun
from .reports import articles
from .reports.gaps import GapTopic
from .reports_admin import can_view_reports

PUBLISH_PERMISSION = "support.add_knowledgedocument"


def _require_manager(request: HttpRequest) -> None:
    if not can_view_reports(request.user):
        raise PermissionDenied("The knowledge gaps are for support managers.")


def can_publish(user: Any) -> bool:
    return can_view_reports(user) and bool(user.has_perm(PUBLISH_PERMISSION))


class _ManagersOnly(ViewableBy):
    """Support managers read and act through the custom views only."""

    may_view = staticmethod(can_view_reports)


@admin.register(GapRun)
class KnowledgeGapsAdmin(_ManagersOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    """The changelist is the knowledge-gaps page of the newest finished run."""

    def get_urls(self) -> list[Any]:
        def wrap(view: Any) -> Any:
            return self.admin_site.admin_view(view)

        return [
            path("", wrap(self.changelist_view), name="support_gaprun_changelist"),
            path("recompute/", wrap(require_POST(self.recompute_view)), name="support_gaps_run"),
            path(
                "<int:run_id>/draft/<int:topic>/",
                wrap(require_POST(self.draft_view)),
                name="support_gaps_draft",
            ),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        _require_manager(request)
        run = articles.gaps_run_latest()
        topics = articles.run_topics(run) if run is not None else []
        drafts: dict[str, ArticleDraft] = {}
        if run is not None:
            for d in ArticleDraft.objects.filter(run=run).order_by("created_at"):
                drafts[str(d.topic.get("name", ""))] = d
        return TemplateResponse(
            request,
            "admin/support/gaprun/gaps.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": "Knowledge gaps",
                "run": run,
                "pending": articles.gaps_run_pending(),
                "failed": GapRun.objects.filter(state=GapRun.State.FAILED).first(),
                "topics": [
                    {"index": i, "topic": t, "draft": drafts.get(t.name)}
                    for i, t in enumerate(topics)
                ],
            },
        )

    def recompute_view(self, request: HttpRequest) -> HttpResponse:
        _require_manager(request)
        if articles.gaps_run_pending() is None:
            articles.gaps_run_request(user=request.user)
            messages.info(request, "The topics are being recomputed; reload in a minute.")
        else:
            messages.info(request, "A computation is already under way.")
        return redirect("admin:support_gaprun_changelist")

    def draft_view(self, request: HttpRequest, run_id: int, topic: int) -> HttpResponse:
        _require_manager(request)
        try:
            draft = articles.article_draft_request(
                run_id=run_id, topic_index=topic, user=request.user
            )
        except SupportError as exc:
            messages.error(request, exc.message)
            return redirect("admin:support_gaprun_changelist")
        return redirect("admin:support_articledraft_edit", draft.pk)


class ArticleForm(forms.Form):
    title = forms.CharField(max_length=articles.MAX_TITLE_CHARS)
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14, "cols": 90}),
        max_length=articles.MAX_BODY_CHARS,
        help_text="Markdown. Published as one FAQ document whose heading is the title.",
    )


@admin.register(ArticleDraft)
class ArticleDraftAdmin(_ManagersOnly, admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("title_link", "state", "written_by", "document", "created_at")
    list_filter = ("state", "written_by")
    search_fields = ("title", "body")
    list_display_links = None

    @admin.display(description="Title", ordering="title")
    def title_link(self, obj: ArticleDraft) -> str:
        url = reverse("admin:support_articledraft_edit", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.title)

    def get_urls(self) -> list[Any]:
        def wrap(view: Any) -> Any:
            return self.admin_site.admin_view(view)

        return [
            path("<int:draft_id>/edit/", wrap(self.edit_view), name="support_articledraft_edit"),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: Any = None,
    ) -> HttpResponse:
        return redirect("admin:support_articledraft_edit", int(object_id))

    def edit_view(self, request: HttpRequest, draft_id: int) -> HttpResponse:
        _require_manager(request)
        draft = get_object_or_404(ArticleDraft, pk=draft_id)
        form = ArticleForm(request.POST or None, initial={"title": draft.title, "body": draft.body})
        published = draft.state == ArticleDraft.State.PUBLISHED
        if request.method == "POST" and not published and form.is_valid():
            publish = "publish" in request.POST
            if publish and not can_publish(request.user):
                raise PermissionDenied("Publishing adds a document: it needs a knowledge admin.")
            try:
                if publish:
                    draft = articles.article_publish(
                        draft_id=draft.pk,
                        title=form.cleaned_data["title"],
                        body=form.cleaned_data["body"],
                        user=request.user,
                    )
                    messages.success(
                        request,
                        f"Published as document “{draft.document}”: it is being ingested "
                        "(and checked by the golden questions when there are any).",
                    )
                else:
                    articles.article_save(
                        draft_id=draft.pk,
                        title=form.cleaned_data["title"],
                        body=form.cleaned_data["body"],
                    )
                    messages.success(request, "Draft saved.")
                return redirect("admin:support_articledraft_edit", draft.pk)
            except SupportError as exc:
                messages.error(request, exc.message)
        return TemplateResponse(
            request,
            "admin/support/articledraft/edit.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Article: {draft.title}",
                "draft": draft,
                "topic": GapTopic.from_dict(draft.topic),
                "form": form,
                "published": published,
                "can_publish": can_publish(request.user),
            },
        )
