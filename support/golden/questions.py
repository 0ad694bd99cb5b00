"""Golden questions: what the bot must keep doing, set by the admin (edited in the admin,
imported from JSON Lines by `golden_import`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from django.db import IntegrityError, transaction
from django.db.models import Q

from ..models import GoldenQuestion, KnowledgeDocument
from .evaluate import Case

MAX_QUESTION_CHARS: Final = 1000
IMPORT_FIELDS: Final = frozenset({"question", "document", "decline", "note"})

ImportOutcome = Literal["imported", "duplicate", "error"]


def question_normalise(text: str) -> str:
    """One line, single spaces: how a question is stored and compared (case-insensitively)."""
    return " ".join(text.replace("\x00", "").split())


def golden_active_exists() -> bool:
    """Whether any golden question is active (without one, the gate is off)."""
    return GoldenQuestion.objects.filter(active=True).exists()


def document_resolve(name: str) -> KnowledgeDocument:
    """The document an import line names by its file name or its title (case-insensitive).

    Raises LookupError with the reason when none, or several ready ones, match: an expected
    document the gate would check against the wrong page is worse than an error.
    """
    name = name.strip()
    if not name:
        raise LookupError('"document" is empty')
    named = list(
        KnowledgeDocument.objects.filter(
            Q(original_filename__iexact=name) | Q(title__iexact=name)
        ).order_by("pk")
    )
    if not named:
        raise LookupError(f"no document has the file name or title {json.dumps(name)}")
    by_file = [d for d in named if d.original_filename.lower() == name.lower()]
    candidates = by_file or named
    ready = [d for d in candidates if d.status == KnowledgeDocument.Status.READY]
    pool = ready or candidates
    if len(pool) > 1:
        ids = ", ".join(f"#{d.pk}" for d in pool)
        raise LookupError(
            f"{json.dumps(name)} names {len(pool)} documents ({ids}): use its file name"
        )
    return pool[0]


@dataclass(frozen=True, slots=True)
class ImportItem:
    question: str
    document: KnowledgeDocument | None
    should_decline: bool
    note: str


class ImportLineError(ValueError):
    """A line that breaks the import contract; the message says how."""


def import_line_parse(raw: str) -> ImportItem:
    """One line of a golden-question file: `{"question": str, "document": str?, "decline":
    bool?, "note": str?}` with exactly one of a document and `"decline": true`."""
    if not raw.strip():
        raise ImportLineError("empty line")
    try:
        data: Any = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ImportLineError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ImportLineError("not a JSON object")
    unknown = sorted(set(data) - IMPORT_FIELDS)
    if unknown:
        raise ImportLineError(f"unknown field(s) {', '.join(map(json.dumps, unknown))}")
    question = data.get("question")
    if not isinstance(question, str) or not question_normalise(question):
        raise ImportLineError('"question" must be a non-empty string')
    question = question_normalise(question)
    if len(question) > MAX_QUESTION_CHARS:
        raise ImportLineError(f'"question" is longer than {MAX_QUESTION_CHARS} characters')
    decline = data.get("decline", False)
    if not isinstance(decline, bool):
        raise ImportLineError('"decline" must be true or false')
    note = data.get("note", "")
    if not isinstance(note, str):
        raise ImportLineError('"note" must be a string')
    name = data.get("document")
    if name is not None and not isinstance(name, str):
        raise ImportLineError('"document" must be a string')
    if name is not None and decline:
        raise ImportLineError('give either "document" or "decline": true, not both')
    if name is None and not decline:
        raise ImportLineError('give the expected "document", or "decline": true')
    document = None
    if name is not None:
        try:
            document = document_resolve(name)
        except LookupError as exc:
            raise ImportLineError(str(exc)) from None
    return ImportItem(question, document, decline, note.strip())


@dataclass(frozen=True, slots=True)
class ImportLine:
    """What became of one line of an import file."""

    line: int
    outcome: ImportOutcome
    question_id: int | None = None
    detail: str = ""

    def render(self) -> str:
        if self.outcome == "error":
            return f"line {self.line}: error: {self.detail}"
        tail = f" ({self.detail})" if self.detail else ""
        return f"line {self.line}: {self.outcome} -> golden question #{self.question_id}{tail}"


@dataclass(slots=True)
class ImportSummary:
    lines: int = 0
    imported: int = 0
    duplicate: int = 0
    error: int = 0
    results: list[ImportLine] = field(default_factory=list)

    def add(self, result: ImportLine) -> None:
        self.lines += 1
        setattr(self, result.outcome, getattr(self, result.outcome) + 1)
        self.results.append(result)

    def render(self) -> str:
        return (
            f"{self.lines} line(s): {self.imported} imported, {self.duplicate} duplicate, "
            f"{self.error} error(s)"
        )


def _describe(item: ImportItem) -> str:
    if item.document is None:
        return "should be declined"
    return f"expects document #{item.document.pk} “{item.document}”"


def _line_import(number: int, raw: str) -> ImportLine:
    try:
        item = import_line_parse(raw)
    except ImportLineError as exc:
        return ImportLine(number, "error", detail=str(exc))
    existing = GoldenQuestion.objects.filter(question__iexact=item.question).first()
    if existing is not None:
        return ImportLine(number, "duplicate", existing.pk, "the same question exists")
    try:
        with transaction.atomic():
            created = GoldenQuestion.objects.create(
                question=item.question,
                document=item.document,
                should_decline=item.should_decline,
                note=item.note,
            )
    except IntegrityError:
        # Imported concurrently (the unique, case-insensitive question).
        again = GoldenQuestion.objects.filter(question__iexact=item.question).first()
        if again is None:
            raise
        return ImportLine(number, "duplicate", again.pk, "the same question exists")
    return ImportLine(number, "imported", created.pk, _describe(item))


def golden_import(
    *, lines: Iterable[str | bytes], summary: ImportSummary | None = None
) -> Iterator[ImportLine]:
    """Import golden questions, one JSON object per line, yielding what became of each line as
    it goes. A bad line (not JSON, a missing or unknown document, both or neither of a document
    and "decline") is reported and skipped; it never stops the rest. Each question is stored in
    its own transaction; one that exists (case-insensitively) is a duplicate."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                result = ImportLine(number, "error", detail="not UTF-8 text")
                if summary is not None:
                    summary.add(result)
                yield result
                continue
        else:
            text = raw
        result = _line_import(number, text.rstrip("\r\n"))
        if summary is not None:
            summary.add(result)
        yield result


def golden_cases() -> list[Case]:
    """The active golden questions as cases of the "golden" slice."""
    rows = GoldenQuestion.objects.filter(active=True).select_related("document").order_by("pk")
    return [
        Case(
            key=f"golden:{q.pk}",
            question=q.question,
            expected_documents=frozenset({q.document_id}) if q.document_id else frozenset(),
            should_decline=q.should_decline,
            label=str(q.document) if q.document is not None else "should be declined",
        )
        for q in rows
    ]
