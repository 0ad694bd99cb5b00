"""Admin for the integrations: API tokens (created here, shown once, revoked here), webhook
subscriptions with their deliveries, attempt log and a redeliver button, and the e-mail
channel's mail and mailbox state. Actions call services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .api.tokens import token_revoke, token_set_secret
from .exceptions import SupportError
from .models import (
    ApiToken,
    EmailAttachment,
    EmailMessage,
    MailboxState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from .webhooks import delivery as webhook_delivery
from .webhooks import subscriptions


# --- API tokens -----------------------------------------------------------------------------------
class ApiTokenForm(forms.ModelForm):  # type: ignore[type-arg]
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.Scope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiToken
        fields = ("user", "name", "scopes", "rate_limit_per_minute", "expires_at")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = ApiTokenForm
    list_display = (
        "name",
        "user",
        "prefix",
        "scope_list",
        "customer_of",
        "created_at",
        "last_used_at",
        "state",
    )
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix", "user__username")
    actions = ("revoke_tokens",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return (
            "user",
            "prefix",
            "conversation",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ("user", "name", "scopes", "rate_limit_per_minute", "expires_at")
        return (
            "user",
            "name",
            "prefix",
            "scopes",
            "conversation",
            "rate_limit_per_minute",
            "expires_at",
            "created_at",
            "last_used_at",
            "revoked_at",
        )

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is None and not request.user.is_superuser and "user" in form.base_fields:
            users = form.base_fields["user"]
            users.queryset = users.queryset.filter(pk=request.user.pk)  # type: ignore[attr-defined]
            users.initial = request.user.pk
        return form

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if not change:
            if not request.user.is_superuser and obj.user_id != request.user.pk:
                raise PermissionDenied
            plaintext = token_set_secret(obj)
            super().save_model(request, obj, form, change)
            messages.warning(
                request,
                format_html(
                    "The token “{}”: <code>{}</code> — copy it now, it is shown only once.",
                    obj.name,
                    plaintext,
                ),
            )
            return
        super().save_model(request, obj, form, change)

    @admin.display(description="Scopes")
    def scope_list(self, obj: ApiToken) -> str:
        return ", ".join(obj.scopes or [])

    @admin.display(description="Customer of")
    def customer_of(self, obj: ApiToken) -> str:
        return obj.conversation_id.hex[:8] if obj.conversation_id else ""

    @admin.display(description="State")
    def state(self, obj: ApiToken) -> str:
        if obj.revoked_at:
            return "revoked"
        if obj.expires_at and obj.expires_at <= timezone.now():
            return "expired"
        return "active"

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for token in queryset:
            token_revoke(token_id=token.pk)
        messages.success(request, f"{queryset.count()} token(s) revoked.")


# --- webhooks ---------------------------------------------------------------------------------
class WebhookForm(forms.ModelForm):  # type: ignore[type-arg]
    events = forms.MultipleChoiceField(
        choices=WebhookSubscription.Event.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = WebhookSubscription
        fields = ("name", "url", "events", "enabled")

    def clean_url(self) -> str:
        url = str(self.cleaned_data["url"])
        try:
            return subscriptions.url_check(url)
        except SupportError as exc:
            raise ValidationError(exc.message) from exc


class DeliveryInline(admin.TabularInline):  # type: ignore[type-arg]
    model = WebhookDelivery
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("event", "state", "attempts", "last_status", "next_attempt_at", "delivered_at")
    readonly_fields = fields
    ordering = ("-created_at",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("event")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    form = WebhookForm
    list_display = ("__str__", "url", "owner", "enabled", "failure_streak", "disabled_at")
    list_filter = ("enabled",)
    readonly_fields = (
        "owner",
        "disabled_at",
        "disabled_reason",
        "failure_streak",
        "failing_since",
        "previous_secret_expires_at",
        "created_at",
    )
    inlines = (DeliveryInline,)
    actions = ("rotate_secret", "enable_webhooks")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        rows = super().get_queryset(request)
        return rows if request.user.is_superuser else rows.filter(owner=request.user)

    def save_model(
        self, request: HttpRequest, obj: WebhookSubscription, form: Any, change: bool
    ) -> None:
        if not change:
            try:
                sub = subscriptions.subscription_create(
                    owner=request.user,
                    url=obj.url,
                    events=form.cleaned_data["events"],
                    name=obj.name,
                )
            except SupportError as exc:
                messages.error(request, exc.message)
                raise PermissionDenied(exc.message) from exc
            obj.pk = sub.pk
            obj.secret = sub.secret
            messages.warning(
                request,
                format_html(
                    "Signing secret: <code>{}</code> — copy it now, it is shown only once.",
                    sub.secret,
                ),
            )
            return
        subscriptions.subscription_update(
            subscription_id=obj.pk,
            url=obj.url,
            events=form.cleaned_data["events"],
            name=obj.name,
            enabled=obj.enabled,
        )

    @admin.action(
        description="Rotate the secret (the old one signs for a day more)", permissions=["change"]
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for sub in queryset:
            sub = subscriptions.secret_rotate(subscription_id=sub.pk)
            messages.warning(
                request,
                format_html("New secret of “{}”: <code>{}</code> (shown once).", sub, sub.secret),
            )

    @admin.action(description="Enable (resume waiting deliveries)", permissions=["change"])
    def enable_webhooks(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for sub in queryset:
            subscriptions.subscription_update(subscription_id=sub.pk, enabled=True)
        messages.success(request, "Enabled; waiting deliveries are being sent.")


class AttemptInline(admin.TabularInline):  # type: ignore[type-arg]
    model = WebhookAttempt
    extra = 0
    can_delete = False
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
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = (
        "event",
        "event_type",
        "subscription",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("state", "event__type")
    readonly_fields = (
        "event",
        "subscription",
        "state",
        "conversation_id",
        "sequence",
        "attempts",
        "window_started_at",
        "next_attempt_at",
        "locked_until",
        "last_status",
        "last_error",
        "delivered_at",
        "created_at",
        "payload",
        "redeliver_button",
    )
    fields = readonly_fields
    inlines = (AttemptInline,)
    actions = ("redeliver",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        rows = super().get_queryset(request).select_related("event", "subscription")
        return rows if request.user.is_superuser else rows.filter(subscription__owner=request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Event")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.display(description="Payload")
    def payload(self, obj: WebhookDelivery) -> str:
        import json

        return format_html("<pre>{}</pre>", json.dumps(obj.event.payload, indent=2))

    @admin.display(description="Redeliver")
    def redeliver_button(self, obj: WebhookDelivery) -> str:
        url = reverse("admin:support_webhookdelivery_redeliver", args=[obj.pk])
        # Submits the change form itself (with its CSRF token) to the redeliver view.
        return format_html(
            '<button type="submit" class="button" formaction="{}" formmethod="post">'
            "Redeliver now</button> (same Webhook-Id; a new retry window)",
            url,
        )

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<int:delivery_id>/redeliver/",
                self.admin_site.admin_view(self.redeliver_view),
                name="support_webhookdelivery_redeliver",
            ),
            *super().get_urls(),
        ]

    def redeliver_view(self, request: HttpRequest, delivery_id: int) -> HttpResponse:
        if request.method != "POST" or not self.has_change_permission(request):
            raise PermissionDenied
        d = get_object_or_404(self.get_queryset(request), pk=delivery_id)
        webhook_delivery.delivery_redeliver(delivery_id=d.pk)
        messages.success(request, f"Delivery {d.pk} sent again.")
        return HttpResponseRedirect(reverse("admin:support_webhookdelivery_change", args=[d.pk]))

    @admin.action(description="Redeliver selected deliveries", permissions=["change"])
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for d in queryset:
            webhook_delivery.delivery_redeliver(delivery_id=d.pk)
        messages.success(request, f"{queryset.count()} deliveries sent again.")


# --- e-mail -------------------------------------------------------------------------------------
class AttachmentInline(admin.TabularInline):  # type: ignore[type-arg]
    model = EmailAttachment
    extra = 0
    can_delete = False
    fields = ("download", "declared_type", "detected_type", "size_bytes", "status", "reason")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="File")
    def download(self, obj: EmailAttachment) -> str:
        if obj.status != EmailAttachment.Status.STORED:
            return obj.filename
        url = reverse("admin:support_emailmessage_attachment", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.filename)


@admin.register(EmailMessage)
class EmailMessageAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("created_at", "direction", "status", "from_address", "to_address", "subject")
    list_filter = ("direction", "status", "source")
    search_fields = ("message_id", "from_address", "to_address", "subject")
    inlines = (AttachmentInline,)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in EmailMessage._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        return [
            path(
                "attachment/<int:attachment_id>/",
                self.admin_site.admin_view(self.attachment_view),
                name="support_emailmessage_attachment",
            ),
            *super().get_urls(),
        ]

    def attachment_view(self, request: HttpRequest, attachment_id: int) -> FileResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        att = get_object_or_404(EmailAttachment, pk=attachment_id, status="stored")
        # Always a download of opaque bytes: an attachment never renders in our origin.
        response = FileResponse(
            att.file.open("rb"),
            as_attachment=True,
            filename=att.filename,
            content_type="application/octet-stream",
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "sandbox"
        return response


@admin.register(MailboxState)
class MailboxStateAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("key", "uidvalidity", "last_uid", "last_polled_at", "resets", "last_error")
    readonly_fields = ("key", "uidvalidity", "last_uid", "last_polled_at", "resets", "last_error")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
