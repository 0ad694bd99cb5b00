"""Data model of the knowledge gaps (docs/reports.md, "Knowledge gaps"): a computed set of topics
and the article drafts written from them. Imported by support.models: one app, `support`.

Both are read and written through support.reports.articles only; access is the reports'
permission (`support.view_reports`), and publishing also needs `support.add_knowledgedocument`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

__all__ = ["ArticleDraft", "GapRun"]


class GapRun(models.Model):
    """One computation of the knowledge-gap topics of a period (a worker embeds the questions:
    the web process never loads the embedding model)."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    start = models.DateTimeField()
    end = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    # [GapTopic.as_dict()], ranked (support.reports.gaps).
    topics = models.JSONField(default=list, blank=True)
    questions = models.PositiveIntegerField(default=0)
    previous_questions = models.PositiveIntegerField(default=0)
    distance_threshold = models.FloatField(null=True, blank=True)
    embedder = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "knowledge gaps"
        verbose_name_plural = "knowledge gaps"
        default_permissions = ()
        constraints = [
            models.CheckConstraint(
                condition=Q(end__gt=models.F("start")), name="gaprun_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"Knowledge gaps {self.start:%Y-%m-%d} – {self.end:%Y-%m-%d} ({self.state})"


class ArticleDraft(models.Model):
    """A knowledge-base article (an FAQ entry) drafted from one topic's agent answers; a person
    edits it and publishes it as a document."""

    class State(models.TextChoices):
        WRITING = "writing", "Being written"
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    class Writer(models.TextChoices):
        MODEL = "model", "Proposed by the chat model"
        FALLBACK = "fallback", "The most typical agent answer (the model gave none)"
        NONE = "none", "No agent answer to draft from"
        PERSON = "person", "Edited by a person"

    run = models.ForeignKey(
        GapRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="drafts"
    )
    # The topic as it was when drafted (GapTopic.as_dict()).
    topic = models.JSONField(default=dict)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.WRITING)
    written_by = models.CharField(max_length=16, choices=Writer.choices, blank=True)
    # Why the model's proposal was not used (a fallback).
    note = models.TextField(blank=True)
    document = models.ForeignKey(
        "support.KnowledgeDocument",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        default_permissions = ()
        constraints = [
            models.CheckConstraint(
                condition=~Q(state="published") | Q(published_at__isnull=False),
                name="articledraft_published_has_time",
            ),
        ]

    def __str__(self) -> str:
        return self.title
