from __future__ import annotations

import time

import docx
import pytest
from docx.enum.style import WD_STYLE_TYPE

from support.ingest import (
    BlockKind,
    FileType,
    IngestError,
    IngestErrorCode,
    ZipLimits,
    parse,
)

from .builders import MINIMAL_DOCX_PARTS, docx_bytes, zip_bytes


def _policy_document() -> bytes:
    document = docx.Document()
    document.core_properties.title = ""
    document.add_heading("Refund Policy", 0)  # style "Title"
    document.add_paragraph("Applies to all orders.")
    document.add_heading("Eligibility", 1)
    document.add_paragraph("Items must be unused.")
    document.add_paragraph("Receipt or order number", style="List Bullet")
    document.add_paragraph("Original packaging", style="List Bullet")
    document.add_heading("Fees", 2)
    table = document.add_table(rows=3, cols=3)
    for row, values in zip(
        table.rows,
        [("Method", "Fee", "Days"), ("Card", "0", "5"), ("Bank", "1", "7")],
        strict=True,
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    merged = table.cell(2, 1).merge(table.cell(2, 2))
    merged.text = "1 EUR / 7 days"
    document.add_paragraph("   ")  # empty paragraphs are skipped
    # A custom heading style that inherits from Heading 1 still counts as a heading.
    custom = document.styles.add_style("Policy Heading", WD_STYLE_TYPE.PARAGRAPH)
    custom.base_style = document.styles["Heading 1"]
    document.add_paragraph("Contact", style="Policy Heading")
    document.add_paragraph("Write to help@example.com.")
    return docx_bytes(document)


def test_docx_headings_paragraphs_lists_and_tables() -> None:
    doc = parse(_policy_document(), "refunds.docx")
    assert doc.file_type is FileType.DOCX
    assert doc.title == "Refund Policy"  # no core title: the Title-styled paragraph
    got = [(b.kind, b.heading_path, b.text) for b in doc.blocks]
    assert got == [
        (BlockKind.PARAGRAPH, ("Refund Policy",), "Applies to all orders."),
        (BlockKind.PARAGRAPH, ("Refund Policy", "Eligibility"), "Items must be unused."),
        (
            BlockKind.LIST,
            ("Refund Policy", "Eligibility"),
            "- Receipt or order number\n- Original packaging",
        ),
        (
            BlockKind.TABLE,
            ("Refund Policy", "Eligibility", "Fees"),
            "Method | Fee | Days\nCard | 0 | 5\nBank | 1 EUR / 7 days",
        ),
        (BlockKind.PARAGRAPH, ("Refund Policy", "Contact"), "Write to help@example.com."),
    ]
    assert all(b.page is None for b in doc.blocks)


def test_docx_core_title_wins() -> None:
    document = docx.Document()
    document.core_properties.title = "Official title"
    document.add_heading("Body heading", 1)
    document.add_paragraph("Text.")
    assert parse(docx_bytes(document), "a.docx").title == "Official title"


def test_zip_bomb_is_refused_before_python_docx_opens_it() -> None:
    started = time.perf_counter()
    bomb = zip_bytes(MINIMAL_DOCX_PARTS, big_entry=("word/media/image1.bin", 48 * 1024 * 1024))
    assert len(bomb) < 200_000
    with pytest.raises(IngestError) as caught:
        parse(bomb, "bomb.docx")
    assert caught.value.code is IngestErrorCode.ZIP_BOMB
    assert "zip bomb" in caught.value.message
    assert "compressed" in caught.value.message
    assert time.perf_counter() - started < 5


def test_zip_that_unpacks_too_large_is_refused() -> None:
    archive = zip_bytes(MINIMAL_DOCX_PARTS, big_entry=("word/media/a.bin", 3 * 1024 * 1024))
    limits = ZipLimits(max_total_bytes=2 * 1024 * 1024, max_ratio=10_000)
    with pytest.raises(IngestError) as caught:
        parse(archive, "big.docx", zip_limits=limits)
    assert caught.value.code is IngestErrorCode.ZIP_BOMB
    assert "unpacks to 3 MB; the limit is 2 MB" in caught.value.message


def test_zip_with_too_many_entries_is_refused() -> None:
    parts = dict(MINIMAL_DOCX_PARTS) | {f"word/x{i}.xml": b"<x/>" for i in range(20)}
    with pytest.raises(IngestError) as caught:
        parse(zip_bytes(parts), "many.docx", zip_limits=ZipLimits(max_entries=10))
    assert caught.value.code is IngestErrorCode.ZIP_BOMB
    assert "22 archive entries" in caught.value.message


def test_docx_with_broken_xml_is_corrupt() -> None:
    with pytest.raises(IngestError) as caught:
        parse(zip_bytes(MINIMAL_DOCX_PARTS), "broken.docx")
    assert caught.value.code is IngestErrorCode.CORRUPT
    assert caught.value.message.startswith("broken.docx is damaged")


def test_truncated_docx_is_corrupt() -> None:
    data = _policy_document()
    with pytest.raises(IngestError) as caught:
        parse(data[: len(data) // 2], "cut.docx")
    assert caught.value.code is IngestErrorCode.CORRUPT


def test_docx_without_text() -> None:
    with pytest.raises(IngestError) as caught:
        parse(docx_bytes(docx.Document()), "blank.docx")
    assert caught.value.code is IngestErrorCode.NO_TEXT
