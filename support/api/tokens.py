"""API tokens: `sbt_<prefix>_<secret>`. The prefix finds the row; only SHA-256 of the whole
token is stored (tokens are 256-bit random, so a fast hash is enough) and compared in
constant time. The plain token exists once: in the return value of `token_create`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.utils import timezone

from ..exceptions import InvalidMessage, SupportError
from ..models import ApiToken

TOKEN_PREFIX = "sbt_"  # noqa: S105 (a format marker, not a secret)
LAST_USED_EVERY = timedelta(seconds=60)  # at most one write per token a minute


class TokenInvalid(SupportError):
    code = "token_invalid"


class TokenRevoked(SupportError):
    code = "token_revoked"


@dataclass(frozen=True, slots=True)
class NewToken:
    token: ApiToken
    plaintext: str  # show it once; it is not stored


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def scopes_check(scopes: Sequence[str]) -> list[str]:
    cleaned = list(dict.fromkeys(str(s).strip() for s in scopes if str(s).strip()))
    unknown = [s for s in cleaned if s not in ApiToken.Scope.values]
    if unknown:
        raise InvalidMessage(
            f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ApiToken.Scope.values)}.",
            code="validation_failed",
        )
    return cleaned


def token_create(
    *,
    user: Any,
    name: str,
    scopes: Sequence[str],
    conversation_id: UUID | None = None,
    rate_limit_per_minute: int | None = None,
    expires_at: Any = None,
) -> NewToken:
    """A new token for `user` (a customer token when `conversation_id` is given)."""
    prefix = secrets.token_hex(6)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user,
        name=name[:100] or "token",
        prefix=prefix,
        key_hash=_hash(plaintext),
        scopes=scopes_check(scopes),
        conversation_id=conversation_id,
        rate_limit_per_minute=rate_limit_per_minute,
        expires_at=expires_at,
    )
    return NewToken(token, plaintext)


def token_set_secret(token: ApiToken) -> str:
    """Give an unsaved admin-made token its prefix and hash; returns the plain token."""
    token.prefix = secrets.token_hex(6)
    plaintext = f"{TOKEN_PREFIX}{token.prefix}_{secrets.token_urlsafe(32)}"
    token.key_hash = _hash(plaintext)
    token.scopes = scopes_check(token.scopes or [])
    return plaintext


def token_authenticate(plaintext: str) -> ApiToken:
    """The live token for this bearer value; TokenInvalid / TokenRevoked otherwise."""
    if not plaintext.startswith(TOKEN_PREFIX) or plaintext.count("_") < 2:
        raise TokenInvalid("That is not an API token of this service.")
    prefix = plaintext[len(TOKEN_PREFIX) :].split("_", 1)[0]
    token = ApiToken.objects.select_related("user").filter(prefix=prefix).first()
    if token is None or not hmac.compare_digest(token.key_hash, _hash(plaintext)):
        raise TokenInvalid("Unknown API token.")
    now = timezone.now()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        raise TokenRevoked("This API token was revoked or has expired.")
    if not token.user.is_active:
        raise TokenRevoked("The owner of this API token is inactive.")
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def token_revoke(*, token_id: int) -> ApiToken:
    """Revoke now (idempotent): the next request with it gets 401 token_revoked."""
    token = ApiToken.objects.get(pk=token_id)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token
