"""Admin notices of the integrations: a webhook of yours that was disabled after repeated
failure is named on every admin page until it is enabled again."""

from __future__ import annotations

from typing import Any

from django import template

from ..models import WebhookSubscription

register = template.Library()


@register.inclusion_tag("admin/support/webhook_notices.html", takes_context=True)
def webhook_notices(context: Any) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {"disabled": []}
    return {
        "disabled": list(
            WebhookSubscription.objects.filter(owner=user, enabled=False)
            .exclude(disabled_reason="Disabled by hand.")
            .order_by("-disabled_at")[:5]
        )
    }
