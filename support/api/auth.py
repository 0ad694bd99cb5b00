"""`Authorization: Bearer <token>` for DRF; the token is `request.auth`."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from .tokens import TokenInvalid, TokenRevoked, token_authenticate


class BearerTokenAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            exc = exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
            exc.problem_code = "token_invalid"  # type: ignore[attr-defined]
            raise exc
        try:
            token = token_authenticate(value.strip())
        except (TokenInvalid, TokenRevoked) as err:
            exc = exceptions.AuthenticationFailed(err.message)
            exc.problem_code = err.code  # type: ignore[attr-defined]
            raise exc from err
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[misc,no-untyped-call]
    target_class = "support.api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "sbt_<prefix>_<secret>"}
