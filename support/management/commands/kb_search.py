from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.retrieval import SearchResult, passages_search


def _as_json(result: SearchResult) -> dict[str, Any]:
    return {
        "confidence": round(result.confidence, 4),
        "index_version": result.index_version,
        "results": [p.as_dict() for p in result.passages],
    }


class Command(BaseCommand):
    help = "Search the knowledge base (hybrid dense + BM25)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("query", nargs="?")
        parser.add_argument("--k", type=int, default=5)
        parser.add_argument("--json", action="store_true")
        parser.add_argument("--file", type=Path, help='JSON lines of {"id", "query"}')
        parser.add_argument("--out", type=Path, help="where --file results go (JSON lines)")

    def handle(self, *args: Any, **options: Any) -> None:
        k = options["k"]
        if options["file"]:
            if not options["out"]:
                raise CommandError("--file needs --out")
            self._batch(options["file"], options["out"], k)
            return
        if not options["query"]:
            raise CommandError("give a query, or --file and --out")
        result = passages_search(query=options["query"], k=k)
        if options["json"]:
            self.stdout.write(json.dumps(_as_json(result), ensure_ascii=False, indent=2))
            return
        self.stdout.write(f"confidence {result.confidence:.3f}  ({result.elapsed_ms:.1f} ms)")
        for p in result.passages:
            snippet = " ".join(p.text.split())[:90]
            self.stdout.write(
                f"{p.rank:>2}. {p.score:.3f} (dense {p.dense_score:.3f}, bm25 "
                f"{p.lexical_score:.2f})  {p.heading}  [{p.filename} #{p.chunk_id}]\n"
                f"    {snippet}"
            )

    def _batch(self, src: Path, dst: Path, k: int) -> None:
        count = 0
        with src.open(encoding="utf-8") as fin, dst.open("w", encoding="utf-8") as fout:
            for lineno, line in enumerate(fin, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    query = str(item["query"])
                except (ValueError, KeyError, TypeError) as exc:
                    msg = f"{src}:{lineno}: expected {{'id', 'query'}}: {exc}"
                    raise CommandError(msg) from exc
                row = {"id": item.get("id"), **_as_json(passages_search(query=query, k=k))}
                fout.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
        self.stdout.write(f"{count} queries -> {dst}")
