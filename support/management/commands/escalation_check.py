"""Decide escalation for a file of customer messages, each as the first message of a new
conversation (no answer is generated)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.handoff.escalation import escalation_preview


class Command(BaseCommand):
    help = (
        'Read JSON lines of {"id", "text"}, write {"id", "escalate", "reasons"} per line: the '
        "escalation decision for each text as the first message of a new conversation."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--file", type=Path, required=True, help='JSON lines of {"id", "text"}')
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument(
            "--rules-only",
            action="store_true",
            help="skip the checks that need the embedding model (as the web process decides)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        src: Path = options["file"]
        dst: Path = options["out"]
        if not src.is_file():
            raise CommandError(f"{src}: no such file")
        kwargs: dict[str, Any] = {"similarity": None} if options["rules_only"] else {}
        count = escalated = 0
        with src.open(encoding="utf-8") as fin, dst.open("w", encoding="utf-8") as fout:
            for lineno, line in enumerate(fin, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    text = item["text"]
                    if not isinstance(text, str):
                        raise TypeError("text must be a string")
                except (ValueError, KeyError, TypeError) as exc:
                    raise CommandError(f"{src}:{lineno}: expected {{'id', 'text'}}: {exc}") from exc
                decision = escalation_preview(text=text, **kwargs)
                row = {
                    "id": item.get("id"),
                    "escalate": decision.escalate,
                    "reasons": list(decision.reasons),
                }
                fout.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
                escalated += decision.escalate
        self.stdout.write(f"{count} messages, {escalated} escalate -> {dst}")
