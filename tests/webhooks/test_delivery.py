"""Webhooks against a real HTTP receiver on loopback: outbox, signatures (verified with the
`standardwebhooks` library), retries, stop rules, ordering, disabling, rotation, redelivery."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from support import conversations
from support.models import (
    Conversation,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from support.webhooks import delivery, subscriptions
from support.webhooks.http import UrlForbidden
from tests.webhooks.conftest import Receiver, Step

pytestmark = pytest.mark.django_db(transaction=True)
ALL = list(WebhookSubscription.Event.values)


def subscribe(
    owner: Any, receiver: Receiver, events: list[str] | None = None
) -> WebhookSubscription:
    return subscriptions.subscription_create(owner=owner, url=receiver.url, events=events or ALL)


def sweep_until(predicate: Any, *, rounds: int = 60) -> None:
    """Run the retry sweep (as beat would) until `predicate()` holds; bounded."""
    for _ in range(rounds):
        if predicate():
            return
        time.sleep(0.03)
        delivery.deliveries_sweep()
    assert predicate(), "condition not reached within the bounded sweeps"


def verify(sub: WebhookSubscription, req: Any, secret: str | None = None) -> Any:
    return Webhook(secret or sub.secret).verify(req.body, req.headers)


def test_change_and_report_commit_together(
    owner: Any, receiver: Receiver, fast_retries: None
) -> None:
    subscribe(owner, receiver)
    with pytest.raises(RuntimeError), transaction.atomic():
        conversations.conversation_start(customer_name="Rolled back")
        assert WebhookEvent.objects.count() == 1  # written inside the transaction...
        raise RuntimeError("the change fails after the event was written")
    # ...and gone with it: nothing reported, nothing sent.
    assert WebhookEvent.objects.count() == 0
    assert not Conversation.objects.exists()
    assert receiver.requests == []


def test_signed_delivery_verifies_with_standardwebhooks(
    owner: Any, receiver: Receiver, fast_retries: None
) -> None:
    sub = subscribe(owner, receiver)
    conv = conversations.conversation_start(customer_name="Ada")
    conversations.message_post(conversation_id=conv.pk, text="Where is my parcel?", client_id="m1")
    kinds = receiver.types()
    assert kinds[:2] == ["conversation.created", "message.created"]
    for req in receiver.requests:
        payload = verify(sub, req)
        assert payload["id"] == req.headers["webhook-id"]
        assert payload["conversation_id"] == conv.pk.hex
        assert abs(int(req.headers["webhook-timestamp"]) - time.time()) < 60
    assert [r.json["sequence"] for r in receiver.requests[:2]] == [1, 2]
    assert receiver.requests[1].json["data"]["message"]["text"] == "Where is my parcel?"
    # A tampered body or another secret fails verification: the check is real.
    req = receiver.requests[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(sub.secret).verify(req.body.replace(b"Ada", b"Eve"), req.headers)
    other = subscriptions.subscription_create(owner=owner, url=receiver.url, events=ALL)
    with pytest.raises(WebhookVerificationError):
        Webhook(other.secret).verify(req.body, req.headers)


def test_failures_timeouts_then_recovery(
    owner: Any, receiver: Receiver, fast_retries: None
) -> None:
    sub = subscribe(owner, receiver, ["conversation.created"])
    # 503, then an answer slower than the 1 s timeout, then a dropped 500, then success.
    receiver.script = [Step(503), Step(200, delay_s=1.5), Step(500, body=b"boom")]
    conversations.conversation_start()
    d = WebhookDelivery.objects.get(subscription=sub)
    sweep_until(lambda: WebhookDelivery.objects.get(pk=d.pk).state == "delivered")
    log = list(WebhookAttempt.objects.filter(delivery=d).order_by("number"))
    assert [a.outcome for a in log] == ["retry", "retry", "retry", "success"]
    assert log[0].status_code == 503
    assert log[1].status_code is None and "timed out" in log[1].error.lower()
    assert log[2].response_excerpt == "boom"
    ids = {r.webhook_id for r in receiver.requests}
    assert len(ids) == 1  # every retry carries the same Webhook-Id...
    # ...so the receiver, which did process the timed-out attempt, took it exactly once.
    assert len(receiver.processed) == 1
    assert WebhookSubscription.objects.get(pk=sub.pk).failure_streak == 0


@pytest.mark.parametrize(
    ("status", "retried"), [(400, False), (404, False), (410, False), (408, True), (429, True)]
)
def test_4xx_stop_except_408_and_429(
    owner: Any, receiver: Receiver, fast_retries: None, status: int, retried: bool
) -> None:
    sub = subscribe(owner, receiver, ["conversation.created"])
    receiver.script = [Step(status, headers={"Retry-After": "0"})]
    conversations.conversation_start()
    d = WebhookDelivery.objects.get(subscription=sub)
    if retried:
        sweep_until(lambda: WebhookDelivery.objects.get(pk=d.pk).state == "delivered")
        assert len(receiver.requests) == 2
    else:
        for _ in range(5):
            delivery.deliveries_sweep()
        d.refresh_from_db()
        assert d.state == "failed" and d.last_status == status
        assert len(receiver.requests) == 1


def test_redirects_are_not_followed(owner: Any, receiver: Receiver, fast_retries: None) -> None:
    sub = subscribe(owner, receiver, ["conversation.created"])
    receiver.script = [
        Step(302, headers={"Location": f"http://127.0.0.1:{receiver.port}/elsewhere"})
    ]
    conversations.conversation_start()
    d = WebhookDelivery.objects.get(subscription=sub)
    assert d.state == "failed" and "redirect" in d.last_error
    assert [r.path for r in receiver.requests] == ["/hook"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.com/hook",
        "http://user:pw@example.com/hook",
    ],
)
def test_private_and_loopback_targets_are_refused(owner: Any, url: str) -> None:
    with override_settings(SUPPORT_WEBHOOK_ALLOW_PRIVATE=False), pytest.raises(UrlForbidden):
        subscriptions.subscription_create(owner=owner, url=url, events=ALL)


def test_refused_at_send_time_too(owner: Any, receiver: Receiver, fast_retries: None) -> None:
    """A subscription made while private targets were allowed gets nothing once they are not
    (DNS may also change after the check at creation): no request reaches 127.0.0.1."""
    sub = subscribe(owner, receiver, ["conversation.created"])
    with override_settings(SUPPORT_WEBHOOK_ALLOW_PRIVATE=False):
        conversations.conversation_start()
    d = WebhookDelivery.objects.get(subscription=sub)
    assert d.state == "failed" and "private or loopback" in d.last_error
    assert receiver.requests == []


def test_order_per_conversation_is_kept(owner: Any, receiver: Receiver, fast_retries: None) -> None:
    sub = subscribe(owner, receiver, ["conversation.created", "message.created"])
    receiver.script = [Step(500), Step(500)]  # the first event fails twice
    conv = conversations.conversation_start()
    for i in range(3):
        conversations.message_post(conversation_id=conv.pk, text=f"question {i}", client_id=f"c{i}")
    sweep_until(
        lambda: not WebhookDelivery.objects.filter(subscription=sub, state="pending").exists()
    )
    sequences = [r.json["sequence"] for r in receiver.requests]
    assert sequences[:3] == [1, 1, 1]  # nothing later went out while the first was failing
    delivered = [r.json["sequence"] for r in receiver.requests[2:]]
    # In order; gaps are events of types this subscription does not take (the bot's answers
    # here may escalate: conversation.escalated is not subscribed).
    assert delivered == sorted(set(delivered)) and delivered[0] == 1
    expected = list(
        WebhookEvent.objects.filter(conversation_id=conv.pk, type__in=sub.events)
        .order_by("sequence")
        .values_list("sequence", flat=True)
    )
    assert delivered == expected and len(expected) >= 4


def test_repeated_failure_disables_and_the_owner_is_told(
    owner: Any, receiver: Receiver, fast_retries: None, client: Any
) -> None:
    receiver.default = Step(500)
    with override_settings(
        SUPPORT_WEBHOOK_DISABLE_AFTER_FAILURES=3, SUPPORT_WEBHOOK_DISABLE_AFTER_S=0
    ):
        sub = subscribe(owner, receiver, ["conversation.created"])
        conversations.conversation_start()
        sweep_until(lambda: not WebhookSubscription.objects.get(pk=sub.pk).enabled)
    sub.refresh_from_db()
    assert sub.failure_streak == 3 and "HTTP 500" in sub.disabled_reason
    d = WebhookDelivery.objects.get(subscription=sub)
    assert d.state == "pending"  # kept, not dropped
    for _ in range(3):
        delivery.deliveries_sweep()
    assert len(receiver.requests) == 3  # a disabled subscription gets nothing more
    client.force_login(owner)
    page = client.get("/admin/").content.decode()
    assert "was disabled" in page and receiver.url in page
    # Fixed and enabled again: the waiting delivery goes out.
    receiver.default = Step(200)
    subscriptions.subscription_update(subscription_id=sub.pk, enabled=True)
    sweep_until(lambda: WebhookDelivery.objects.get(pk=d.pk).state == "delivered")
    assert "was disabled" not in client.get("/admin/").content.decode()


def test_secret_rotation_two_valid_secrets(
    owner: Any, receiver: Receiver, fast_retries: None
) -> None:
    sub = subscribe(owner, receiver, ["conversation.created"])
    old = sub.secret
    sub = subscriptions.secret_rotate(subscription_id=sub.pk)
    assert sub.secret != old
    conversations.conversation_start()
    req = receiver.requests[-1]
    assert len(req.headers["webhook-signature"].split(" ")) == 2
    verify(sub, req, old)  # receivers not yet switched
    verify(sub, req, sub.secret)  # receivers already switched
    # After the rotation window only the new secret signs.
    WebhookSubscription.objects.filter(pk=sub.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    conversations.conversation_start()
    req = receiver.requests[-1]
    verify(sub, req, sub.secret)
    with pytest.raises(WebhookVerificationError):
        verify(sub, req, old)


def test_retry_window_gives_up(owner: Any, receiver: Receiver, fast_retries: None) -> None:
    receiver.default = Step(503)
    with override_settings(
        SUPPORT_WEBHOOK_RETRY_WINDOW_S=1,
        SUPPORT_WEBHOOK_BACKOFF_BASE_S=0.3,
        SUPPORT_WEBHOOK_BACKOFF_MAX_S=0.6,
    ):
        sub = subscribe(owner, receiver, ["conversation.created"])
        conversations.conversation_start()
        d = WebhookDelivery.objects.get(subscription=sub)
        sweep_until(lambda: WebhookDelivery.objects.get(pk=d.pk).state == "failed", rounds=120)
    d.refresh_from_db()
    assert "gave up" in d.last_error
    assert d.log.last().outcome == "failed"


def test_redeliver_sends_the_same_webhook_id(
    owner: Any, receiver: Receiver, fast_retries: None, client: Any
) -> None:
    sub = subscribe(owner, receiver, ["conversation.created"])
    conversations.conversation_start()
    d = WebhookDelivery.objects.get(subscription=sub)
    assert d.state == "delivered"
    delivery.delivery_redeliver(delivery_id=d.pk)
    # The admin's button does the same.
    client.force_login(owner)
    response = client.post(f"/admin/support/webhookdelivery/{d.pk}/redeliver/")
    assert response.status_code == 302
    assert [r.webhook_id for r in receiver.requests] == [d.event_id] * 3
    log = list(d.log.order_by("number"))
    assert [a.manual for a in log] == [False, True, True]
    assert len(receiver.processed) == 1  # the idempotent receiver took it once
    page = client.get(f"/admin/support/webhookdelivery/{d.pk}/change/").content.decode()
    assert "Redeliver now" in page


def test_backoff_grows_exponentially_with_jitter() -> None:
    import random

    rng = random.Random(7)
    waits = [delivery.backoff_s(n, base=10, cap=3600, rng=rng) for n in range(1, 12)]
    for n, wait in enumerate(waits, 1):
        full = min(3600, 10 * 2 ** (n - 1))
        assert full / 2 <= wait <= full
    assert len({round(w, 3) for w in waits}) == len(waits)  # jittered, not a fixed ladder
    assert waits[-1] > 1000  # capped near an hour, not growing without bound
