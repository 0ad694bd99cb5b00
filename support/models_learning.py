"""Data model of learning from resolved conversations (issue 14, docs/learning.md): reviewed
examples and the knowledge-base chunks that ground them. Imported by support.models: one app,
`support`.

An example's grounding names its chunks by a key that survives re-ingestion and index
versions: a chunk's primary key (which is also its id in the search index) changes every time
its document is re-ingested (knowledge._store deletes and recreates the chunks), so each
grounding row keeps the document, a hash of the chunk's normalised text and its position, and
its `chunk` link is re-pointed (learning.grounding.groundings_relink) whenever the document's
chunks are replaced.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

__all__ = ["Example", "ExampleGrounding", "SpecialiseRun"]


class Example(models.Model):
    """One resolved exchange: the customer's question (and the turns before it), the answer
    that resolved it, its source and its review. Stored redacted (learning.redact)."""

    class Source(models.TextChoices):
        AGENT_REPLY = "agent_reply", "Agent reply"
        RATED_HELPFUL = "rated_helpful", "Bot answer rated helpful"
        IMPORT = "import", "Imported"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    class GroundingMethod(models.TextChoices):
        CITED = "cited", "Cited by the answer"
        INFERRED = "inferred", "Inferred from the answer text"
        DOCUMENT = "document", "Best chunk of the named document"
        REVIEWER = "reviewer", "Chosen by a reviewer"
        NONE = "none", "No chunk supports the answer"

    question = models.TextField()
    # [{"role": "user" | "agent", "text": str}], oldest first: the turns before the question.
    history = models.JSONField(default=list, blank=True)
    answer = models.TextField()
    source = models.CharField(max_length=16, choices=Source.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # No chunk supports the answer: a gap in the knowledge base, never a retrieval example.
    knowledge_gap = models.BooleanField(default=False)
    grounding_method = models.CharField(
        max_length=16, choices=GroundingMethod.choices, default=GroundingMethod.NONE
    )
    # Imports: the line's "id" (a second import of it is a duplicate) and "document" as given.
    # NULL (not "") for "no id", so the partial unique constraint ignores other sources.
    external_id = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    document_hint = models.CharField(max_length=300, blank=True)
    conversation = models.ForeignKey(
        "support.Conversation",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="examples",
    )
    # The agent reply or bot answer this example was made from (one example per message).
    answer_message = models.ForeignKey(
        "support.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Examples with one split key land on the same side of the held-back split: a
    # conversation's id, or for imports the opening turn of the exchange (see
    # learning.examples.split_key_of). Held-back examples are evaluated on, never trained on.
    split_key = models.CharField(max_length=64, db_index=True)
    held_back = models.BooleanField(default=False)
    # How many pieces of personal data were replaced when it was stored.
    redactions = models.PositiveIntegerField(default=0)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Set with the state; without a reviewer it was approved automatically (a setting).
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=("state", "source"), name="example_state_source")]
        constraints = [
            models.UniqueConstraint(
                fields=("external_id",),
                condition=Q(external_id__isnull=False),
                name="example_unique_external_id",
            ),
            models.UniqueConstraint(
                fields=("answer_message",),
                condition=Q(answer_message__isnull=False),
                name="example_one_per_answer_message",
            ),
            models.CheckConstraint(
                condition=Q(state__in=("pending", "approved", "rejected")),
                name="example_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(source__in=("agent_reply", "rated_helpful", "import")),
                name="example_source_valid",
            ),
            # Imports carry their id; the other sources never do.
            models.CheckConstraint(
                condition=Q(source="import", external_id__isnull=False)
                | (~Q(source="import") & Q(external_id__isnull=True)),
                name="example_external_id_iff_import",
            ),
            models.CheckConstraint(
                condition=Q(state="pending") | Q(reviewed_at__isnull=False),
                name="example_reviewed_when_decided",
            ),
            models.CheckConstraint(
                condition=~Q(knowledge_gap=True) | Q(grounding_method="none"),
                name="example_gap_has_no_grounding",
            ),
        ]

    def __str__(self) -> str:
        return f"Example {self.pk}: {self.question[:60]}"


class ExampleGrounding(models.Model):
    """A chunk that supports an example's answer, named by a key that outlives the chunk row."""

    example = models.ForeignKey(Example, on_delete=models.CASCADE, related_name="grounding")
    document = models.ForeignKey(
        "support.KnowledgeDocument", on_delete=models.CASCADE, related_name="+"
    )
    # The current chunk row (its pk is its search-index id); NULL while its document is being
    # re-ingested or when the text it pointed at is gone.
    chunk = models.ForeignKey(
        "support.Chunk", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # SHA-256 of the chunk's normalised text (learning.grounding.chunk_key) and its position
    # in the document: what re-links the row after re-ingestion.
    chunk_key = models.CharField(max_length=64, db_index=True)
    chunk_order = models.PositiveIntegerField()
    # The chunk's text when the grounding was chosen (shown in the review queue).
    text = models.TextField()
    score = models.FloatField(null=True, blank=True)
    method = models.CharField(max_length=16, choices=Example.GroundingMethod.choices)
    rank = models.PositiveSmallIntegerField(default=1)

    class Meta:
        ordering = ("example_id", "rank", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("example", "document", "chunk_key"), name="example_grounding_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"example {self.example_id} -> {self.document_id}#{self.chunk_order}"


class SpecialiseRun(models.Model):
    """One run of specialising the retriever (learning.specialise) or the chat model
    (learning.chat_specialise): its progress while it runs, then its gate report. The row with
    `holds_lock` set is the one run allowed at a time, of either kind (one training job on the
    machine)."""

    class Kind(models.TextChoices):
        RETRIEVAL = "retrieval", "Retriever"
        MODEL = "model", "Chat model"
        FACTS = "facts", "Fact ranker"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PROMOTED = "promoted", "Promoted"
        REFUSED = "refused", "Refused by the gate"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"
        ROLLED_BACK = "rolled_back", "Rolled back"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RETRIEVAL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    # The lock: at most one row holds it (a partial unique constraint); released when the run
    # ends, or taken over once `heartbeat_at` is older than SUPPORT_SPECIALISE_LOCK_EXPIRY_S.
    holds_lock = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    force = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    stage = models.CharField(max_length=40, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)  # percent of the whole run
    message = models.TextField(blank=True)
    # The gate's report (SpecialiseReport.to_json): before/after per slice, the questions that
    # got worse, what was trained on.
    report = models.JSONField(default=dict, blank=True)
    model_version = models.PositiveIntegerField(null=True, blank=True)
    index_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("holds_lock",),
                condition=Q(holds_lock=True),
                name="specialise_one_run_at_a_time",
            ),
        ]

    def __str__(self) -> str:
        return f"Specialise run {self.pk} ({self.kind}, {self.status})"
