from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.answers.pipeline import answer_compose
from support.answers.types import Turn
from support.ask import ask_result as _as_json


class Command(BaseCommand):
    help = "Answer a question from the knowledge base with the local model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("question", nargs="?")
        parser.add_argument("--json", action="store_true")
        parser.add_argument(
            "--file", type=Path, help='JSON lines of {"id", "question", "history"?}'
        )
        parser.add_argument("--out", type=Path)
        parser.add_argument(
            "--no-generate", action="store_true", help="extractive answers only (no model call)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        generate = not options["no_generate"]
        if options["file"]:
            if not options["out"]:
                raise CommandError("--file needs --out")
            self._batch(options["file"], options["out"], generate)
            return
        question = options["question"]
        if not question:
            raise CommandError("give a question, or --file and --out")
        if options["json"]:
            draft = answer_compose(question=question, generate=generate)
            self.stdout.write(json.dumps(_as_json(draft, question), ensure_ascii=False, indent=2))
            return

        def show(piece: str) -> None:
            sys.stdout.write(piece)
            sys.stdout.flush()

        draft = answer_compose(question=question, on_delta=show, generate=generate)
        self.stdout.write("")
        if draft.action != "answer" or not generate:
            self.stdout.write(f"\n[{draft.action}: {draft.reason}] {draft.text}")
        for c in draft.citations:
            self.stdout.write(f"  [{c['n']}] {c['heading']} (document {c['document_id']})")
        self.stdout.write(f"confidence {draft.confidence:.2f}, timings {json.dumps(draft.timings)}")

    def _batch(self, src: Path, dst: Path, generate: bool) -> None:
        """One output line per input line, with its id. A malformed line gets an `error` line
        (the rest still run) and makes the command exit non-zero at the end."""
        count = failed = 0
        with src.open(encoding="utf-8") as fin, dst.open("w", encoding="utf-8") as fout:
            for lineno, line in enumerate(fin, 1):
                if not line.strip():
                    continue
                item: Any = None
                try:
                    item = json.loads(line)
                    question = str(item["question"])
                    if not question.strip():
                        raise ValueError("empty question")
                    history = [
                        Turn(str(t["role"]), str(t["text"])) for t in item.get("history") or []
                    ]
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    failed += 1
                    error = f"line {lineno}: expected {{'id', 'question', 'history'?}}: {exc!r}"
                    self.stderr.write(f"{src}:{error}")
                    item_id = item.get("id") if isinstance(item, dict) else None
                    fout.write(json.dumps({"id": item_id, "error": error}) + "\n")
                    continue
                draft = answer_compose(question=question, history=history, generate=generate)
                fout.write(
                    json.dumps(
                        {"id": item.get("id"), **_as_json(draft, question)}, ensure_ascii=False
                    )
                    + "\n"
                )
                count += 1
        self.stdout.write(f"{count} questions -> {dst}")
        if failed:
            raise CommandError(f"{failed} malformed line(s) in {src}")
