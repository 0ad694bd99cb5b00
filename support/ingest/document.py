"""The parsed form of an uploaded document: what every parser produces and the chunker reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class FileType(StrEnum):
    MARKDOWN = "markdown"
    TEXT = "text"
    HTML = "html"
    PDF = "pdf"
    DOCX = "docx"
    CSV = "csv"


class BlockKind(StrEnum):
    PARAGRAPH = "paragraph"
    LIST = "list"  # one item per line, "- " prefixed
    TABLE = "table"  # one row per line, cells joined by " | "
    FAQ = "faq"  # "Q: ...\nA: ...", always exactly one chunk
    CODE = "code"  # line breaks are significant; never sentence-split


@dataclass(frozen=True, slots=True)
class Block:
    """A run of text in reading order, with where it sits in the document."""

    text: str
    kind: BlockKind = BlockKind.PARAGRAPH
    heading_path: tuple[str, ...] = ()
    page: int | None = None  # 1-based physical page (PDF only)
    anchor: str | None = None  # fragment id for linking (HTML ids, Markdown heading slugs)


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    title: str
    file_type: FileType
    filename: str  # sanitised by `safe_filename`
    blocks: tuple[Block, ...]
    # Non-fatal problems worth showing the admin (a PDF page that failed, skipped CSV rows).
    warnings: tuple[str, ...] = field(default=())
