"""Who may call what: the token's scopes, intersected with its user's role (support/roles.py
permissions), and per-token rate limits.

A view names the scopes each method needs (`scopes = {"GET": ("read",), "POST": ("agent",)}`;
any one listed scope suffices) and the model permissions its user must hold
(`perms = {"GET": ("support.view_conversation",)}`). A customer token (one bound to a
conversation) passes only views that set `customer_ok` and then reaches only its own
conversation (the views check the id).
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from ..conf import get_support_settings
from ..limits import rate_limit_hit

logger = logging.getLogger(__name__)


def _denied(message: str, code: str) -> exceptions.PermissionDenied:
    exc = exceptions.PermissionDenied(message)
    exc.problem_code = code  # type: ignore[attr-defined]
    return exc


class TokenScopes(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        token: Any = request.auth
        if token is None:
            raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <token>'.")
        method = "GET" if request.method in ("HEAD", "OPTIONS") else str(request.method)
        if token.is_customer and not getattr(view, "customer_ok", {}).get(method, False):
            raise _denied(
                "A customer token reaches only its own conversation.", "permission_denied"
            )
        needed = getattr(view, "scopes", {}).get(method, ())
        if needed and not set(needed) & set(token.scopes or ()):
            raise _denied(
                f"This needs a token with the scope {' or '.join(needed)}.", "scope_missing"
            )
        if not token.is_customer:
            user = request.user
            if not getattr(user, "is_staff", False):
                raise _denied("API tokens act for staff users only.", "permission_denied")
            missing = [
                p for p in getattr(view, "perms", {}).get(method, ()) if not user.has_perm(p)
            ]
            if missing:
                raise _denied(
                    f"Your role does not allow this (needs {', '.join(missing)}).",
                    "permission_denied",
                )
        return True


class TokenRateThrottle(BaseThrottle):
    """SUPPORT_API_RATE_PER_MINUTE requests a minute per token (or the token's own limit),
    over a sliding minute in the shared cache (support.limits)."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        token: Any = request.auth
        if token is None:
            return True
        limit = token.rate_limit_per_minute or get_support_settings().api_rate_per_minute
        try:
            self._wait = rate_limit_hit(key=f"api:{token.pk}", limit=limit)
        except Exception:
            logger.warning("API rate limit not checked: shared cache unavailable", exc_info=True)
            return True
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
