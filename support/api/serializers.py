"""Request validation and response shapes of /api/v1/ (also the OpenAPI schema's components)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from ..events import answer_source, citations_with_urls, display_name, line_kind
from ..models import (
    ApiToken,
    Conversation,
    KnowledgeDocument,
    Message,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)


class ConversationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    id = serializers.SerializerMethodField()
    assigned_agent = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = (
            "id",
            "url",
            "status",
            "channel",
            "customer_name",
            "customer_email",
            "language",
            "origin",
            "assigned_agent",
            "created_at",
            "updated_at",
            "last_message_at",
            "resolved_at",
            "rating",
            "rating_comment",
            "rated_at",
        )

    def get_id(self, obj: Conversation) -> str:
        return obj.pk.hex

    def get_url(self, obj: Conversation) -> str:
        request = self.context.get("request")
        path = f"/api/v1/conversations/{obj.pk.hex}/"
        return request.build_absolute_uri(path) if request is not None else path

    def get_assigned_agent(self, obj: Conversation) -> str | None:
        agent = obj.assigned_agent
        return display_name(agent) if agent else None


class ConversationCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    customer_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    customer_email = serializers.EmailField(required=False, allow_blank=True)
    language = serializers.CharField(max_length=16, required=False, allow_blank=True)
    origin = serializers.CharField(max_length=300, required=False, allow_blank=True)


class ConversationCreatedSerializer(serializers.Serializer):  # type: ignore[type-arg]
    conversation = ConversationSerializer()
    customer_token = serializers.CharField(
        help_text="A token for this conversation only (scopes read, write), shown once."
    )


class CitationSerializer(serializers.Serializer):  # type: ignore[type-arg]
    n = serializers.IntegerField()
    document_id = serializers.IntegerField()
    chunk_id = serializers.IntegerField()
    heading = serializers.CharField()
    url = serializers.CharField()


class MessageSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    conversation_id = serializers.SerializerMethodField()
    author_name = serializers.SerializerMethodField()
    citations = serializers.SerializerMethodField()
    reply_to = serializers.IntegerField(source="in_reply_to_id", allow_null=True)
    # DRF's metaclass takes declared fields off the class, so Field.source is not overridden.
    source = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="Bot answers: where the words come from: knowledge_base (the model over the "
        "cited passages, a quote or a decline) or learned (an approved example's answer); null "
        "for other roles."
    )
    kind = serializers.SerializerMethodField(
        help_text="A system line's kind (notice, queued, ack, claimed, handed_back, ended); "
        "null for other roles."
    )

    class Meta:
        model = Message
        fields = (
            "id",
            "conversation_id",
            "role",
            "text",
            "internal",
            "client_id",
            "reply_to",
            "author_name",
            "citations",
            "retrieval_confidence",
            "action",
            "source",
            "kind",
            "created_at",
        )

    def get_conversation_id(self, obj: Message) -> str:
        return obj.conversation_id.hex

    def get_author_name(self, obj: Message) -> str | None:
        author = obj.author
        return display_name(author) if author else None

    def get_citations(self, obj: Message) -> list[dict[str, Any]]:
        return citations_with_urls(obj.citations or [])

    def get_source(self, obj: Message) -> str | None:
        return answer_source(obj)

    def get_kind(self, obj: Message) -> str | None:
        return line_kind(obj)


class MessageCreateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    role = serializers.ChoiceField(
        choices=("customer", "agent"),
        default="customer",
        help_text="customer: for custom channels (a customer token, or a write token on an "
        "API-channel conversation). agent: a reply by the token's user (scope agent).",
    )
    text = serializers.CharField(max_length=8000, trim_whitespace=False)
    client_id = serializers.CharField(
        max_length=64,
        required=False,
        help_text="Customer messages: your id for the message; a resend is stored once.",
    )


class RatingSerializer(serializers.Serializer):  # type: ignore[type-arg]
    # Typed here; the range and the comment's length are the service's (conversation_rate).
    rating = serializers.IntegerField(help_text="1 (poor) to 5 (excellent).")
    comment = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Optional, at most 1000 characters.",
    )


class DocumentSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = KnowledgeDocument
        fields = (
            "id",
            "title",
            "original_filename",
            "source_url",
            "file_format",
            "size_bytes",
            "status",
            "progress",
            "error",
            "chunk_count",
            "checksum",
            "pending_removal",
            "created_at",
            "updated_at",
            "indexed_at",
        )


class DocumentUploadSerializer(serializers.Serializer):  # type: ignore[type-arg]
    file = serializers.FileField()
    title = serializers.CharField(max_length=300, required=False, allow_blank=True)
    source_url = serializers.URLField(max_length=1000, required=False, allow_blank=True)


class QueueItemSerializer(serializers.Serializer):  # type: ignore[type-arg]
    conversation_id = serializers.CharField()
    escalation_id = serializers.IntegerField()
    state = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    wait_seconds = serializers.IntegerField()
    customer_name = serializers.CharField()
    customer_email = serializers.CharField()
    first_question = serializers.CharField()
    language = serializers.CharField()
    claimed_by = serializers.CharField(allow_null=True)


class QueueSerializer(serializers.Serializer):  # type: ignore[type-arg]
    count = serializers.IntegerField(help_text="How many wait for a person")
    waiting = QueueItemSerializer(many=True)
    active = QueueItemSerializer(many=True, help_text="Claimed by an agent")


class WebhookSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookSubscription.Event.values)
    )
    rotation_ends_at = serializers.DateTimeField(
        source="previous_secret_expires_at", read_only=True, allow_null=True
    )

    class Meta:
        model = WebhookSubscription
        fields = (
            "id",
            "name",
            "url",
            "events",
            "enabled",
            "disabled_at",
            "disabled_reason",
            "failure_streak",
            "rotation_ends_at",
            "created_at",
            "updated_at",
        )
        read_only_fields = (
            "id",
            "disabled_at",
            "disabled_reason",
            "failure_streak",
            "created_at",
            "updated_at",
        )


class WebhookWithSecretSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown on create and rotate only.")

    class Meta(WebhookSerializer.Meta):
        fields: tuple[str, ...] = (*WebhookSerializer.Meta.fields, "secret")  # type: ignore[assignment]


class WebhookUpdateSerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    url = serializers.URLField(max_length=1000, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookSubscription.Event.values), required=False
    )
    enabled = serializers.BooleanField(required=False)


class AttemptSerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    class Meta:
        model = WebhookAttempt
        fields = (
            "number",
            "manual",
            "started_at",
            "duration_ms",
            "status_code",
            "outcome",
            "error",
            "response_excerpt",
        )


class DeliverySerializer(serializers.ModelSerializer):  # type: ignore[type-arg]
    webhook_id = serializers.CharField(source="event_id")
    event_type = serializers.CharField(source="event.type")
    conversation_id = serializers.SerializerMethodField()

    class Meta:
        model = WebhookDelivery
        fields = (
            "id",
            "webhook_id",
            "event_type",
            "conversation_id",
            "sequence",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status",
            "last_error",
            "delivered_at",
            "created_at",
        )

    def get_conversation_id(self, obj: WebhookDelivery) -> str | None:
        return obj.conversation_id.hex if obj.conversation_id else None


class DeliveryDetailSerializer(DeliverySerializer):
    log = AttemptSerializer(many=True, read_only=True)
    payload = serializers.JSONField(source="event.payload")

    class Meta(DeliverySerializer.Meta):
        fields: tuple[str, ...] = (*DeliverySerializer.Meta.fields, "payload", "log")  # type: ignore[assignment]


class TurnSerializer(serializers.Serializer):  # type: ignore[type-arg]
    role = serializers.ChoiceField(choices=("customer", "bot", "agent"))
    text = serializers.CharField(max_length=8000)


class AskSerializer(serializers.Serializer):  # type: ignore[type-arg]
    question = serializers.CharField(max_length=2000)
    history = TurnSerializer(many=True, required=False)
    stream = serializers.BooleanField(
        default=False,
        help_text="Server-sent events (also when the request accepts text/event-stream).",
    )


class AskResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    answer = serializers.CharField()
    action = serializers.CharField()
    reason = serializers.CharField()
    reasons = serializers.ListField(child=serializers.CharField())
    confidence = serializers.FloatField()
    answer_confidence = serializers.FloatField()
    grounded = serializers.BooleanField(allow_null=True)
    support = serializers.FloatField(allow_null=True)
    citations = serializers.ListField(child=serializers.DictField())
    retrieved = serializers.ListField(child=serializers.DictField())
    prompt_version = serializers.CharField()
    retrieval_ms = serializers.FloatField(allow_null=True)
    ttft_ms = serializers.FloatField(allow_null=True)
    total_ms = serializers.FloatField(allow_null=True)
    tokens = serializers.IntegerField(allow_null=True)


class InboundMailResultSerializer(serializers.Serializer):  # type: ignore[type-arg]
    email_id = serializers.IntegerField()
    status = serializers.CharField()
    message_id = serializers.CharField()
    conversation_id = serializers.CharField(allow_null=True)
    reason = serializers.CharField()
    duplicate = serializers.BooleanField()


class TokenScopesField(serializers.MultipleChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=ApiToken.Scope.choices, **kwargs)
