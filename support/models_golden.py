"""Data model of the golden questions and of the gate that uses them (issue 14): the admin's
questions with what the bot must do with each, and the stored report of every gate decision
(a knowledge-base change, a learned change). Imported by support.models: one app, `support`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

__all__ = ["GateReport", "GoldenQuestion"]


class GoldenQuestion(models.Model):
    """A question the bot must keep handling: found in `document` (in the top 5), or declined."""

    question = models.CharField(max_length=1000)
    document = models.ForeignKey(
        "support.KnowledgeDocument",
        null=True,
        blank=True,
        # The question cannot be checked without its document: deleting the document (a change
        # the gate held and someone published anyway) deletes the questions expecting it.
        on_delete=models.CASCADE,
        related_name="golden_questions",
        help_text="The document the answer must come from (found among the top 5 passages).",
    )
    should_decline = models.BooleanField(
        default=False, help_text="The knowledge base does not answer this: the bot must decline."
    )
    note = models.TextField(blank=True)
    active = models.BooleanField(default=True, help_text="Inactive questions are not run.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("pk",)
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(document__isnull=False, should_decline=False)
                    | Q(document__isnull=True, should_decline=True)
                ),
                name="golden_document_xor_decline",
                violation_error_message=(
                    "Give either the expected document or “should be declined”, not both."
                ),
            ),
            models.UniqueConstraint(
                Lower("question"),
                name="golden_unique_question",
                violation_error_message="This question is already a golden question.",
            ),
        ]

    def __str__(self) -> str:
        return self.question


class GateReport(models.Model):
    """What the gate measured before and after a change, the questions that got worse, and
    what was decided (support.golden)."""

    class Kind(models.TextChoices):
        KB_CHANGE = "kb_change", "Knowledge-base change"
        LEARNING = "learning", "Learned change"

    class Decision(models.TextChoices):
        PROMOTED = "promoted", "Promoted (no regression)"
        HELD = "held", "Held: waiting for a decision"
        FORCED = "forced", "Published anyway"
        KEPT_OLD = "kept_old", "Kept the old version"
        REFUSED = "refused", "Refused by the gate"
        SUPERSEDED = "superseded", "Superseded by a newer change"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    decision = models.CharField(max_length=16, choices=Decision.choices)
    # Per slice ("golden", ...): its measures, on the version served before and the candidate.
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    # [{"slice", "key", "question", "reasons", "blocking", "before", "after"}, ...]
    worse = models.JSONField(default=list)
    regressions = models.JSONField(default=list, help_text="Why the gate refused, one per line")
    before_version = models.PositiveIntegerField(null=True, blank=True)
    after_version = models.PositiveIntegerField(null=True, blank=True)
    # Of the database state the candidate was built from (support.knowledge._fingerprint).
    fingerprint = models.CharField(max_length=200, blank=True, db_index=True)
    # What changed: {"added": [{"id", "title"}], "removed": [{"id", "title", "removal"}]}.
    changes = models.JSONField(default=dict, blank=True)
    documents = models.ManyToManyField(
        "support.KnowledgeDocument", blank=True, related_name="gate_reports"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who published anyway or kept the old version (empty: the gate itself).",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-pk")
        constraints = [
            # One held change at a time: a newer change supersedes it.
            models.UniqueConstraint(
                fields=("kind",), condition=Q(decision="held"), name="gate_one_held_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"Gate report #{self.pk} ({self.get_kind_display()}, {self.decision})"
