from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support import knowledge
from support.exceptions import DocumentRejected


class Command(BaseCommand):
    help = "Ingest knowledge-base files or folders (recursively); one line per file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--source-url", default="", help="Source URL stored on each document")

    def handle(self, *args: Any, **options: Any) -> None:
        files: list[Path] = []
        for path in options["paths"]:
            if path.is_dir():
                files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
            elif path.is_file():
                files.append(path)
            else:
                raise CommandError(f"{path}: no such file or folder")
        failed = 0
        uploaded: dict[int, Path] = {}
        for path in files:
            try:
                doc = knowledge.document_upload(
                    filename=path.name,
                    data=path.read_bytes(),
                    source_url=options["source_url"],
                    queue=False,
                )
            except DocumentRejected as exc:
                failed += 1
                self.stdout.write(f"{path}\trejected\t0\t{exc.code}: {exc.message}")
                continue
            uploaded[doc.pk] = path
        # One call: the chunks of many files are embedded together (much faster than per file).
        for outcome in knowledge.documents_ingest(document_ids=list(uploaded), rebuild_index=False):
            if outcome.status == "failed":
                failed += 1
            self.stdout.write(
                f"{uploaded[outcome.document_id]}\t{outcome.status}\t{outcome.chunk_count}\t"
                f"{outcome.error}".rstrip()
            )
        built = knowledge.index_rebuild()
        if built.held:
            self.stdout.write(
                f"index version {built.version} kept: the new one is held back by the golden "
                f"questions (gate report #{built.report_id}, see the admin)"
            )
        else:
            self.stdout.write(f"index version {built.version}: {built.chunks} chunks")
        if failed:
            raise CommandError(f"{failed} of {len(files)} file(s) failed")
