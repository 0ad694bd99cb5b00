"""FAQ spreadsheets exported as CSV: one question/answer row becomes one block."""

from __future__ import annotations

import csv
import io

from ..document import BlockKind
from ..errors import IngestError, IngestErrorCode
from ..text import clean_text
from .outline import MAX_HEADING_CHARS, Outline

_CSV_DELIMITERS = (",", ";", "\t", "|")


def parse_faq_csv(text: str, name: str, out: Outline) -> str:
    delimiter, header = _csv_header(text)
    columns = [clean_text(column).lower() for column in header]
    if "question" not in columns or "answer" not in columns:
        found = ", ".join(repr(clean_text(c)) for c in header if clean_text(c)) or "nothing"
        raise IngestError(
            IngestErrorCode.MISSING_COLUMNS,
            f"{name} needs a header row with 'question' and 'answer' columns; found {found}.",
        )
    q_index, a_index = columns.index("question"), columns.index("answer")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        next(reader)
        for row in reader:
            question = clean_text(row[q_index]) if q_index < len(row) else ""
            answer = clean_text(row[a_index], keep_newlines=True) if a_index < len(row) else ""
            if not question and not answer:
                continue
            if not question or not answer:
                missing = "question" if not question else "answer"
                out.warnings.append(f"Line {reader.line_num}: no {missing}; row skipped.")
                continue
            out.add(
                f"Q: {question}\nA: {answer}", BlockKind.FAQ, path=(question[:MAX_HEADING_CHARS],)
            )
    except csv.Error as exc:
        raise IngestError(
            IngestErrorCode.CORRUPT, f"{name}: line {reader.line_num} is not valid CSV ({exc})."
        ) from exc
    if not out.blocks:
        raise IngestError(IngestErrorCode.EMPTY, f"{name} has no question/answer rows.")
    return ""


def _csv_header(text: str) -> tuple[str, list[str]]:
    """Sniff the delimiter from the header row: the one that yields both required columns.

    csv.Sniffer is not used: its regexes are quadratic (64 KB of `,"` takes half a minute)
    and it guesses wrong on answers full of commas. Without a match, the delimiter that
    splits the header into the most columns is reported, for the error message.
    """
    sample = text[:8192]  # the header row is at the start
    fallback: tuple[str, list[str]] = (",", [])
    for delimiter in _CSV_DELIMITERS:
        try:
            header = next(csv.reader(io.StringIO(sample), delimiter=delimiter), [])
        except csv.Error:
            continue
        names = {clean_text(column).lower() for column in header}
        if {"question", "answer"} <= names:
            return delimiter, header
        if len(header) > len(fallback[1]):
            fallback = (delimiter, header)
    return fallback
