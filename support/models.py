"""Data model: conversations and their messages, the knowledge base, escalations, feedback."""

from __future__ import annotations

import secrets
import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.db.models import Q


class Conversation(models.Model):
    class Status(models.TextChoices):
        BOT = "bot", "With the bot"
        QUEUED = "queued", "Waiting for a person"
        AGENT = "agent", "With an agent"
        RESOLVED = "resolved", "Resolved"

    class Channel(models.TextChoices):
        WIDGET = "widget", "Website widget"
        API = "api", "API"
        CLI = "cli", "Command line"
        EMAIL = "email", "E-mail"

    # The public id: random (UUID4, 122 bits), so it cannot be guessed or enumerated.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOT)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.WIDGET)
    customer_name = models.CharField(max_length=200, blank=True)
    customer_email = models.EmailField(blank=True)
    language = models.CharField(max_length=16, blank=True)
    origin = models.CharField(
        max_length=300, blank=True, help_text="Website that embedded the chat"
    )
    assigned_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_conversations",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The end-of-chat satisfaction rating (1-5) and its optional comment (docs/reports.md).
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    rating_comment = models.TextField(blank=True)
    rated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        indexes = [
            models.Index(fields=("status", "created_at")),
            # Reports: a returning customer (a durable resolution) is found by address.
            models.Index(fields=("customer_email",), name="conversation_customer_email"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__isnull=True) | Q(rating__gte=1, rating__lte=5),
                name="conversation_rating_1_to_5",
            ),
        ]

    def __str__(self) -> str:
        return f"Conversation {self.id.hex[:8]} ({self.status})"

    @property
    def bot_active(self) -> bool:
        return self.status == self.Status.BOT


class Message(models.Model):
    class Role(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        BOT = "bot", "Bot"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    class Action(models.TextChoices):
        ANSWER = "answer", "Generated answer"
        EXTRACTIVE = "extractive", "Quoted from the knowledge base"
        ESCALATE = "escalate", "Declined / escalated"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField()
    # Internal notes between agents: never shown to the customer.
    internal = models.BooleanField(default=False)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # Client-supplied id: a resend after a reconnect must never create a second message.
    # NULL (not "") for "no id", so the partial unique constraint ignores it.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    # For bot messages: the customer message this answers (at most one answer each).
    in_reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replies"
    )
    citations = models.JSONField(default=list, blank=True)
    retrieved = models.JSONField(default=list, blank=True)
    retrieval_confidence = models.FloatField(null=True, blank=True)
    answer_confidence = models.FloatField(null=True, blank=True)
    grounded = models.BooleanField(null=True, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    prompt_version = models.CharField(max_length=32, blank=True)
    # {"retrieval_ms", "ttft_ms", "total_ms", "tokens"}
    timings = models.JSONField(default=dict, blank=True)
    # Bot messages: what produced the answer (query, passages, facts, each stage's decision,
    # timings, CPU time): the per-answer trace shown in the admin.
    trace = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Customer messages: when the outcome watchdog re-queued the answer (it does so once).
    requeued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("conversation", "client_id"),
                condition=Q(client_id__isnull=False),
                name="message_unique_client_id_per_conversation",
            ),
            models.UniqueConstraint(
                fields=("in_reply_to",),
                condition=Q(role="bot", in_reply_to__isnull=False),
                name="message_one_bot_reply_per_question",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:60]}"


def _document_upload_to(instance: KnowledgeDocument, filename: str) -> str:
    # Stored under a generated name: the client's path never reaches the file system.
    suffix = PurePosixPath(filename).suffix.lower()[:10]
    return f"documents/{secrets.token_hex(16)}{suffix}"


class KnowledgeDocument(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        DISABLED = "disabled", "Disabled"

    class Removal(models.TextChoices):
        DISABLE = "disable", "Disable"
        DELETE = "delete", "Delete"

    title = models.CharField(max_length=300, blank=True)
    file = models.FileField(upload_to=_document_upload_to, max_length=300)
    original_filename = models.CharField(max_length=255)
    source_url = models.URLField(max_length=1000, blank=True)
    checksum = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the file")
    file_format = models.CharField(max_length=16, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent, while processing")
    error = models.TextField(blank=True)
    chunk_count = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    indexed_at = models.DateTimeField(null=True, blank=True)
    # A disable or delete waiting for the golden questions (support.golden): still served until
    # the index without the document is published, then applied.
    pending_removal = models.CharField(
        max_length=8, choices=Removal.choices, blank=True, default=""
    )

    class Meta:
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(fields=("checksum",), name="document_unique_checksum"),
        ]

    def __str__(self) -> str:
        return self.title or self.original_filename


class Chunk(models.Model):
    document = models.ForeignKey(KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks")
    order = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = models.JSONField(default=list, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    anchor = models.CharField(max_length=200, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    # float32 little-endian, L2-normalised: any worker can rebuild its index from the database.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("document_id", "order")
        constraints = [
            models.UniqueConstraint(fields=("document", "order"), name="chunk_unique_order"),
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.order}"

    @property
    def heading(self) -> str:
        return " › ".join(self.heading_path)


class AgentProfile(models.Model):
    """What customers see of an agent: a display name instead of the login name."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile"
    )
    display_name = models.CharField(
        max_length=100, help_text="Shown to customers (e.g. 'Sam from Support')."
    )

    def __str__(self) -> str:
        return self.display_name


class Escalation(models.Model):
    class State(models.TextChoices):
        OPEN = "open", "Waiting"
        CLAIMED = "claimed", "Claimed by an agent"
        RESOLVED = "resolved", "Resolved"
        HANDED_BACK = "handed_back", "Handed back to the bot"

    class Reason(models.TextChoices):
        CUSTOMER_REQUEST = "customer_request", "Customer asked for a person"
        LOW_CONFIDENCE = "low_confidence", "Low retrieval confidence"
        UNGROUNDED = "ungrounded", "Answer not grounded"
        REPEATED_FAILURE = "repeated_failure", "Repeated failure"
        FRUSTRATION = "frustration", "Frustration"
        SENSITIVE_TOPIC = "sensitive_topic", "Sensitive topic"
        # Set by the delivery machinery (support.outcomes), not by the escalation rules.
        NO_ANSWER = "no_answer", "No answer in time"
        BUSY = "busy", "Too many questions waiting"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="escalations"
    )
    reasons = models.JSONField(default=list)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    trigger_message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created_at",)
        constraints = [
            # At most one live escalation per conversation.
            models.UniqueConstraint(
                fields=("conversation",),
                condition=Q(state__in=("open", "claimed")),
                name="escalation_one_live_per_conversation",
            ),
        ]

    def __str__(self) -> str:
        return f"Escalation of {self.conversation_id} ({self.state})"


class Feedback(models.Model):
    class Value(models.TextChoices):
        UP = "up", "Thumbs up"
        DOWN = "down", "Thumbs down"

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="feedback")
    value = models.CharField(max_length=4, choices=Value.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"{self.value} on message {self.message_id}"


class SensitiveTopic(models.Model):
    """A topic an admin wants a person to handle; matched by keywords, examples or an amount."""

    name = models.CharField(max_length=100, unique=True)
    keywords = models.TextField(
        blank=True,
        help_text="One per line, matched as whole words, case-insensitive "
        "(e.g. 'lawyer', 'delete my account').",
    )
    examples = models.TextField(
        blank=True,
        help_text="Example customer messages, one per line; similar messages also match.",
    )
    amount_threshold = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Optional: match only when the message names an amount above this "
        "(any currency), e.g. 500 for 'refund over 500'.",
    )
    customer_message = models.TextField(
        help_text="Sent to the customer (as a system message) when this topic matches."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


# --- Agent workspace --------------------------------------------------------------------------


class EscalationQueue(Escalation):
    """The agent workspace in the admin: a proxy (no table) that carries its permission."""

    class Meta:
        proxy = True
        verbose_name = "escalation queue"
        verbose_name_plural = "escalation queue"
        default_permissions = ()
        permissions = [("work_escalations", "Can work escalations in the agent workspace")]


class CannedResponse(models.Model):
    """A prepared reply an agent inserts and edits; placeholders are filled in when inserted."""

    title = models.CharField(max_length=100, unique=True)
    text = models.TextField(
        help_text="Placeholders: {customer_name}, {agent_name}, {company_name}. "
        "The agent can edit the text before sending it."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("title",)

    def __str__(self) -> str:
        return self.title


class Holiday(models.Model):
    """A day without staff, in the business time zone (on top of SUPPORT_HOLIDAYS)."""

    date = models.DateField(unique=True)
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ("date",)

    def __str__(self) -> str:
        return f"{self.date.isoformat()} {self.name}".strip()


class ReplyEmail(models.Model):
    """An agent reply that was also sent to the customer's email address."""

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="reply_email")
    to = models.EmailField()
    sent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"message {self.message_id} to {self.to}"


class ReportDay(models.Model):
    """The daily rollup of the reports: one local day and channel's counts, sums and duration
    histograms (support.reports; docs/reports.md), recomputed while the day can still change."""

    day = models.DateField()
    channel = models.CharField(max_length=16, choices=Conversation.Channel.choices)
    # The time zone and windows the row was computed with: a row on another basis is recomputed.
    basis = models.CharField(max_length=200)
    figures = models.JSONField(default=dict)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ("day", "channel")
        # Rows are written by the service only; the permission opens the reports and /metrics.
        default_permissions = ()
        permissions = [("view_reports", "Can view the support reports and /metrics")]
        constraints = [
            models.UniqueConstraint(fields=("day", "channel"), name="reportday_unique_day_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.day.isoformat()} {self.channel}"


# Golden questions and the reports of the gate (issue 14).
# Knowledge gaps (issue 16): computed topics and the article drafts written from them.
from .models_gaps import *  # noqa: E402, F403
from .models_golden import *  # noqa: E402, F403

# API tokens, webhooks and the e-mail channel (issue 17): one app, their models live there.
from .models_integrations import *  # noqa: E402, F403

# Learning from resolved conversations (issue 14): reviewed examples and their grounding.
from .models_learning import *  # noqa: E402, F403
