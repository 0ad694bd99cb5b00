"""Turn an uploaded file into a `ParsedDocument`: ordered blocks with heading paths and pages.

Every parser is offline (nothing is fetched, no external entities are resolved) and every
failure surfaces as an `IngestError` whose message the uploading admin can act on.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from .detect import DEFAULT_MAX_BYTES, sniff
from .document import FileType, ParsedDocument
from .errors import IngestError, IngestErrorCode
from .formats.faq import parse_faq_csv
from .formats.html import parse_html
from .formats.markdown import parse_markdown, parse_text
from .formats.outline import MAX_TITLE_CHARS, Outline
from .formats.pdf import parse_pdf
from .formats.word import DEFAULT_ZIP_LIMITS, ZipLimits, parse_docx
from .text import clean_text

__all__ = ["DEFAULT_ZIP_LIMITS", "ZipLimits", "parse"]


def parse(
    data: bytes,
    filename: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    zip_limits: ZipLimits = DEFAULT_ZIP_LIMITS,
) -> ParsedDocument:
    """Vet and parse an upload; raises `IngestError` for anything that cannot be indexed."""
    sniffed = sniff(data, filename, max_bytes=max_bytes)
    name, file_type, text = sniffed.filename, sniffed.file_type, sniffed.text
    out = Outline()
    if file_type is FileType.PDF:
        title = parse_pdf(data, name, out)
    elif file_type is FileType.DOCX:
        title = parse_docx(data, name, out, zip_limits)
    elif text is None:  # sniff() decodes every text format; this guards the invariant
        raise IngestError(IngestErrorCode.CORRUPT, f"{name} could not be decoded as text.")
    elif file_type is FileType.MARKDOWN:
        title = parse_markdown(text, name, out)
    elif file_type is FileType.HTML:
        title = parse_html(text, name, out)
    elif file_type is FileType.CSV:
        title = parse_faq_csv(text, name, out)
    else:
        title = parse_text(text, name, out)
    if not out.blocks:
        raise IngestError(
            IngestErrorCode.NO_TEXT,
            f"{name} has no extractable text; there is nothing to index.",
        )
    return ParsedDocument(
        title=clean_text(title)[:MAX_TITLE_CHARS] or PurePosixPath(name).stem,
        file_type=file_type,
        filename=name,
        blocks=tuple(out.blocks),
        warnings=tuple(out.warnings),
    )
