"""Upload vetting: a safe file name, a size limit, and a file type that the content confirms."""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from .document import FileType
from .errors import IngestError, IngestErrorCode
from .text import bomless_utf16, clean_text, decode_text

DEFAULT_MAX_BYTES = 25 * 1024 * 1024

EXTENSIONS: dict[str, FileType] = {
    ".md": FileType.MARKDOWN,
    ".markdown": FileType.MARKDOWN,
    ".txt": FileType.TEXT,
    ".html": FileType.HTML,
    ".htm": FileType.HTML,
    ".pdf": FileType.PDF,
    ".docx": FileType.DOCX,
    ".csv": FileType.CSV,
}

_EXPECTED: dict[FileType, str] = {
    FileType.MARKDOWN: "a Markdown file",
    FileType.TEXT: "a plain-text file",
    FileType.HTML: "an HTML page",
    FileType.PDF: "a PDF",
    FileType.DOCX: "a Word document (.docx)",
    FileType.CSV: "a CSV file",
}

# Signatures of things people upload by mistake; checked at offset 0.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (.doc/.xls/.ppt)"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"{\\rtf", "an RTF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x7fELF", "an executable"),
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]", re.I | re.S)
_META_CHARSET = re.compile(rb"<meta[^>]+charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]+)", re.I)
_HTML_TAG = re.compile(rb"<(?:html|head|body|div|p|h[1-6]|table|ul|a\s)[\s>]", re.I)

# Windows device names: harmless for us (files are stored under generated names) but such a
# name breaks downloads on Windows clients, so they get a prefix.
_RESERVED_STEMS = frozenset(
    {"con", "prn", "aux", "nul"}
    | {f"com{i}" for i in range(1, 10)}
    | {f"lpt{i}" for i in range(1, 10)}
)
_UNSAFE_CHARS = re.compile(r'[<>:"|?*]')
_MAX_NAME_BYTES = 255


@dataclass(frozen=True, slots=True)
class Sniffed:
    """Result of vetting an upload; `text` is the decoded content for text formats."""

    filename: str
    file_type: FileType
    text: str | None


def safe_filename(name: str) -> str:
    """Reduce a client-supplied name to a bare, printable file name, or raise `bad_name`.

    Directory parts (either slash), drive letters, control and invisible characters are
    dropped rather than rejected: admins upload from every OS and the name is only a label.
    """
    original = name
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    # Cc (NUL, controls), Cf (bidi overrides such as "invoice\u202efdp.exe", zero-width), Cs.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf", "Cs"})
    name = _UNSAFE_CHARS.sub("_", " ".join(name.split()))
    # Leading dots would make hidden files ("..", ".env"); trailing dots/spaces vanish on Windows.
    name = name.strip(" .")
    if not name or set(name) <= {"_"}:
        raise IngestError(
            IngestErrorCode.BAD_NAME,
            f"The file name {original[:80]!r} is not usable; rename the file and upload it again.",
        )
    if name.partition(".")[0].lower() in _RESERVED_STEMS:
        name = f"_{name}"
    return _truncate_name(name)


def _truncate_name(name: str) -> str:
    if len(name.encode()) <= _MAX_NAME_BYTES:
        return name
    path = PurePosixPath(name)
    suffix = path.suffix if len(path.suffix) <= 16 else ""
    stem = name[: len(name) - len(suffix)]
    budget = _MAX_NAME_BYTES - len(suffix.encode())
    stem = stem.encode()[:budget].decode(errors="ignore").rstrip(" .")
    return stem + suffix


def detect_type(data: bytes, filename: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> FileType:
    """Return the type of an upload, confirmed by its content, or raise `IngestError`."""
    return sniff(data, filename, max_bytes=max_bytes).file_type


def sniff(data: bytes, filename: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Sniffed:
    """Vet an upload (name, size, emptiness, extension, content) and decode it if it is text.

    Checks run cheapest first so a 2 GB upload is refused before anything looks inside it.
    """
    name = safe_filename(filename)
    if len(data) > max_bytes:
        raise IngestError(
            IngestErrorCode.TOO_LARGE,
            f"{name} is {_human_size(len(data))}; the limit is {_human_size(max_bytes)}.",
        )
    if not data or data.isspace():
        raise IngestError(IngestErrorCode.EMPTY, f"{name} is empty.")
    suffix = PurePosixPath(name).suffix.lower()
    file_type = EXTENSIONS.get(suffix)
    if file_type is None:
        supported = ", ".join(sorted(EXTENSIONS))
        what = f"'{suffix}' files are" if suffix else "Files without an extension are"
        raise IngestError(
            IngestErrorCode.UNKNOWN_TYPE,
            f"{name}: {what} not supported. Supported types: {supported}.",
        )
    if file_type is FileType.PDF:
        # The spec allows junk before the header and readers accept it within the first 1 KB.
        if b"%PDF-" not in data[:1024]:
            raise _mismatch(name, file_type, describe_content(data))
        return Sniffed(name, file_type, None)
    if file_type is FileType.DOCX:
        _confirm_docx(data, name)
        return Sniffed(name, file_type, None)
    return Sniffed(name, file_type, _confirm_text(data, name, file_type))


def _confirm_docx(data: bytes, name: str) -> None:
    if not data.startswith(_ZIP_MAGIC):
        raise _mismatch(name, FileType.DOCX, describe_content(data))
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise IngestError(
            IngestErrorCode.CORRUPT,
            f"{name} is damaged and cannot be opened ({exc}). "
            "Save it again from Word and re-upload.",
        ) from exc
    if "word/document.xml" not in names:
        raise _mismatch(name, FileType.DOCX, _describe_zip(names))


def _confirm_text(data: bytes, name: str, file_type: FileType) -> str:
    label = _binary_label(data)
    if label is not None:
        raise _mismatch(name, file_type, label)
    declared = None
    if file_type is FileType.HTML:
        found = _META_CHARSET.search(data[:4096])
        declared = found.group(1).decode("ascii") if found else None
    text = decode_text(data, declared=declared)
    if text is None:
        raise _mismatch(name, file_type, "binary data")
    if not clean_text(text):
        raise IngestError(IngestErrorCode.EMPTY, f"{name} is empty.")
    # Markdown may embed HTML, but a file that *starts* as an HTML document is a saved web
    # page; indexing it as text would store tag soup.
    if file_type is not FileType.HTML and _HTML_START.match(data[:4096]):
        raise _mismatch(name, file_type, "HTML")
    return text


def _binary_label(data: bytes) -> str | None:
    """Name the binary format of `data`, or None if it may be text."""
    head = data[:8192]
    for magic, label in _MAGIC:
        if head.startswith(magic):
            return label
    if head.startswith(_ZIP_MAGIC):
        return _zip_label(data)
    if b"\x00" in head and not head.startswith(_UTF16_BOMS) and bomless_utf16(head) is None:
        return "binary data"
    return None


def describe_content(data: bytes) -> str:
    """A short human label for what `data` looks like ("HTML", "a PNG image", ...)."""
    label = _binary_label(data)
    if label is not None:
        return label
    head = data[:4096]
    if _HTML_START.match(head) or _HTML_TAG.search(head):
        return "HTML"
    text = decode_text(data[:4096])
    if text is None:
        return "binary data"
    return "plain text"


def _zip_label(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _describe_zip(set(archive.namelist()))
    except (zipfile.BadZipFile, OSError, ValueError):
        return "a damaged ZIP archive"


def _describe_zip(names: set[str]) -> str:
    if "word/document.xml" in names:
        return "a Word document (.docx)"
    if "xl/workbook.xml" in names:
        return "an Excel workbook (.xlsx)"
    if "ppt/presentation.xml" in names:
        return "a PowerPoint presentation (.pptx)"
    if "content.xml" in names and "mimetype" in names:
        return "an OpenDocument file"
    if "META-INF/container.xml" in names:
        return "an EPUB e-book"
    return "a ZIP archive"


def _mismatch(name: str, file_type: FileType, label: str) -> IngestError:
    return IngestError(
        IngestErrorCode.TYPE_MISMATCH, f"{name} is not {_EXPECTED[file_type]}: looks like {label}."
    )


def _human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
