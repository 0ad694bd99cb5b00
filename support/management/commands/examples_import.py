"""`manage.py examples_import FILE.jsonl [--approve]`: past exchanges become examples.

One JSON object per line (the contract is in docs/learning.md); one output line per input line
(imported / duplicate / error with the reason), then a summary. A bad line never stops the
rest. Exit status 0 once the file was read, whatever its lines held; 1 when it could not be.
When examples were approved, a new index version with their question memory is published
(as `kb_ingest` does for documents).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support import knowledge
from support.learning.examples import ImportSummary, examples_import


class Command(BaseCommand):
    help = "Import past exchanges (JSON Lines) as examples; one output line per input line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a .jsonl file, or - for standard input")
        parser.add_argument(
            "--approve", action="store_true", help="store the examples approved (no review)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["file"]
        summary = ImportSummary()
        with contextlib.ExitStack() as stack:
            if name == "-":
                stream: BinaryIO = sys.stdin.buffer
            else:
                try:
                    stream = stack.enter_context(Path(name).open("rb"))
                except OSError as exc:
                    raise CommandError(f"{name}: {exc.strerror or exc}") from exc
            for result in examples_import(
                lines=stream, approve=options["approve"], summary=summary
            ):
                self.stdout.write(result.render())
        self.stdout.write(summary.render())
        if summary.approved:
            built = knowledge.index_rebuild()
            self.stdout.write(
                f"index version {built.version}: question memory of {built.memory_keys} question(s)"
            )
