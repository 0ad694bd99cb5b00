"""IMAP polling with a high-water mark.

Each poll selects the folder read-only (no flag is changed: people may read the same mailbox)
and asks for the UIDs above the highest one taken in so far (`MailboxState.last_uid`), so
after any downtime it backfills everything that arrived meanwhile, in UID order, a batch at a
time, until it is caught up or its time budget is spent. The mark moves after each message,
so a crash costs at most that message's work again, and `email_receive` is idempotent on
Message-ID anyway.

UIDVALIDITY is checked on every poll: when the server renumbered the folder (recreated,
restored), the old mark means nothing, so the poller rescans from the last poll's date
(Message-ID keeps already-seen mail from being taken twice). The first poll of a mailbox
takes in only SUPPORT_IMAP_FIRST_SYNC_DAYS of its history.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from ..conf import SupportSettings, get_support_settings
from ..models import MailboxState
from .inbound import email_receive

logger = logging.getLogger(__name__)

POLL_LOCK_S = 300
TIME_BUDGET_S = 45.0
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class ImapError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class PollResult:
    mailbox: str
    fetched: int
    accepted: int
    duplicates: int
    ignored: int
    remaining: int
    uidvalidity_reset: bool
    last_uid: int

    def as_dict(self) -> dict[str, object]:
        return {
            "mailbox": self.mailbox,
            "fetched": self.fetched,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "ignored": self.ignored,
            "remaining": self.remaining,
            "uidvalidity_reset": self.uidvalidity_reset,
            "last_uid": self.last_uid,
        }


def mailbox_key(conf: SupportSettings) -> str:
    return f"{conf.imap_user}@{conf.imap_host}:{conf.imap_port}/{conf.imap_folder}"


def _imap_date(day: datetime) -> str:
    return f"{day.day:02d}-{_MONTHS[day.month - 1]}-{day.year}"


def _check(typ: str, data: Any, what: str) -> list[Any]:
    if typ != "OK":
        raise ImapError(f"{what} failed: {data!r}")
    return list(data)


def _connect(conf: SupportSettings) -> imaplib.IMAP4:
    cls = imaplib.IMAP4_SSL if conf.imap_ssl else imaplib.IMAP4
    conn = cls(conf.imap_host, conf.imap_port, timeout=30)
    _check(*conn.login(conf.imap_user, conf.imap_password), what="LOGIN")
    return conn


def _uidvalidity(conn: imaplib.IMAP4) -> int:
    _, data = conn.response("UIDVALIDITY")
    if not data or data[0] is None:
        raise ImapError("the server sent no UIDVALIDITY")
    return int(data[0])


def _search(conn: imaplib.IMAP4, *criteria: str) -> list[int]:
    data = _check(*conn.uid("SEARCH", *criteria), what="UID SEARCH")
    raw = data[0] if data else b""
    return sorted(int(u) for u in (raw or b"").split())


_LITERAL = re.compile(rb"UID (\d+)")


def _fetch(conn: imaplib.IMAP4, uid: int) -> bytes | None:
    data = _check(*conn.uid("FETCH", str(uid), "(UID BODY.PEEK[])"), what="UID FETCH")
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            match = _LITERAL.search(item[0])
            if match is None or int(match.group(1)) == uid:
                return bytes(item[1])
    return None  # expunged meanwhile


def imap_poll(*, time_budget_s: float = TIME_BUDGET_S) -> PollResult | None:
    """Take in new mail from the configured folder; None when IMAP is off or another poll
    runs. Connection and protocol errors raise (the task retries next time)."""
    conf = get_support_settings()
    if not conf.imap_enabled:
        return None
    key = mailbox_key(conf)
    lock = f"imap-poll:{key}"
    if not cache.add(lock, 1, POLL_LOCK_S):
        return None
    try:
        return _poll(conf, key, time_budget_s)
    except Exception as exc:
        MailboxState.objects.filter(key=key).update(
            last_error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        raise
    finally:
        cache.delete(lock)


def _poll(conf: SupportSettings, key: str, time_budget_s: float) -> PollResult:
    started = time.monotonic()
    state, _ = MailboxState.objects.get_or_create(key=key)
    conn = _connect(conf)
    try:
        _check(*conn.select(f'"{conf.imap_folder}"', readonly=True), what="SELECT")
        validity = _uidvalidity(conn)
        reset = False
        since: datetime | None = None
        if state.uidvalidity is None:
            since = timezone.now() - timedelta(days=conf.imap_first_sync_days)
        elif state.uidvalidity != validity:
            reset = True
            state.resets += 1
            since = (state.last_polled_at or timezone.now()) - timedelta(days=1)
            logger.warning(
                "IMAP %s: UIDVALIDITY changed (%s -> %s); rescanning since %s",
                key,
                state.uidvalidity,
                validity,
                since.date(),
            )
        if since is not None:
            state.uidvalidity = validity
            state.last_uid = 0
            uids = _search(conn, "SINCE", _imap_date(since))
        else:
            # "n:*" always matches the highest UID, even one below n: filtered below.
            uids = _search(conn, "UID", f"{state.last_uid + 1}:*")
        uids = [u for u in uids if u > state.last_uid]
        fetched = accepted = duplicates = ignored = 0
        for uid in uids:
            # At least one message a poll: progress even on a slow server.
            spent = time.monotonic() - started
            if fetched and (spent > time_budget_s or fetched >= conf.imap_batch * 20):
                break
            raw = _fetch(conn, uid)
            if raw is not None:
                try:
                    received = email_receive(raw=raw, source="imap")
                except Exception:
                    # One message that breaks the service (not bad content: that is recorded
                    # as rejected) must not stop the mailbox: logged, skipped.
                    logger.exception("IMAP %s: message UID %s could not be taken in", key, uid)
                    received = None
                fetched += 1
                if received is not None:
                    if received.duplicate:
                        duplicates += 1
                    elif received.status == "accepted":
                        accepted += 1
                    else:
                        ignored += 1
            state.last_uid = uid
            state.save(update_fields=["uidvalidity", "last_uid", "resets"])
        state.last_polled_at = timezone.now()
        state.last_error = ""
        state.save()
        remaining = len([u for u in uids if u > state.last_uid])
        return PollResult(
            key, fetched, accepted, duplicates, ignored, remaining, reset, state.last_uid
        )
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()
