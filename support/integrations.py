"""The integrations' periodic work in one call, for the embedded one-process mode (no beat
there): the webhook retry sweep, expired idempotency records, queued e-mails, and the IMAP
poll when it is due. Beat runs the same pieces as separate tasks (CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging
import threading
import time

from .conf import get_support_settings

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_last_imap_poll = 0.0


def integrations_sweep() -> None:
    """Run each piece; one that fails is logged and the others still run."""
    global _last_imap_poll
    from .api.idempotency import idempotency_purge
    from .mail.imap import imap_poll
    from .mail.outbound import mail_outbox_sweep
    from .webhooks.delivery import deliveries_sweep

    for name, run in (
        ("webhook sweep", deliveries_sweep),
        ("idempotency purge", idempotency_purge),
        ("mail outbox sweep", mail_outbox_sweep),
    ):
        try:
            run()
        except Exception:
            logger.exception("Periodic %s failed", name)
    conf = get_support_settings()
    with _lock:
        due = conf.imap_enabled and time.monotonic() - _last_imap_poll >= conf.imap_poll_interval_s
        if due:
            _last_imap_poll = time.monotonic()
    if due:
        try:
            imap_poll()
        except Exception:
            logger.exception("IMAP poll failed")
