"""Websocket origin check against the embed allow-list from settings."""

from __future__ import annotations

from typing import Any

from channels.security.websocket import OriginValidator
from django.conf import settings

from .conf import get_support_settings


class EmbedOriginValidator:
    """Accept connections from ALLOWED_HOSTS and SUPPORT_ALLOWED_EMBED_ORIGINS only.

    Resolved per connection (not at import), so `override_settings` in tests takes effect.
    """

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        allowed = [*settings.ALLOWED_HOSTS, *get_support_settings().allowed_embed_origins]
        if settings.DEBUG and not settings.ALLOWED_HOSTS:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        validator = OriginValidator(self.application, allowed)
        return await validator(scope, receive, send)
