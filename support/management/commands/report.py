"""Print the report of a range of days (docs/reports.md): the measures support managers read."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.exceptions import SupportError
from support.models import Conversation
from support.reports import report_build
from support.reports.text import report_text


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date like 2026-03-01") from exc


class Command(BaseCommand):
    help = (
        "The report of local days FROM..TO (both included, in SUPPORT_REPORT_TIME_ZONE): "
        "conversations, bot resolution, hand-overs, declines, speed, satisfaction, CPU cost and "
        "agents, as defined in docs/reports.md. Read from the daily rollup; days without a "
        "usable row are computed and stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
        parser.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")
        parser.add_argument("--channel", choices=Conversation.Channel.values, default=None)
        parser.add_argument(
            "--document", type=int, default=None, help="only conversations citing this document id"
        )
        parser.add_argument(
            "--agent", type=int, default=None, help="only conversations this user id worked"
        )
        parser.add_argument(
            "--refresh", action="store_true", help="recompute every day of the range first"
        )
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = report_build(
                start=_day(options["start"]),
                end=_day(options["end"]),
                channel=options["channel"],
                document=options["document"],
                agent=options["agent"],
                refresh=options["refresh"],
            )
        except SupportError as exc:
            raise CommandError(str(exc)) from exc
        data = report.as_dict()
        self.stdout.write(json.dumps(data) if options["json"] else report_text(data))
