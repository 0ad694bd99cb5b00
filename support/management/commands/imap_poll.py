"""Poll the configured IMAP folder once (what beat runs every SUPPORT_IMAP_POLL_INTERVAL_S)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from support.mail.imap import imap_poll


class Command(BaseCommand):
    help = "Take in new mail from the IMAP folder (SUPPORT_IMAP_*), once."

    def handle(self, *args: Any, **options: Any) -> None:
        result = imap_poll()
        if result is None:
            raise CommandError("IMAP polling is off (SUPPORT_IMAP_HOST) or another poll is running")
        self.stdout.write(json.dumps(result.as_dict()))
