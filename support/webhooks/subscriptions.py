"""Webhook subscriptions: create, change, rotate the secret, enable (the API and the admin
call these)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from ..conf import get_support_settings
from ..exceptions import InvalidMessage, SupportError
from ..models import WebhookSubscription, webhook_secret_new
from .http import target_resolve

Event = WebhookSubscription.Event
CONVERSATION_EVENTS = frozenset(
    {
        Event.CONVERSATION_CREATED,
        Event.CONVERSATION_ESCALATED,
        Event.CONVERSATION_CLAIMED,
        Event.CONVERSATION_RESOLVED,
        Event.MESSAGE_CREATED,
        Event.FEEDBACK_CREATED,
    }
)
DOCUMENT_EVENTS = frozenset({Event.DOCUMENT_READY, Event.DOCUMENT_FAILED})


class EventNotAllowed(SupportError):
    code = "permission_denied"


def events_check(events: Sequence[str], owner: Any) -> list[str]:
    """The event list, validated: known types, and only what the owner may read (conversation
    events need view_conversation, document events view_knowledgedocument)."""
    cleaned = list(dict.fromkeys(str(e) for e in events))
    if not cleaned:
        raise InvalidMessage("Subscribe to at least one event.", code="validation_failed")
    unknown = [e for e in cleaned if e not in Event.values]
    if unknown:
        raise InvalidMessage(
            f"Unknown event(s): {', '.join(unknown)}. Known: {', '.join(Event.values)}.",
            code="validation_failed",
        )
    if any(e in CONVERSATION_EVENTS for e in cleaned) and not owner.has_perm(
        "support.view_conversation"
    ):
        raise EventNotAllowed("Conversation events need permission to view conversations.")
    if any(e in DOCUMENT_EVENTS for e in cleaned) and not owner.has_perm(
        "support.view_knowledgedocument"
    ):
        raise EventNotAllowed("Document events need permission to view the knowledge base.")
    return cleaned


def url_check(url: str) -> str:
    """Refuse URLs a delivery could not go to (UrlForbidden: private or loopback targets...)."""
    target_resolve(url, allow_private=get_support_settings().webhook_allow_private)
    return url


def subscription_create(
    *, owner: Any, url: str, events: Sequence[str], name: str = ""
) -> WebhookSubscription:
    """A new, enabled subscription with a fresh secret (shown to its creator once)."""
    return WebhookSubscription.objects.create(
        owner=owner, url=url_check(url), events=events_check(events, owner), name=name[:100]
    )


def subscription_update(
    *,
    subscription_id: int,
    url: str | None = None,
    events: Sequence[str] | None = None,
    name: str | None = None,
    enabled: bool | None = None,
) -> WebhookSubscription:
    """Change what is given; enabling a disabled subscription resumes its waiting deliveries."""
    with transaction.atomic():
        sub = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
        if url is not None:
            sub.url = url_check(url)
        if events is not None:
            sub.events = events_check(events, sub.owner)
        if name is not None:
            sub.name = name[:100]
        if enabled is not None and enabled != sub.enabled:
            sub.enabled = enabled
            if enabled:
                sub.disabled_at = None
                sub.disabled_reason = ""
                sub.failure_streak = 0
                sub.failing_since = None
                transaction.on_commit(_sweep)
            else:
                sub.disabled_at = timezone.now()
                sub.disabled_reason = "Disabled by hand."
        sub.save()
    return sub


def _sweep() -> None:
    from .delivery import deliveries_sweep

    deliveries_sweep()


def secret_rotate(*, subscription_id: int) -> WebhookSubscription:
    """A new secret; the old one keeps signing (a second signature) for SUPPORT_WEBHOOK_ROTATION_S,
    so receivers can switch without missing a delivery."""
    with transaction.atomic():
        sub = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
        sub.previous_secret = sub.secret
        sub.previous_secret_expires_at = timezone.now() + timedelta(
            seconds=get_support_settings().webhook_rotation_s
        )
        sub.secret = webhook_secret_new()
        sub.save()
    return sub
