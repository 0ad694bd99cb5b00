"""IMAP polling against a real IMAP server: Debian's Dovecot, started by the test on a free
port in a temporary directory (skipped, saying why, when dovecot-imapd is not installed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from support.mail.imap import imap_poll
from support.models import Conversation, EmailMessage, MailboxState, Message
from tests.mail.conftest import Dovecot, make_mail

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("mail_settings"),
]


@pytest.fixture
def quiet_bot(settings: Any) -> None:
    """No answers: these tests are about what comes in (the answer path is tested elsewhere)."""
    settings.SUPPORT_MAX_PENDING_ANSWERS = 1_000_000
    settings.CELERY_TASK_ALWAYS_EAGER = False  # queued answers are not run


def customer_texts() -> list[str]:
    return list(
        Message.objects.filter(role="customer").order_by("pk").values_list("text", flat=True)
    )


def test_poll_takes_in_new_mail_once_and_keeps_a_high_water_mark(
    dovecot: Dovecot, quiet_bot: None
) -> None:
    for i in range(3):
        dovecot.append(make_mail(f"question {i}", subject=f"q{i}"))
    with dovecot.settings():
        first = imap_poll()
        assert first is not None and first.fetched == 3 and first.accepted == 3
        assert customer_texts() == ["question 0", "question 1", "question 2"]
        state = MailboxState.objects.get()
        assert state.last_uid == 3 and state.uidvalidity
        again = imap_poll()
        assert again is not None and again.fetched == 0  # nothing above the mark
        dovecot.append(make_mail("question 3", subject="q3"))
        third = imap_poll()
        assert third is not None and third.fetched == 1 and third.last_uid == 4
    assert Conversation.objects.filter(channel="email").count() == 4
    assert set(EmailMessage.objects.values_list("source", flat=True)) == {"imap"}


def test_backfill_after_downtime_in_batches(dovecot: Dovecot, quiet_bot: None) -> None:
    with dovecot.settings(SUPPORT_IMAP_BATCH=2):
        imap_poll()  # the first poll: nothing yet
        for i in range(25):  # "down" while 25 mails arrive
            dovecot.append(make_mail(f"backlog {i}", subject=f"b{i}"))
        result = imap_poll()
    assert result is not None and result.fetched == 25 and result.remaining == 0
    assert customer_texts() == [f"backlog {i}" for i in range(25)]


def test_time_budget_leaves_the_rest_for_the_next_poll(dovecot: Dovecot, quiet_bot: None) -> None:
    for i in range(4):
        dovecot.append(make_mail(f"m{i}", subject=f"s{i}"))
    with dovecot.settings():
        first = imap_poll(time_budget_s=0.0)  # the budget runs out after the first mail
        assert first is not None and first.fetched == 1 and first.remaining == 3
        second = imap_poll()
        assert second is not None and second.fetched == 3 and second.remaining == 0
    assert customer_texts() == ["m0", "m1", "m2", "m3"]


def test_uidvalidity_change_rescans_without_duplicates(dovecot: Dovecot, quiet_bot: None) -> None:
    folder = "Support"
    conn = dovecot.client()
    conn.create(folder)
    conn.logout()
    old = [make_mail(f"old {i}", subject=f"o{i}") for i in range(2)]
    for raw in old:
        dovecot.append(raw, folder)
    with dovecot.settings(folder=folder):
        imap_poll()
        before = MailboxState.objects.get().uidvalidity
        # The folder is recreated (a restore, a migration): new UIDVALIDITY, UIDs from 1 again.
        conn = dovecot.client()
        conn.delete(folder)
        conn.create(folder)
        conn.logout()
        for raw in [*old, make_mail("new after the restore", subject="n")]:
            dovecot.append(raw, folder)
        result = imap_poll()
    state = MailboxState.objects.get()
    assert result is not None and result.uidvalidity_reset
    assert state.uidvalidity != before and state.resets == 1
    assert result.duplicates == 2 and result.accepted == 1
    assert customer_texts() == ["old 0", "old 1", "new after the restore"]


def test_first_poll_skips_old_history(dovecot: Dovecot, quiet_bot: None) -> None:
    dovecot.append(make_mail("years old", subject="old"), when=timezone.now() - timedelta(days=400))
    dovecot.append(make_mail("from today", subject="new"))
    with dovecot.settings(SUPPORT_IMAP_FIRST_SYNC_DAYS=3):
        imap_poll()
    assert customer_texts() == ["from today"]


def test_a_poison_message_does_not_stop_the_mailbox(dovecot: Dovecot, quiet_bot: None) -> None:
    dovecot.append(b"\x00\x01 this is not a mail\r\n\r\n")
    dovecot.append(make_mail("still read", subject="after"))
    with dovecot.settings():
        result = imap_poll()
    assert result is not None and result.fetched == 2
    assert customer_texts() == ["still read"]
    assert EmailMessage.objects.filter(status="rejected").count() == 1


def test_wrong_password_is_recorded(dovecot: Dovecot, quiet_bot: None) -> None:
    import imaplib

    with dovecot.settings(SUPPORT_IMAP_PASSWORD="wrong"), pytest.raises(imaplib.IMAP4.error):
        imap_poll()
    assert "authentication" in MailboxState.objects.get().last_error.lower()
