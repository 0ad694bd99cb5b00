"""PDF text layers via pypdf, with the page number kept on every block."""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator

from pypdf import PasswordType, PdfReader
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError

from ..document import BlockKind
from ..errors import IngestError, IngestErrorCode
from ..text import clean_text
from .outline import Outline

_MIN_LINES_FOR_RUNNING = 6
_PAGE_NUMBER = re.compile(r"^(?:page\s*)?\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?$", re.I)
# Bullets, dashes and arrows that PDF exporters use as list markers.
_PDF_BULLET = re.compile(
    "^[\u2022\u25e6\u25aa\u25ab\u2023\u2219\u00b7\u25cf\u25cb\u25a0\u25a1\u27a2\u27a4\u25ba\u2013*-]\\s+"
)
_SENTENCE_END = re.compile('[.!?:;)\\]"\u201d\u2019]$')


# Text a reader cannot see: render mode 3 (neither filled nor stroked), white fill, or a font
# under 2 points. OCR'd scans put their whole text layer in mode 3 over the page image, so a
# page whose text is mostly hidden is taken as such a layer; hidden text on an otherwise
# visible page is kept (white text on a dark box is legitimate and cannot be told apart
# cheaply) but the document is flagged for review.
_TINY_PT = 2.0
_OCR_LAYER_SHARE = 0.8


class _HiddenText:
    """Follows the graphics state through pypdf's visitors and collects hidden text."""

    def __init__(self) -> None:
        self.mode = 0
        self.white = False
        self.stack: list[tuple[int, bool]] = []
        self.hidden: list[tuple[str, str]] = []  # (reason, text)
        self.visible_chars = 0
        self.hidden_chars = 0

    def operand(self, op: bytes, args: list[object], cm: object, tm: object) -> None:
        if op == b"q":
            self.stack.append((self.mode, self.white))
        elif op == b"Q" and self.stack:
            self.mode, self.white = self.stack.pop()
        elif op == b"Tr" and args:
            self.mode = int(_num(args[0]))
        elif op in (b"g", b"rg", b"k", b"sc", b"scn") and args:
            values = [_num(a) for a in args if isinstance(a, int | float) or _is_number(a)]
            if op == b"k":
                self.white = bool(values) and all(v == 0 for v in values)
            else:
                self.white = bool(values) and all(v >= 0.98 for v in values)

    def text(self, text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        chars = len(text.strip())
        if not chars:
            return
        scale = abs(float(tm[3]) * float(cm[3])) if tm and cm else 1.0
        effective = float(size or 0) * (scale or 1.0)
        reason = (
            "invisible render mode"
            if self.mode == 3
            else "white text"
            if self.white
            else "tiny text"
            if 0 < effective < _TINY_PT
            else None
        )
        if reason is None:
            self.visible_chars += chars
        else:
            self.hidden_chars += chars
            self.hidden.append((reason, " ".join(text.split())))

    def page_is_ocr_layer(self) -> bool:
        total = self.visible_chars + self.hidden_chars
        return bool(total) and self.hidden_chars / total >= _OCR_LAYER_SHARE


def _is_number(value: object) -> bool:
    try:
        float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def _num(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def parse_pdf(data: bytes, name: str, out: Outline) -> str:
    reader = _open_pdf(data, name)
    page_lines: list[list[str]] = []
    hidden: list[tuple[int, str, str]] = []  # (page, reason, text)
    for number, page in enumerate(reader.pages, start=1):
        seen = _HiddenText()
        try:
            raw = (
                page.extract_text(visitor_operand_before=seen.operand, visitor_text=seen.text) or ""
            )
        except LimitReachedError as exc:
            raise _decompression_bomb(name) from exc
        except Exception as exc:
            # One bad page should not lose the rest of a manual; tell the admin instead.
            out.warnings.append(f"Page {number}: text could not be extracted ({exc}).")
            raw = ""
        page_lines.append([clean_text(line) for line in raw.split("\n")])
        if not seen.page_is_ocr_layer():
            hidden.extend((number, reason, text) for reason, text in seen.hidden if text)
    if not any(any(lines) for lines in page_lines):
        raise IngestError(
            IngestErrorCode.NO_TEXT,
            f"{name} has no extractable text: it looks like a scanned or image-only PDF. "
            "Run it through OCR (or export it with a text layer) and upload it again.",
        )
    blank = [str(number) for number, lines in enumerate(page_lines, start=1) if not any(lines)]
    if blank:
        shown = ", ".join(blank[:10]) + (f" and {len(blank) - 10} more" if len(blank) > 10 else "")
        out.warnings.append(
            f"No text on page(s) {shown} (scanned images?); those pages were not indexed."
        )
    if hidden:
        reasons = ", ".join(sorted({reason for _, reason, _ in hidden}))
        pages_with = sorted({number for number, _, _ in hidden})
        sample = hidden[0][2] if len(hidden[0][2]) <= 80 else hidden[0][2][:79] + "…"
        out.warnings.append(
            f"Hidden text found ({len(hidden)} passage(s) on page(s) "
            f"{', '.join(map(str, pages_with[:10]))}: {reasons}), e.g. “{sample}”. It was kept: "
            "review the document before relying on it, since readers cannot see that text."
        )
    pages = _strip_running_lines(page_lines)
    # Line width is measured over the whole document: one page has too few lines to tell a
    # paragraph's short last line from an ordinary one.
    widths = sorted(len(line) for lines in pages for line in lines if line)
    typical = widths[int(len(widths) * 0.8)] if widths else 0
    for number, lines in enumerate(pages, start=1):
        for text, kind in _pdf_paragraphs(lines, typical):
            out.add(text, kind, page=number)
    return _pdf_title(reader)


def _open_pdf(data: bytes, name: str) -> PdfReader:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Many PDFs carry only an owner password ("no printing"); they open with an empty
            # user password and are fine to index.
            try:
                result = reader.decrypt("")
            except (DependencyError, NotImplementedError) as exc:
                raise IngestError(
                    IngestErrorCode.ENCRYPTED,
                    f"{name} uses an encryption method this server cannot read ({exc}). "
                    "Remove the protection and upload it again.",
                ) from exc
            if result == PasswordType.NOT_DECRYPTED:
                raise IngestError(
                    IngestErrorCode.ENCRYPTED,
                    f"{name} is password-protected. Save an unprotected copy (for example by "
                    "printing it to a new PDF) and upload that.",
                )
        len(reader.pages)  # forces the page tree to load, where most corruption shows up
    except IngestError:
        raise
    except FileNotDecryptedError as exc:
        raise IngestError(IngestErrorCode.ENCRYPTED, f"{name} is password-protected.") from exc
    except LimitReachedError as exc:
        raise _decompression_bomb(name) from exc
    except Exception as exc:
        raise IngestError(
            IngestErrorCode.CORRUPT,
            f"{name} is damaged and cannot be read as a PDF ({exc}). "
            "Export it again and re-upload.",
        ) from exc
    return reader


def _decompression_bomb(name: str) -> IngestError:
    return IngestError(
        IngestErrorCode.ZIP_BOMB,
        f"{name} was refused: its compressed content expands to an unreasonable size.",
    )


def _pdf_title(reader: PdfReader) -> str:
    try:
        title = (reader.metadata.title if reader.metadata else None) or ""
    except Exception:
        return ""
    title = clean_text(str(title))
    # Word and friends stamp titles like "Microsoft Word - draft3.docx" or "untitled".
    if title.lower() in {"untitled", "title", "document"} or re.search(
        r"\.(docx?|pdf|txt|odt|rtf)$|^microsoft (word|powerpoint)", title, re.I
    ):
        return ""
    return title


def _strip_running_lines(pages: list[list[str]]) -> list[list[str]]:
    """Drop page numbers, and headers/footers repeated at the top/bottom of most pages."""

    def edges(lines: list[str]) -> list[int]:
        # Running headers/footers are short and sit in the first or last two lines. Pages
        # with only a few lines (covers, dividers) are all content, so they are not looked at.
        filled = [i for i, line in enumerate(lines) if line]
        if len(filled) < _MIN_LINES_FOR_RUNNING:
            return []
        return [i for i in filled[:2] + filled[-2:] if len(lines[i]) <= 100]

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", line.lower())  # "Handbook | 3" repeats as "handbook | #"

    repeated: set[str] = set()
    full_pages = [lines for lines in pages if edges(lines)]
    if len(full_pages) >= 3:
        counts = Counter(k for lines in full_pages for k in {key(lines[i]) for i in edges(lines)})
        repeated = {k for k, n in counts.items() if n >= 0.6 * len(full_pages)}
    result = []
    for lines in pages:
        filled = [i for i, line in enumerate(lines) if line]
        drop = {i for i in edges(lines) if key(lines[i]) in repeated}
        drop |= {i for i in filled[:1] + filled[-1:] if _PAGE_NUMBER.match(lines[i])}
        result.append([line for i, line in enumerate(lines) if i not in drop])
    return result


def _pdf_paragraphs(lines: list[str], typical: int) -> Iterator[tuple[str, BlockKind]]:
    """Rebuild paragraphs from a page's text lines.

    The text layer has no paragraph marks, so a paragraph ends at a blank line, at a bullet,
    or after a short line ending in punctuation (the ragged last line of a paragraph).
    """
    current: list[str] = []
    items: list[str] = []

    def paragraph() -> Iterator[tuple[str, BlockKind]]:
        if current:
            yield _join_pdf_lines(current), BlockKind.PARAGRAPH
            current.clear()

    def bullets() -> Iterator[tuple[str, BlockKind]]:
        if items:
            yield "\n".join(f"- {item}" for item in items), BlockKind.LIST
            items.clear()

    for line in lines:
        if not line:
            yield from paragraph()
            yield from bullets()
            continue
        bullet = _PDF_BULLET.match(line)
        if bullet:
            yield from paragraph()
            items.append(line[bullet.end() :])
            continue
        if items and not current and not _ends_paragraph(items[-1], typical):
            items[-1] = _join_pdf_lines([items[-1], line])  # wrapped bullet item
            continue
        yield from bullets()
        if current and _ends_paragraph(current[-1], typical, nxt=line):
            yield from paragraph()
        current.append(line)
    yield from paragraph()
    yield from bullets()


def _ends_paragraph(line: str, typical: int, nxt: str | None = None) -> bool:
    short = len(line) < 0.75 * typical
    if short and _SENTENCE_END.search(line):
        return True
    # A short unpunctuated line followed by a capitalised one is most likely a heading.
    return bool(len(line) < 0.6 * typical and nxt and nxt[:1].isupper())


def _join_pdf_lines(lines: list[str]) -> str:
    parts = [lines[0]]
    for line in lines[1:]:
        last = parts[-1]
        if len(last) > 1 and last[-1] == "-" and last[-2].islower() and line[:1].islower():
            parts[-1] = last[:-1]  # undo end-of-line hyphenation: "infor-" + "mation"
            parts.append(line)
        else:
            parts.extend((" ", line))
    return "".join(parts)
