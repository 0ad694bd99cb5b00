from __future__ import annotations

import pytest

from support.ingest import BlockKind, FileType, parse
from support.ingest.text import clean_text

# --------------------------------------------------------------------------- clean-up


def test_invisible_and_control_characters_are_stripped() -> None:
    dirty = "Re\u200bfund\u00ad \u202epolicy\u202c\x00 is\u2066 \ufeffhere\U000e0041\x07."
    assert clean_text(dirty) == "Refund policy is here."


def test_whitespace_is_normalised() -> None:
    assert clean_text("  a\u00a0\u00a0b\t\tc\r\n\r\nd  ") == "a b c d"
    assert clean_text("  - a\t b  \r\n\n\n\n  - c ", keep_newlines=True) == "  - a b\n\n  - c"


def test_ligatures_from_pdfs_are_expanded() -> None:
    assert clean_text("\ufb01nal o\ufb00er") == "final offer"


def test_invisible_characters_are_stripped_from_parsed_blocks() -> None:
    doc = parse("# Ti\u200btle\n\nSecret\u202e \u2067text\u2069 here.".encode(), "x.md")
    assert doc.title == "Title"
    assert doc.blocks[0].text == "Secret text here."


# --------------------------------------------------------------------------- plain text

LONG_FRENCH = (
    "Nous acceptons les retours sous trente jours. Le remboursement est effectué après "
    "réception du colis. Très simple, n’est-ce pas? Voilà « la procédure » complète."
)


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8", LONG_FRENCH),
        ("utf-8-sig", LONG_FRENCH),
        ("latin-1", "Café crème brûlée, naïve façade. ¡Hola señor! Grüße aus München."),
        ("cp1252", LONG_FRENCH + " Prix: 5 \u20ac, \u201cguillemets\u201d."),
        ("utf-16", LONG_FRENCH),
        ("utf-16-le", "Plain ASCII-ish text with one umlaut: M\u00fcnchen, and more words."),
        ("utf-16-be", "Plain ASCII-ish text with one umlaut: M\u00fcnchen, and more words."),
        ("cp1251", "Возврат товара возможен в течение 30 дней после покупки."),
        ("cp1250", "Vrácení zboží je možné do 14 dnů. Děkujeme za nákup v našem obchodě."),
        ("cp1250", "Zwrot towaru jest możliwy w ciągu 30 dni. Dziękujemy za zakupy."),
    ],
)  # fmt: skip
def test_plain_text_encodings_are_detected(encoding: str, text: str) -> None:
    doc = parse(text.encode(encoding), "notes.txt")
    assert doc.file_type is FileType.TEXT
    assert [b.text for b in doc.blocks] == [text]


def test_plain_text_paragraphs_split_on_blank_lines() -> None:
    data = b"First line\nstill first paragraph.\n\n  \nSecond paragraph.\r\n\r\n- one\n- two\n"
    doc = parse(data, "notes.txt")
    assert [(b.kind, b.text) for b in doc.blocks] == [
        (BlockKind.PARAGRAPH, "First line still first paragraph."),
        (BlockKind.PARAGRAPH, "Second paragraph."),
        (BlockKind.LIST, "- one\n- two"),
    ]
    assert all(b.heading_path == () and b.page is None for b in doc.blocks)


# --------------------------------------------------------------------------- Markdown

GUIDE = """\
---
title: "Returns & Refunds"
author: support
---

# Returns

You can return *most* items within **30 days**. See [the form](https://shop.example/returns)
or [our FAQ](/faq).

## Conditions

- Unused, in original packaging
- With receipt
  - or an order number
1. Numbered step

### Exceptions

| Item | Returnable |
|------|-----------:|
| Gift cards | No |

```bash
# not a heading
curl https://shop.example/api
```

## Refunds

Refunds go to the original payment method.

Conditions
----------

A setext heading with the same text gets a distinct anchor.

    indented_code = True
"""


def test_markdown_blocks_heading_paths_and_title() -> None:
    doc = parse(GUIDE.encode(), "returns.md")
    assert doc.title == "Returns & Refunds"  # front matter wins over the first H1
    got = [(b.kind, b.heading_path, b.anchor, b.text) for b in doc.blocks]
    assert got == [
        (
            BlockKind.PARAGRAPH,
            ("Returns",),
            "returns",
            "You can return most items within 30 days. See the form "
            "(https://shop.example/returns) or our FAQ.",
        ),
        (
            BlockKind.LIST,
            ("Returns", "Conditions"),
            "conditions",
            "- Unused, in original packaging\n- With receipt\n  - or an order number\n"
            "1. Numbered step",
        ),
        (
            BlockKind.TABLE,
            ("Returns", "Conditions", "Exceptions"),
            "exceptions",
            "Item | Returnable\nGift cards | No",
        ),
        (
            BlockKind.CODE,
            ("Returns", "Conditions", "Exceptions"),
            "exceptions",
            "```bash\n# not a heading\ncurl https://shop.example/api\n```",
        ),
        (
            BlockKind.PARAGRAPH,
            ("Returns", "Refunds"),
            "refunds",
            "Refunds go to the original payment method.",
        ),
        (
            BlockKind.PARAGRAPH,
            ("Returns", "Conditions"),
            "conditions-1",
            "A setext heading with the same text gets a distinct anchor.",
        ),
        (BlockKind.CODE, ("Returns", "Conditions"), "conditions-1", "indented_code = True"),
    ]


def test_markdown_title_falls_back_to_first_h1_then_file_name() -> None:
    assert parse(b"Intro.\n\n# Real Title\n\nBody.", "a.md").title == "Real Title"
    assert parse(b"## Only a subsection\n\nBody.", "shipping-faq.md").title == "shipping-faq"


def test_markdown_explicit_heading_ids_and_unterminated_fence() -> None:
    doc = parse(b"## Billing {#billing-help}\n\nPay here.\n\n```\ncode never closed", "a.md")
    assert doc.blocks[0].anchor == "billing-help"
    assert doc.blocks[0].heading_path == ("Billing",)
    assert doc.blocks[1].kind is BlockKind.CODE
    assert doc.blocks[1].text == "```\ncode never closed\n```"


def test_markdown_without_text_is_rejected() -> None:
    from support.ingest import IngestError, IngestErrorCode

    with pytest.raises(IngestError) as caught:
        parse(b"# Heading only\n\n---\n\n<!-- a comment -->\n", "a.md")
    assert caught.value.code is IngestErrorCode.NO_TEXT
    assert "no extractable text" in caught.value.message
