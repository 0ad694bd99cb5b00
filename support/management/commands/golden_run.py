"""`manage.py golden_run [--index-version N] [--json]`: the golden questions against an index
version (default: the one served), through the search and the answer decision, without
generation.

Prints one line per question (rank of the expected document, declined or not) and the summary
(recall@5, declined when they should be, answered when they should be declined).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.exceptions import SupportError
from support.golden.evaluate import GOLDEN, slice_run, target_published, target_version
from support.golden.questions import golden_cases


class Command(BaseCommand):
    help = "Run the golden questions against the served (or another) index version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--index-version", type=int, help="an index version on disk (staged ones too)"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            target = (
                target_version(options["index_version"])
                if options["index_version"] is not None
                else target_published()
            )
        except (SupportError, FileNotFoundError) as exc:
            raise CommandError(f"no such index version: {exc}") from exc
        run = slice_run(name=GOLDEN, cases=golden_cases(), target=target)
        if options["json"]:
            payload = {**run.summary(), "results": [r.as_dict() for r in run.results]}
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        for r in run.results:
            expected = "should be declined" if r.should_decline else r.label
            rank = r.rank if r.rank is not None else "-"
            state = "declined" if r.declined else "answered"
            mark = "ok" if (r.declined if r.should_decline else r.hit) else "FAIL"
            self.stdout.write(f"{mark}\t{rank}\t{state}\t{r.question}\t({expected})")
        m = run.measures()
        self.stdout.write(
            f"index version {run.version}: {m['questions']} question(s); "
            f"recall@5 {m['recall_at_5']:.3f} ({m['answerable']} with a document), "
            f"declined when they should be {m['declined_when_should']:.3f} "
            f"({m['should_decline']}), answered when they should be declined "
            f"{m['answered_when_should_decline']}"
        )
