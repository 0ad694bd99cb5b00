"""Sending deliveries: one attempt at a time per delivery (a lease), in sequence order per
subscription and conversation, retried with exponential backoff and jitter for
SUPPORT_WEBHOOK_RETRY_WINDOW_S on timeouts, connection errors, 5xx, 408 and 429; other
answers stop. Every attempt is logged. Repeated failure disables the subscription.

At-least-once: a worker killed after the receiver got the request but before the result was
stored leaves the delivery leased; when the lease runs out the sweep sends it again with the
same Webhook-Id, which idempotent receivers use to take it once.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from .. import jobs
from ..conf import get_support_settings
from ..models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from . import signing
from .http import DeliveryError, HttpResult, UrlForbidden, post, target_resolve

logger = logging.getLogger(__name__)

# Answers a receiver may give for "try again later"; any other 4xx is final.
RETRYABLE_4XX = frozenset({408, 429})
# A lease covers the longest an attempt can take (resolve, connect, send, wait, read: each
# bounded by the timeout) plus a margin; then the sweep may try again.
LEASE_TIMEOUTS = 3
LEASE_MARGIN_S = 5.0
SWEEP_LIMIT = 500


@dataclass(frozen=True, slots=True)
class AttemptResult:
    outcome: str  # delivered, retry, failed, or why nothing was sent: busy, waiting, ...
    status: int | None = None
    error: str = ""


def backoff_s(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """The wait after failed attempt number `attempt` (1, 2, ...): base * 2^(attempt-1), at most
    `cap`, with "equal jitter" (between half and all of it) so receivers recovering from an
    outage are not hit by every sender at the same second."""
    full = min(cap, base * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(full / 2, full)


def active_secrets(sub: WebhookSubscription, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during a rotation."""
    keep_previous = (
        sub.previous_secret
        and sub.previous_secret_expires_at is not None
        and sub.previous_secret_expires_at > now
    )
    return [sub.secret, sub.previous_secret] if keep_previous else [sub.secret]


def body_bytes(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _earlier_pending(delivery: WebhookDelivery) -> bool:
    if delivery.conversation_id is None or delivery.sequence is None:
        return False
    return WebhookDelivery.objects.filter(
        subscription_id=delivery.subscription_id,
        conversation_id=delivery.conversation_id,
        sequence__lt=delivery.sequence,
        state=WebhookDelivery.State.PENDING,
    ).exists()


def _claim(delivery_id: int, *, manual: bool, now: datetime) -> WebhookDelivery | str:
    """Lease the delivery for one attempt, or say why not."""
    conf = get_support_settings()
    with transaction.atomic():
        d = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("event", "subscription")
            .filter(pk=delivery_id)
            .first()
        )
        if d is None:
            return "missing"
        if d.locked_until is not None and d.locked_until > now:
            return "busy"
        if d.state != WebhookDelivery.State.PENDING:
            return d.state
        if not manual:
            if not d.subscription.enabled:
                return "disabled"
            if d.next_attempt_at > now:
                return "not_due"
            if _earlier_pending(d):
                return "waiting"
        lease = now + timedelta(seconds=LEASE_TIMEOUTS * conf.webhook_timeout_s + LEASE_MARGIN_S)
        d.locked_until = lease
        # Should this worker die mid-attempt, the sweep retries once the lease is over.
        d.next_attempt_at = lease
        d.attempts += 1
        d.save(update_fields=["locked_until", "next_attempt_at", "attempts"])
        return d


def delivery_attempt(*, delivery_id: int, manual: bool = False) -> AttemptResult:
    """Make one attempt at a pending delivery (due, next in its conversation's order, not
    leased by another worker); `manual` skips the due and order checks (redeliver)."""
    conf = get_support_settings()
    started = timezone.now()
    claimed = _claim(delivery_id, manual=manual, now=started)
    if isinstance(claimed, str):
        return AttemptResult(claimed)
    d = claimed
    sub = d.subscription
    body = body_bytes(d.event.payload)
    timestamp = int(time.time())
    headers = signing.headers_build(
        secrets=active_secrets(sub, started), msg_id=d.event_id, timestamp=timestamp, body=body
    )
    t0 = time.monotonic()
    result: HttpResult | None = None
    error = ""
    final = False
    try:
        target = target_resolve(sub.url, allow_private=conf.webhook_allow_private)
        result = post(target, body=body, headers=headers, timeout=conf.webhook_timeout_s)
    except UrlForbidden as exc:
        error, final = exc.message, True
    except DeliveryError as exc:
        error = str(exc)
    except Exception as exc:  # never lose the attempt's record to an unexpected error
        logger.exception("Webhook delivery %s failed unexpectedly", d.pk)
        error = f"{type(exc).__name__}: {exc}"
    duration_ms = int((time.monotonic() - t0) * 1000)
    return _record(d, started, duration_ms, result, error, final, manual)


def _classify(result: HttpResult | None, final: bool) -> str:
    if result is None:
        return WebhookAttempt.Outcome.FAILED if final else WebhookAttempt.Outcome.RETRY
    if 200 <= result.status < 300:
        return WebhookAttempt.Outcome.SUCCESS
    if result.status >= 500 or result.status in RETRYABLE_4XX:
        return WebhookAttempt.Outcome.RETRY
    return WebhookAttempt.Outcome.FAILED  # 3xx (redirects are not followed) and other 4xx


def _record(
    d: WebhookDelivery,
    started: datetime,
    duration_ms: int,
    result: HttpResult | None,
    error: str,
    final: bool,
    manual: bool,
) -> AttemptResult:
    conf = get_support_settings()
    outcome = _classify(result, final)
    status = result.status if result is not None else None
    if result is not None and outcome != WebhookAttempt.Outcome.SUCCESS and not error:
        error = f"HTTP {result.status}" + (
            " (redirects are not followed)" if 300 <= result.status < 400 else ""
        )
    now = timezone.now()
    with transaction.atomic():
        d = WebhookDelivery.objects.select_for_update().get(pk=d.pk)
        sub = WebhookSubscription.objects.select_for_update().get(pk=d.subscription_id)
        if outcome == WebhookAttempt.Outcome.RETRY:
            wait = backoff_s(
                d.attempts, base=conf.webhook_backoff_base_s, cap=conf.webhook_backoff_max_s
            )
            if result is not None and result.retry_after is not None:
                wait = min(max(wait, result.retry_after), conf.webhook_backoff_max_s)
            next_at = now + timedelta(seconds=wait)
            if next_at > d.window_started_at + timedelta(seconds=conf.webhook_retry_window_s):
                outcome = WebhookAttempt.Outcome.FAILED
                error = f"{error}; gave up after {d.attempts} attempts".lstrip("; ")
            else:
                d.next_attempt_at = next_at
        WebhookAttempt.objects.create(
            delivery=d,
            number=d.attempts,
            manual=manual,
            started_at=started,
            duration_ms=duration_ms,
            status_code=status,
            outcome=outcome,
            error=error[:2000],
            response_excerpt=result.excerpt if result is not None else "",
        )
        d.locked_until = None
        d.last_status = status
        d.last_error = error[:2000]
        if outcome == WebhookAttempt.Outcome.SUCCESS:
            d.state = WebhookDelivery.State.DELIVERED
            d.delivered_at = now
        elif outcome == WebhookAttempt.Outcome.FAILED:
            d.state = WebhookDelivery.State.FAILED
        d.save()
        _subscription_health(sub, success=outcome == WebhookAttempt.Outcome.SUCCESS, now=now)
        if d.state != WebhookDelivery.State.PENDING:
            _next_in_order(d)
    return AttemptResult(str(outcome), status, error)


def _subscription_health(sub: WebhookSubscription, *, success: bool, now: datetime) -> None:
    conf = get_support_settings()
    if success:
        if sub.failure_streak or sub.failing_since:
            sub.failure_streak = 0
            sub.failing_since = None
            sub.save(update_fields=["failure_streak", "failing_since", "updated_at"])
        return
    sub.failure_streak += 1
    sub.failing_since = sub.failing_since or now
    fields = ["failure_streak", "failing_since", "updated_at"]
    failing_for = (now - sub.failing_since).total_seconds()
    if (
        sub.enabled
        and sub.failure_streak >= conf.webhook_disable_after_failures
        and failing_for >= conf.webhook_disable_after_s
    ):
        sub.enabled = False
        sub.disabled_at = now
        last_error = (
            sub.deliveries.exclude(last_error="")
            .order_by("-pk")
            .values_list("last_error", flat=True)
            .first()
        )
        sub.disabled_reason = (
            f"Disabled after {sub.failure_streak} failed delivery attempts in a row since "
            f"{sub.failing_since:%Y-%m-%d %H:%M} UTC. Last error: {last_error or 'unknown'}. "
            "Fix the endpoint, then enable the webhook again: waiting deliveries resume."
        )
        fields += ["enabled", "disabled_at", "disabled_reason"]
        logger.warning("Webhook subscription %s disabled: %s", sub.pk, sub.disabled_reason)
    sub.save(update_fields=fields)


def _next_in_order(d: WebhookDelivery) -> None:
    """The delivery after this one in its conversation's order may go now."""
    if d.conversation_id is None:
        return
    following = (
        WebhookDelivery.objects.filter(
            subscription_id=d.subscription_id,
            conversation_id=d.conversation_id,
            state=WebhookDelivery.State.PENDING,
        )
        .order_by("sequence")
        .values_list("pk", flat=True)
        .first()
    )
    if following is not None:
        jobs.webhook_deliver_enqueue(delivery_id=following)


# --- the sweep, redelivery and subscription services --------------------------------------------
def deliveries_due(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> list[int]:
    """Pending deliveries that may be attempted now: due, not leased, of enabled
    subscriptions, and first in their conversation's order."""
    now = now or timezone.now()
    rows = (
        WebhookDelivery.objects.filter(
            state=WebhookDelivery.State.PENDING,
            next_attempt_at__lte=now,
            subscription__enabled=True,
        )
        .exclude(locked_until__gt=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", "subscription_id", "conversation_id", "sequence")[: limit * 4]
    )
    picked: list[int] = []
    for pk, sub_id, conv_id, seq in rows:
        if conv_id is not None and seq is not None:
            earlier = WebhookDelivery.objects.filter(
                subscription_id=sub_id,
                conversation_id=conv_id,
                sequence__lt=seq,
                state=WebhookDelivery.State.PENDING,
            ).exists()
            if earlier:
                continue
        picked.append(pk)
        if len(picked) >= limit:
            break
    return picked


def deliveries_sweep(*, now: datetime | None = None) -> int:
    """Queue every delivery that may go now; returns how many were queued."""
    ids = deliveries_due(now=now)
    with transaction.atomic():
        for pk in ids:
            jobs.webhook_deliver_enqueue(delivery_id=pk)
    return len(ids)


def delivery_redeliver(*, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again now (the admin's and the API's redeliver), whatever its state;
    a new retry window starts. The Webhook-Id stays the same."""
    with transaction.atomic():
        d = WebhookDelivery.objects.select_for_update().get(pk=delivery_id)
        now = timezone.now()
        d.state = WebhookDelivery.State.PENDING
        d.window_started_at = now
        d.next_attempt_at = now
        d.save(update_fields=["state", "window_started_at", "next_attempt_at"])
        jobs.webhook_deliver_enqueue(delivery_id=d.pk, manual=True)
    return d
