"""Queue every webhook delivery that is due (what beat runs every
SUPPORT_WEBHOOK_SWEEP_INTERVAL_S); with --send, attempt them in this process instead."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from support.webhooks.delivery import deliveries_due, deliveries_sweep, delivery_attempt


class Command(BaseCommand):
    help = "Send or queue the webhook deliveries that are due."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--send", action="store_true", help="attempt them here, one by one")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["send"]:
            self.stdout.write(f"{deliveries_sweep()} deliveries queued")
            return
        for delivery_id in deliveries_due():
            result = delivery_attempt(delivery_id=delivery_id)
            self.stdout.write(f"delivery {delivery_id}: {result.outcome} {result.status or ''}")
