"""`Idempotency-Key` on POST: the first response (any status below 500) is stored for
SUPPORT_IDEMPOTENCY_TTL_S and replayed, byte for byte, to a retry with the same key and the
same request (`Idempotent-Replayed: true`). The same key with a different request is refused
(422 idempotency_key_reused); while the first is still running, a retry gets 409
idempotency_in_progress. A 5xx is not stored: the retry runs again. Keys are per token."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.request import Request

from ..conf import get_support_settings
from ..models import ApiToken, IdempotencyRecord
from .problems import Problem

MAX_KEY_LENGTH = 255
# A request that crashed its process leaves its record "in progress": taken over after this.
STALE_IN_PROGRESS = timedelta(minutes=5)


class Replay(Exception):
    def __init__(self, response: HttpResponse) -> None:
        super().__init__("idempotent replay")
        self.response = response


@dataclass(frozen=True, slots=True)
class Pending:
    record_id: int


def request_fingerprint(request: Request) -> str:
    h = hashlib.sha256(f"{request.method} {request.get_full_path()}\n".encode())
    data = request.data
    if isinstance(data, bytes | bytearray):
        h.update(bytes(data))
    else:
        items = data.lists() if hasattr(data, "lists") else dict(data).items()
        fields = [(k, v) for k, v in items if k not in request.FILES]
        h.update(json.dumps(sorted(fields, key=lambda kv: kv[0]), default=str).encode())
    for name in sorted(request.FILES):
        for upload in request.FILES.getlist(name):
            h.update(f"\n{name}:{upload.name}:{upload.size}:".encode())
            for chunk in upload.chunks():
                h.update(chunk)
            upload.seek(0)
    return h.hexdigest()


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        bytes(record.body), status=record.status_code or 200, content_type=record.content_type
    )
    if record.location:
        response["Location"] = record.location
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_begin(*, token: ApiToken, key: str, request: Request) -> Pending:
    """Claim the key for this request, or raise Replay (stored response) / Problem."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise Problem(
            "validation_failed",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
        )
    fingerprint = request_fingerprint(request)
    now = timezone.now()
    ttl = timedelta(seconds=get_support_settings().idempotency_ttl_s)
    for _ in range(2):
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    token=token, key=key, fingerprint=fingerprint, expires_at=now + ttl
                )
            return Pending(record.pk)
        except IntegrityError:
            existing = IdempotencyRecord.objects.filter(token=token, key=key).first()
            if existing is None:
                continue
            stale = (
                existing.state == IdempotencyRecord.State.IN_PROGRESS
                and existing.created_at < now - STALE_IN_PROGRESS
            )
            if existing.expires_at <= now or stale:
                existing.delete()
                continue
            if existing.fingerprint != fingerprint:
                raise Problem(
                    "idempotency_key_reused",
                    "This Idempotency-Key was used for a different request.",
                ) from None
            if existing.state == IdempotencyRecord.State.IN_PROGRESS:
                raise Problem(
                    "idempotency_in_progress",
                    "The first request with this Idempotency-Key is still running; retry soon.",
                    headers={"Retry-After": "1"},
                ) from None
            raise Replay(_replay(existing)) from None
    raise Problem("idempotency_in_progress", "Could not claim the Idempotency-Key; retry.")


def idempotency_finish(pending: Pending, response: Any) -> None:
    """Store the response for replays (or drop the claim after a 5xx or a stream)."""
    status = int(response.status_code)
    if status >= 500 or getattr(response, "streaming", False):
        IdempotencyRecord.objects.filter(pk=pending.record_id).delete()
        return
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    IdempotencyRecord.objects.filter(pk=pending.record_id).update(
        state=IdempotencyRecord.State.DONE,
        status_code=status,
        content_type=response.get("Content-Type", "application/json"),
        location=response.get("Location", ""),
        body=bytes(response.content),
    )


def idempotency_purge() -> int:
    """Delete records past their 24 hours; returns how many."""
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
