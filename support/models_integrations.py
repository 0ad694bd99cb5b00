"""Data model of the integrations (issue 17): API tokens and idempotency records (support.api),
webhook subscriptions with their outbox (support.webhooks), and the e-mail channel
(support.mail). Imported by support.models: one app, `support`."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

__all__ = [
    "ApiToken",
    "EmailAttachment",
    "EmailMessage",
    "IdempotencyRecord",
    "MailboxState",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "webhook_secret_new",
]


# --- REST API ---------------------------------------------------------------------------------
class ApiToken(models.Model):
    """A bearer token for /api/v1/. Only a SHA-256 of the secret is stored; the token is shown
    once, when it is created. A token with a conversation is a customer token: it reaches
    that conversation only."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        KNOWLEDGE = "knowledge", "Knowledge base"
        AGENT = "agent", "Act as an agent"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # The public, non-secret part of the token: finds the row without scanning hashes.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list, blank=True)
    conversation = models.ForeignKey(
        "support.Conversation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="customer_tokens",
        help_text="Set for a customer token: it can reach this conversation only.",
    )
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty: SUPPORT_API_RATE_PER_MINUTE."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_customer(self) -> bool:
        return self.conversation_id is not None


class IdempotencyRecord(models.Model):
    """The response to a POST sent with an Idempotency-Key, replayed on a retry for 24 h."""

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.IN_PROGRESS)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    location = models.CharField(max_length=1000, blank=True)
    body = models.BinaryField(default=b"")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=("token", "key"), name="idempotency_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"


# --- Webhooks -----------------------------------------------------------------------------------
def webhook_secret_new() -> str:
    """A Standard Webhooks secret: "whsec_" and 32 random bytes, base64."""
    import base64

    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


class WebhookSubscription(models.Model):
    class Event(models.TextChoices):
        CONVERSATION_CREATED = "conversation.created", "conversation.created"
        CONVERSATION_ESCALATED = "conversation.escalated", "conversation.escalated"
        CONVERSATION_CLAIMED = "conversation.claimed", "conversation.claimed"
        CONVERSATION_RESOLVED = "conversation.resolved", "conversation.resolved"
        MESSAGE_CREATED = "message.created", "message.created"
        FEEDBACK_CREATED = "feedback.created", "feedback.created"
        DOCUMENT_READY = "document.ready", "document.ready"
        DOCUMENT_FAILED = "document.failed", "document.failed"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="webhook_subscriptions"
    )
    name = models.CharField(max_length=100, blank=True)
    url = models.URLField(max_length=1000)
    events = models.JSONField(default=list, help_text="Event types to send.")
    secret = models.CharField(max_length=100, default=webhook_secret_new, editable=False)
    # During a rotation the old secret signs too, until it expires.
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)
    # Consecutive failed attempts, and since when: repeated failure disables the subscription.
    failure_streak = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("created_at",)
        verbose_name = "webhook"

    def __str__(self) -> str:
        return self.name or self.url


class WebhookEvent(models.Model):
    """One change worth reporting, written in the transaction that made the change (the outbox).
    Its id is the Webhook-Id every delivery and retry of it carries."""

    id = models.CharField(primary_key=True, max_length=40, editable=False)
    type = models.CharField(max_length=40, db_index=True)
    # Not a foreign key: the event outlives a deleted conversation.
    conversation_id = models.UUIDField(null=True, blank=True, db_index=True)
    # 1, 2, 3... per conversation, in the order the changes committed.
    sequence = models.PositiveIntegerField(null=True, blank=True)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.UniqueConstraint(
                fields=("conversation_id", "sequence"),
                condition=Q(conversation_id__isnull=False),
                name="webhook_event_unique_sequence",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    @staticmethod
    def new_id() -> str:
        return f"evt_{uuid.uuid4().hex}"


class WebhookDelivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    subscription = models.ForeignKey(
        WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # Copied from the event: deliveries of one subscription and conversation go in this order.
    conversation_id = models.UUIDField(null=True, blank=True)
    sequence = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Retries stop RETRY_WINDOW after this (the first send, or the latest manual redelivery).
    window_started_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(db_index=True)
    # A worker attempting the delivery holds it until then; a killed worker's lease runs out.
    locked_until = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")
        verbose_name_plural = "webhook deliveries"
        indexes = [models.Index(fields=("subscription", "conversation_id", "sequence"))]
        constraints = [
            models.UniqueConstraint(
                fields=("event", "subscription"), name="webhook_delivery_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.subscription_id} ({self.state})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: the log shown in the admin and the API."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Delivered"
        RETRY = "retry", "Failed, will retry"
        FAILED = "failed", "Failed, not retried"

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    manual = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ("started_at", "id")

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome}"


# --- E-mail channel -----------------------------------------------------------------------------
def _raw_upload_to(instance: EmailMessage, filename: str) -> str:
    return f"mail/raw/{secrets.token_hex(16)}.eml"


def _attachment_upload_to(instance: EmailAttachment, filename: str) -> str:
    return f"mail/attachments/{secrets.token_hex(16)}"


class EmailMessage(models.Model):
    """An e-mail received or sent on a conversation of the e-mail channel."""

    class Direction(models.TextChoices):
        INBOUND = "in", "Received"
        OUTBOUND = "out", "Sent"

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted (became a message)"
        IGNORED = "ignored", "Ignored (auto-reply, bounce, loop)"
        REJECTED = "rejected", "Rejected"
        QUEUED = "queued", "Queued for sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Sending failed"
        BOUNCED = "bounced", "Bounced"

    direction = models.CharField(max_length=3, choices=Direction.choices)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.TextField(blank=True)
    conversation = models.ForeignKey(
        "support.Conversation",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="emails",
    )
    chat_message = models.OneToOneField(
        "support.Message",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="email",
    )
    # The RFC 5322 Message-ID with its angle brackets: inbound mail is idempotent on it.
    message_id = models.CharField(max_length=998, unique=True)
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    from_address = models.CharField(max_length=320, blank=True)
    to_address = models.CharField(max_length=320, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    raw = models.FileField(upload_to=_raw_upload_to, max_length=300, blank=True)
    source = models.CharField(max_length=16, blank=True, help_text="webhook, imap or command")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("created_at", "id")
        verbose_name = "e-mail"

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.message_id} ({self.status})"


class EmailAttachment(models.Model):
    class Status(models.TextChoices):
        STORED = "stored", "Stored"
        REJECTED = "rejected", "Rejected"

    email = models.ForeignKey(EmailMessage, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255)
    declared_type = models.CharField(max_length=100, blank=True)
    detected_type = models.CharField(max_length=100, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    file = models.FileField(upload_to=_attachment_upload_to, max_length=300, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return self.filename


class MailboxState(models.Model):
    """Where IMAP polling of one mailbox folder stands: its UIDVALIDITY and the highest UID
    taken in (the high-water mark)."""

    key = models.CharField(max_length=400, unique=True, help_text="user@host:port/folder")
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    resets = models.PositiveIntegerField(default=0, help_text="UIDVALIDITY changes seen")

    def __str__(self) -> str:
        return f"{self.key} (uid {self.last_uid})"
