from __future__ import annotations

import csv
import io

import pytest

from support.ingest import BlockKind, FileType, IngestError, IngestErrorCode, parse


def _rows(data: bytes) -> list[tuple[tuple[str, ...], str]]:
    doc = parse(data, "faq.csv")
    assert doc.file_type is FileType.CSV
    assert all(b.kind is BlockKind.FAQ for b in doc.blocks)
    return [(b.heading_path, b.text) for b in doc.blocks]


def test_each_row_is_one_faq_block() -> None:
    data = (
        b"question,answer\n"
        b"How long does shipping take?,Two to four working days.\n"
        b'"Can I pay by invoice, too?","Yes, for business accounts.\nApply in settings."\n'
    )
    assert _rows(data) == [
        (
            ("How long does shipping take?",),
            "Q: How long does shipping take?\nA: Two to four working days.",
        ),
        (
            ("Can I pay by invoice, too?",),
            "Q: Can I pay by invoice, too?\nA: Yes, for business accounts.\nApply in settings.",
        ),
    ]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed_and_header_is_case_insensitive(delimiter: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)  # quotes fields containing the delimiter
    writer.writerow(["ID", " Question ", "ANSWER", "Category"])
    writer.writerow(["1", "Where is my order?", "See the tracking link, or ask us.", "shipping"])
    writer.writerow(["2", "Do you ship abroad?", "Yes: EU, UK; and Norway.", "shipping"])
    assert _rows(buffer.getvalue().encode()) == [
        (("Where is my order?",), "Q: Where is my order?\nA: See the tracking link, or ask us."),
        (("Do you ship abroad?",), "Q: Do you ship abroad?\nA: Yes: EU, UK; and Norway."),
    ]


def test_encoding_is_detected() -> None:
    text = (
        "Frage;Question;Answer\n"
        "x;Kann ich meine Bestellung ändern?;Ja, innerhalb von zwei Stunden.\n"
        "y;Gibt es Rabatte für Studenten?;Ja, zehn Prozent mit gültigem Ausweis – ohne Ausnahme.\n"
    )
    for encoding in ("cp1252", "utf-8-sig", "utf-16"):
        rows = _rows(text.encode(encoding))
        assert rows[0][0] == ("Kann ich meine Bestellung ändern?",)
        assert rows[1][1].endswith("ohne Ausnahme.")


def test_rows_missing_a_side_are_skipped_with_a_warning() -> None:
    data = b"question,answer\nGood?,Yes.\n,Orphan answer.\nNo answer?,\n,\n"
    doc = parse(data, "faq.csv")
    assert [b.text for b in doc.blocks] == ["Q: Good?\nA: Yes."]
    assert doc.warnings == ("Line 3: no question; row skipped.", "Line 4: no answer; row skipped.")


@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"q,a\nHello?,Hi.\n", "found 'q', 'a'."),
        (b"question;reply\nHello?;Hi.\n", "found 'question', 'reply'."),
        (
            b"just one line of prose without columns\n",
            "found 'just one line of prose without columns'.",
        ),
    ],
)
def test_missing_columns_are_reported_clearly(data: bytes, found: str) -> None:
    with pytest.raises(IngestError) as caught:
        parse(data, "faq.csv")
    assert caught.value.code is IngestErrorCode.MISSING_COLUMNS
    assert caught.value.message.startswith(
        "faq.csv needs a header row with 'question' and 'answer' columns;"
    )
    assert caught.value.message.endswith(found)


def test_header_without_rows_is_empty() -> None:
    with pytest.raises(IngestError) as caught:
        parse(b"question,answer\n", "faq.csv")
    assert caught.value.code is IngestErrorCode.EMPTY
    assert caught.value.message == "faq.csv has no question/answer rows."
