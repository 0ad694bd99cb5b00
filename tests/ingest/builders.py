"""Fixture files built in memory by the tests (nothing is checked in or downloaded)."""

from __future__ import annotations

import io
import zipfile

import docx
from pypdf import PdfReader, PdfWriter
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas


def pdf_with_pages(pages: list[list[str]], *, title: str | None = None) -> bytes:
    """One text line per entry; an empty string leaves a gap."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    if title:
        pdf.setTitle(title)
    for lines in pages:
        y = 800.0
        for line in lines:
            if line:
                pdf.drawString(60, y, line)
            y -= 16
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def pdf_without_text() -> bytes:
    """A page with only a drawn rectangle: no text layer at all (like a scan)."""
    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4)
    pdf.rect(100, 100, 300, 400, fill=1)
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def encrypt_pdf(
    data: bytes, *, user_password: str, owner_password: str = "owner", algorithm: str = "AES-256"
) -> bytes:
    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(data)).pages:
        writer.add_page(page)
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(document: docx.document.Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes], *, big_entry: tuple[str, int] | None = None) -> bytes:
    """A zip archive; `big_entry` adds (name, size) of zeros, written in 1 MB pieces."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
        if big_entry is not None:
            name, size = big_entry
            with archive.open(name, "w", force_zip64=True) as handle:
                block = b"\0" * (1024 * 1024)
                for _ in range(size // len(block)):
                    handle.write(block)
    return buffer.getvalue()


MINIMAL_DOCX_PARTS = {
    "[Content_Types].xml": (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        b'<Default Extension="xml" ContentType="application/xml"/></Types>'
    ),
    "word/document.xml": b"<w:document/>",
}
