"""Take in one raw e-mail from standard input (or a file): for a relay such as Postfix
(`support: "|/srv/app/.venv/bin/python /srv/app/manage.py mail_inbound"` in aliases).

Exit codes follow sendmail's: 0 taken in (also when it was recorded as ignored or rejected:
bouncing hostile mail back to a forged sender would only make backscatter), 75 (EX_TEMPFAIL)
when the database is unreachable, so the relay keeps the message and tries again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DatabaseError

from support.mail.inbound import email_receive

EX_TEMPFAIL = 75


class Command(BaseCommand):
    help = "Take in a raw RFC 822 e-mail from standard input (or --file)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, help="read the message from this file")

    def handle(self, *args: Any, **options: Any) -> None:
        raw = options["file"].read_bytes() if options["file"] else sys.stdin.buffer.read()
        try:
            received = email_receive(raw=raw, source="command")
        except DatabaseError as exc:
            self.stderr.write(f"temporary failure, try again later: {exc}")
            sys.exit(EX_TEMPFAIL)
        self.stdout.write(json.dumps(received.as_dict()))
