"""`manage.py golden_import FILE.jsonl`: golden questions from JSON Lines.

One object per line, `{"question": str, "document": str?, "decline": bool?, "note": str?}`, with
either the expected document (its file name or title) or `"decline": true`. One output line per
input line (imported / duplicate / error with the reason), then a summary; a bad line never
stops the rest. Exit status 0 once the file was read, 1 when it could not be.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, BinaryIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.golden.questions import ImportSummary, golden_import


class Command(BaseCommand):
    help = "Import golden questions (JSON Lines); one output line per input line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="a .jsonl file, or - for standard input")

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
            for result in golden_import(lines=stream, summary=summary):
                self.stdout.write(result.render())
        self.stdout.write(summary.render())
