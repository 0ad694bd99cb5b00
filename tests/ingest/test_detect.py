from __future__ import annotations

import pytest

from support.ingest import (
    EXTENSIONS,
    FileType,
    IngestError,
    IngestErrorCode,
    detect_type,
    parse,
    safe_filename,
)

from .builders import MINIMAL_DOCX_PARTS, pdf_with_pages, zip_bytes

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/var/www/uploads/guide.md", "guide.md"),
        ("C:\\Users\\me\\Documents\\policy.pdf", "policy.pdf"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("a/b/../../c/notes.txt", "notes.txt"),
        ("report\x00.pdf", "report.pdf"),
        ("evil.txt\x00.exe", "evil.txt.exe"),
        ("col\x1b[31mor.md", "col[31mor.md"),
        ("invoice\u202egnp.md", "invoicegnp.md"),  # right-to-left override trick
        ("zero\u200bwidth.md", "zerowidth.md"),
        (".hidden.md", "hidden.md"),
        ("trailing.pdf. . ", "trailing.pdf"),
        ('what<is>:this|"?*.txt', "what_is__this____.txt"),
        ("  spaced   out  name.md ", "spaced out name.md"),
        ("CON.txt", "_CON.txt"),
        ("Rückgabe – Richtlinie.md", "Rückgabe – Richtlinie.md"),
    ],
)
def test_safe_filename_strips_paths_and_controls(raw: str, expected: str) -> None:
    assert safe_filename(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "..", ".", "../..", "/", "\\", "a/", "\x00\x01", "..."])
def test_safe_filename_rejects_names_that_end_up_empty(raw: str) -> None:
    with pytest.raises(IngestError) as caught:
        safe_filename(raw)
    assert caught.value.code is IngestErrorCode.BAD_NAME
    assert "rename the file" in caught.value.message


def test_safe_filename_truncates_long_names_keeping_the_extension() -> None:
    name = safe_filename("ü" * 300 + ".markdown")
    assert name.endswith(".markdown")
    assert len(name.encode()) <= 255


def test_error_shape_matches_support_errors() -> None:
    error = IngestError(IngestErrorCode.EMPTY, "x.md is empty.")
    assert error.code == "empty"  # StrEnum: compares equal to the plain string
    assert error.message == str(error) == "x.md is empty."


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("guide.md", b"# Title\n\nBody", FileType.MARKDOWN),
        ("guide.MARKDOWN", b"Body", FileType.MARKDOWN),
        ("notes.txt", b"Just text", FileType.TEXT),
        ("page.html", b"<!doctype html><html><body><p>x</p></body></html>", FileType.HTML),
        ("page.HTM", b"plain words are fine in an html file", FileType.HTML),
        ("faq.csv", b"question,answer\nq,a\n", FileType.CSV),
        ("Guide.PDF", pdf_with_pages([["Hello"]]), FileType.PDF),
        ("policy.docx", zip_bytes(MINIMAL_DOCX_PARTS), FileType.DOCX),
        ("utf16.txt", "Hello wörld".encode("utf-16"), FileType.TEXT),
    ],
)
def test_detect_type_by_extension_confirmed_by_content(
    name: str, data: bytes, expected: FileType
) -> None:
    assert detect_type(data, name) is expected


HTML_PAGE = b"<!DOCTYPE html><html><body>hi</body></html>"
DOCX_LIKE = zip_bytes(MINIMAL_DOCX_PARTS)
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("file.pdf", HTML_PAGE, "file.pdf is not a PDF: looks like HTML."),
        ("file.pdf", b"just some words", "file.pdf is not a PDF: looks like plain text."),
        ("file.pdf", DOCX_LIKE, "file.pdf is not a PDF: looks like a Word document (.docx)."),
        (
            "f.docx",
            pdf_with_pages([["x"]]),
            "f.docx is not a Word document (.docx): looks like a PDF.",
        ),
        (
            "f.docx",
            zip_bytes({"xl/workbook.xml": b"<x/>"}),
            "looks like an Excel workbook (.xlsx).",
        ),
        ("f.docx", zip_bytes({"readme.txt": b"hi"}), "looks like a ZIP archive."),
        ("f.docx", OLE, "looks like a legacy Office file (.doc/.xls/.ppt)."),
        ("f.docx", b"plain words", "looks like plain text."),
        ("notes.md", PNG, "notes.md is not a Markdown file: looks like a PNG image."),
        (
            "notes.txt",
            pdf_with_pages([["x"]]),
            "notes.txt is not a plain-text file: looks like a PDF.",
        ),
        ("notes.txt", b"<!DOCTYPE html>\n<html><body>saved</body></html>", "looks like HTML."),
        (
            "faq.csv",
            zip_bytes({"a.txt": b"x"}),
            "faq.csv is not a CSV file: looks like a ZIP archive.",
        ),
        (
            "page.html",
            b"\x00\x01\x02\x03bin\x00\xff" * 10,
            "is not an HTML page: looks like binary data.",
        ),
    ],
)
def test_content_that_contradicts_the_extension_is_a_type_mismatch(
    name: str, data: bytes, message: str
) -> None:
    with pytest.raises(IngestError) as caught:
        parse(data, name)
    assert caught.value.code is IngestErrorCode.TYPE_MISMATCH
    assert message in caught.value.message


@pytest.mark.parametrize("name", ["payload.exe", "sheet.xlsx", "archive.zip", "README"])
def test_unknown_extension_lists_supported_types(name: str) -> None:
    with pytest.raises(IngestError) as caught:
        parse(b"content", name)
    assert caught.value.code is IngestErrorCode.UNKNOWN_TYPE
    for extension in EXTENSIONS:
        assert extension in caught.value.message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.md", b""),
        ("a.txt", b"   \n\t\r\n  "),
        ("a.pdf", b"\n\n"),
        ("a.docx", b""),
        ("a.txt", "\ufeff".encode()),  # a BOM and nothing else
        ("a.txt", "  \n ".encode("utf-16")),
        ("a.md", "\u200b\u200b\n".encode()),  # only invisible characters
    ],
)
def test_empty_files_are_rejected(name: str, data: bytes) -> None:
    with pytest.raises(IngestError) as caught:
        parse(data, name)
    assert caught.value.code is IngestErrorCode.EMPTY
    assert caught.value.message == f"{name} is empty."


def test_size_limit_is_checked_before_anything_else() -> None:
    with pytest.raises(IngestError) as caught:
        parse(b"x" * 3 * 1024 * 1024, "big.exe", max_bytes=2 * 1024 * 1024)
    assert caught.value.code is IngestErrorCode.TOO_LARGE
    assert caught.value.message == "big.exe is 3 MB; the limit is 2 MB."


def test_default_size_limit_is_25_mb() -> None:
    with pytest.raises(IngestError) as caught:
        detect_type(b"a" * (25 * 1024 * 1024 + 1), "big.txt")
    assert caught.value.code is IngestErrorCode.TOO_LARGE
    assert "the limit is 25 MB" in caught.value.message


def test_parse_reports_the_sanitised_name() -> None:
    doc = parse(b"Hello there.", "../../secret/notes.txt")
    assert doc.filename == "notes.txt"
    assert doc.title == "notes"
