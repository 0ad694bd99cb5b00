"""Run the outcome watchdog once: re-queue overdue answers, escalate the ones still unanswered."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from support.outcomes import outcomes_check


class Command(BaseCommand):
    help = (
        "Find customer messages without an outcome (no answer, no escalation) past "
        "SUPPORT_OUTCOME_DEADLINE_S: re-queue each answer once, and hand the conversation to a "
        "person with an apology SUPPORT_OUTCOME_REQUEUE_DEADLINE_S after that. The same check "
        "Celery beat runs every SUPPORT_OUTCOME_CHECK_INTERVAL_S."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--deadline", type=float, default=None, help="seconds (default: the setting)"
        )
        parser.add_argument(
            "--requeue-deadline", type=float, default=None, help="seconds (default: the setting)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="report what would be done, change nothing"
        )
        parser.add_argument("--json", action="store_true", help="one JSON object on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        report = outcomes_check(
            deadline_s=options["deadline"],
            requeue_deadline_s=options["requeue_deadline"],
            dry_run=options["dry_run"],
        )
        if options["json"]:
            self.stdout.write(json.dumps({**report.as_dict(), "dry_run": options["dry_run"]}))
            return
        verb = (
            ("would re-queue", "would escalate")
            if options["dry_run"]
            else ("re-queued", "escalated")
        )
        self.stdout.write(
            f"{verb[0]} {len(report.requeued)}{_ids(report.requeued)}, "
            f"{verb[1]} {len(report.escalated)}{_ids(report.escalated)}, "
            f"{report.waiting} waiting within the deadline"
        )


def _ids(ids: tuple[int, ...]) -> str:
    return " (messages " + ", ".join(map(str, ids)) + ")" if ids else ""
