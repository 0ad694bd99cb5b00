"""Word (.docx) documents via python-docx, after a zip-bomb check of the archive."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import docx
from docx.document import Document as DocxDocument
from docx.oxml.ns import qn
from docx.oxml.text.parfmt import CT_PPr
from docx.table import Table
from docx.text.paragraph import Paragraph

from ..document import BlockKind
from ..errors import IngestError, IngestErrorCode
from ..text import clean_text
from .outline import Outline


@dataclass(frozen=True, slots=True)
class ZipLimits:
    """Refuse DOCX archives that would unpack to far more than they weigh."""

    max_entries: int = 2_000
    max_total_bytes: int = 200 * 1024 * 1024
    max_ratio: float = 100.0
    # Small parts (styles, settings) legitimately compress 100x+; only big ones can hurt.
    ratio_floor_bytes: int = 1024 * 1024


DEFAULT_ZIP_LIMITS = ZipLimits()


def _check_zip(data: bytes, name: str, limits: ZipLimits) -> None:
    """Refuse zip bombs before python-docx inflates anything.

    Declared sizes are trustworthy enough here: zipfile stops inflating a member at its
    declared size (and fails its CRC), so a lying header cannot make it produce more.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise IngestError(
            IngestErrorCode.CORRUPT, f"{name} is damaged and cannot be opened ({exc})."
        ) from exc
    bomb = f"{name} was refused: it looks like a zip bomb"
    if len(infos) > limits.max_entries:
        raise IngestError(
            IngestErrorCode.ZIP_BOMB,
            f"{bomb} ({len(infos)} archive entries; a Word document has far fewer).",
        )
    total = sum(info.file_size for info in infos)
    if total > limits.max_total_bytes:
        raise IngestError(
            IngestErrorCode.ZIP_BOMB,
            f"{bomb} (it unpacks to {total // (1024 * 1024)} MB; "
            f"the limit is {limits.max_total_bytes // (1024 * 1024)} MB).",
        )
    for info in infos:
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            # Word only writes deflate; bzip2/lzma members would inflate without a size cap.
            raise IngestError(
                IngestErrorCode.CORRUPT,
                f"{name} uses a compression method Word never writes; save it again from Word.",
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
            raise IngestError(
                IngestErrorCode.ZIP_BOMB,
                f"{bomb} ({info.filename} is compressed {ratio:.0f}:1).",
            )


def parse_docx(data: bytes, name: str, out: Outline, limits: ZipLimits) -> str:
    _check_zip(data, name, limits)

    try:
        document = docx.Document(io.BytesIO(data))
        return _walk_docx(document, out)
    except Exception as exc:
        raise IngestError(
            IngestErrorCode.CORRUPT,
            f"{name} is damaged or not a regular Word document ({exc}). "
            "Save it again from Word as .docx and re-upload.",
        ) from exc


def _walk_docx(document: DocxDocument, out: Outline) -> str:
    doc_title = ""
    list_items: list[str] = []

    def flush_list() -> None:
        if list_items:
            out.add("\n".join(list_items), BlockKind.LIST)
            list_items.clear()

    for item in document.iter_inner_content():
        if isinstance(item, Table):
            flush_list()
            try:
                rows = list(_docx_table_rows(item))
            except Exception as exc:
                # One malformed table (broken merges) should not cost the whole document.
                out.warnings.append(f"A table under {' > '.join(out.path) or 'the start'} "
                                    f"could not be read and was skipped ({exc}).")  # fmt: skip
                continue
            out.add("\n".join(rows), BlockKind.TABLE)
            continue
        level = _docx_heading_level(item)
        if level is not None:
            flush_list()
            if out.heading(level, item.text) and level == 0 and not doc_title:
                doc_title = item.text
            continue
        depth = _docx_list_depth(item)
        if depth is not None:
            text = clean_text(item.text)
            if text:
                list_items.append(f"{'  ' * depth}- {text}")
            continue
        flush_list()
        out.add(item.text)
    flush_list()
    core_title = document.core_properties.title or ""
    first_h1 = next((b.heading_path[0] for b in out.blocks if b.heading_path), "")
    return core_title.strip() or doc_title or first_h1


def _docx_heading_level(paragraph: Paragraph) -> int | None:
    """0 for Title, n for Heading n; custom styles count via their base style or outline level."""

    def outline(ppr: CT_PPr | None) -> int | None:
        found = ppr.find(qn("w:outlineLvl")) if ppr is not None else None
        value = str(found.get(qn("w:val"), "")) if found is not None else ""
        # Level 9 is "body text"; Word writes it on ordinary paragraphs.
        return int(value) + 1 if value in set("012345678") else None

    direct = outline(paragraph._p.pPr)
    if direct is not None:
        return direct
    style = paragraph.style
    for _ in range(10):  # style inheritance chains are short; the bound guards cycles
        if style is None:
            return None
        style_name = (style.name or "").strip().lower()
        if style_name == "title":
            return 0
        heading = re.fullmatch(r"heading\s*([1-9])", style_name)
        if heading:
            return int(heading.group(1))
        level = outline(style.element.pPr)
        if level is not None:
            return level
        style = style.base_style
    return None


def _docx_list_depth(paragraph: Paragraph) -> int | None:
    ppr = paragraph._p.pPr
    numpr = ppr.find(qn("w:numPr")) if ppr is not None else None
    if numpr is not None:
        ilvl = numpr.find(qn("w:ilvl"))
        value = str(ilvl.get(qn("w:val"), "0")) if ilvl is not None else "0"
        return int(value) if value in set("012345678") else 0
    style_name = (paragraph.style.name if paragraph.style is not None else "") or ""
    return 0 if style_name.lower().startswith("list") else None


def _docx_table_rows(table: Table) -> Iterator[str]:
    for row in table.rows:
        cells: list[str] = []
        seen: list[object] = []
        for cell in row.cells:
            # A horizontally merged cell is returned once per grid column it spans.
            if any(cell._tc is other for other in seen):
                continue
            seen.append(cell._tc)
            cells.append(clean_text(cell.text))
        if any(cells):
            yield " | ".join(cells)
