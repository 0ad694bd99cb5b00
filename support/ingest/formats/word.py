"""Word (.docx) documents via python-docx, after a zip-bomb check of the archive."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

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
        hidden = _drop_invisible_runs(document)
        title = _walk_docx(document, out)
    except Exception as exc:
        raise IngestError(
            IngestErrorCode.CORRUPT,
            f"{name} is damaged or not a regular Word document ({exc}). "
            "Save it again from Word as .docx and re-upload.",
        ) from exc
    if hidden:
        reasons = ", ".join(sorted({reason for reason, _ in hidden}))
        sample = hidden[0][1] if len(hidden[0][1]) <= 80 else hidden[0][1][:79] + "…"
        out.warnings.append(
            f"Invisible text was left out ({len(hidden)} run(s): {reasons}), e.g. “{sample}”. "
            "Review the document if that text should be in the knowledge base."
        )
    return title


# --- invisible text ---------------------------------------------------------------------------
# Text Word does not show (hidden runs) or that nobody can read (white on no shading, a font of
# 2.5 pt or less) is how instructions are planted for a language model in documents that look
# harmless. Formatting is looked up the way Word resolves it: the run's own properties, then its
# character style, then its paragraph's style (each with their base styles), then the defaults.
_OFF = frozenset({"0", "false", "off"})
_TINY_HALF_POINTS = 5
_NO_FILL = frozenset({"", "auto", "none", "ffffff", "clear"})


def _toggle(rpr: Any, tag: str) -> bool | None:
    found = rpr.find(qn(tag)) if rpr is not None else None
    if found is None:
        return None
    return str(found.get(qn("w:val"), "1")).lower() not in _OFF


def _value(rpr: Any, tag: str) -> str | None:
    found = rpr.find(qn(tag)) if rpr is not None else None
    if found is None:
        return None
    value = found.get(qn("w:val"))
    return str(value) if value is not None else None


class _Styles:
    """Run properties of styles by id, following w:basedOn (cycles are cut)."""

    def __init__(self, document: DocxDocument) -> None:
        root = document.styles.element
        self.by_id = {str(s.get(qn("w:styleId"))): s for s in root.findall(qn("w:style"))}
        defaults = root.find(qn("w:docDefaults"))
        default_rpr = defaults.find(qn("w:rPrDefault")) if defaults is not None else None
        self.default = default_rpr.find(qn("w:rPr")) if default_rpr is not None else None

    def chain(self, style_id: str | None) -> list[Any]:
        chain: list[Any] = []
        seen: set[str] = set()
        while style_id and style_id not in seen and len(seen) < 20:
            seen.add(style_id)
            style = self.by_id.get(style_id)
            if style is None:
                break
            chain.append(style.find(qn("w:rPr")))
            based = style.find(qn("w:basedOn"))
            style_id = str(based.get(qn("w:val"))) if based is not None else None
        return chain


def _shaded(element: Any) -> bool:
    """A fill or highlight other than white/none: white text on it is visible."""
    for tag in ("w:shd", "w:highlight"):
        found = element.find(qn(tag)) if element is not None else None
        if found is None:
            continue
        value = found.get(qn("w:fill")) if tag == "w:shd" else found.get(qn("w:val"))
        if str(value or "").lower() not in _NO_FILL | {"white"}:
            return True
    return False


def _run_hidden_reason(run: Any, styles: _Styles, cache: dict[str, list[Any]]) -> str | None:
    rpr = run.find(qn("w:rPr"))
    paragraph = run.getparent()
    while paragraph is not None and paragraph.tag != qn("w:p"):
        paragraph = paragraph.getparent()
    ppr = paragraph.find(qn("w:pPr")) if paragraph is not None else None
    r_style = _value(rpr, "w:rStyle")
    p_style = _value(ppr, "w:pStyle") if ppr is not None else None
    layers = [rpr]
    for style_id in (r_style, p_style):
        if style_id is not None:
            if style_id not in cache:
                cache[style_id] = styles.chain(style_id)
            layers += cache[style_id]
    layers.append(styles.default)

    def first(get: Any, tag: str) -> Any:
        for layer in layers:
            value = get(layer, tag)
            if value is not None:
                return value
        return None

    if first(_toggle, "w:vanish") or first(_toggle, "w:specVanish"):
        return "hidden text"
    size = first(_value, "w:sz")
    if size is not None and size.isdigit() and int(size) <= _TINY_HALF_POINTS:
        return "tiny text"
    color = str(first(_value, "w:color") or "").lower()
    if color in ("ffffff", "fefefe", "fdfdfd", "white"):
        cell = run.getparent()
        while cell is not None and cell.tag != qn("w:tc"):
            cell = cell.getparent()
        tcpr = cell.find(qn("w:tcPr")) if cell is not None else None
        if not any(_shaded(e) for e in (rpr, ppr, tcpr)):
            return "white text"
    return None


def _drop_invisible_runs(document: DocxDocument) -> list[tuple[str, str]]:
    """Remove runs nobody sees from the body; returns (reason, text) for those with text."""
    styles = _Styles(document)
    cache: dict[str, list[Any]] = {}
    doomed: list[tuple[Any, str]] = []
    for run in document.element.body.iter(qn("w:r")):
        reason = _run_hidden_reason(run, styles, cache)
        if reason is not None:
            doomed.append((run, reason))
    hidden: list[tuple[str, str]] = []
    for run, reason in doomed:
        parent = run.getparent()
        if parent is None:  # inside a run removed already
            continue
        text = clean_text("".join(t.text or "" for t in run.iter(qn("w:t"))))
        if text:
            hidden.append((reason, text))
        parent.remove(run)
    return hidden


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
