from __future__ import annotations

import itertools
import random

import pytest

from support.ingest import (
    Block,
    BlockKind,
    ChunkDraft,
    FileType,
    ParsedDocument,
    TokenCounter,
    chunk,
    embedding_model_dir,
    embedding_token_counter,
    parse,
    reset_embedding_token_counter,
    sentences,
)

from .builders import pdf_with_pages
from .conftest import count_words

# --------------------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        (
            "Dr. Smith moved to the U.S. in 2019. He likes it.",
            ["Dr. Smith moved to the U.S. in 2019.", "He likes it."],
        ),
        (
            "Use a mild soap, e.g. Dove. Rinse well.",
            ["Use a mild soap, e.g. Dove.", "Rinse well."],
        ),
        (
            "I.e. it works. Version 3.5 is out. Costs 2.50 EUR.",
            ["I.e. it works.", "Version 3.5 is out.", "Costs 2.50 EUR."],
        ),
        (
            "See Fig. 3 and No. 12 for details. Done.",
            ["See Fig. 3 and No. 12 for details.", "Done."],
        ),
        ("Call J. R. Smith today. Thanks.", ["Call J. R. Smith today.", "Thanks."]),
        ("1. Open the app. Then tap Settings.", ["1. Open the app.", "Then tap Settings."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        (
            "Wait... What happened? (Nobody knew.) Later it rained.",
            ["Wait...", "What happened?", "(Nobody knew.)", "Later it rained."],
        ),
        ("Visit example.com. or www.shop.de today", ["Visit example.com. or www.shop.de today"]),
        ("First line\nSecond line. Third.", ["First line", "Second line.", "Third."]),
        ("这是第一句。这是第二句！好吗？", ["这是第一句。", "这是第二句！", "好吗？"]),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_sentences(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


# --------------------------------------------------------------------------- helpers


def _doc(*blocks: Block) -> ParsedDocument:
    return ParsedDocument(title="t", file_type=FileType.MARKDOWN, filename="t.md", blocks=blocks)


def _para(text: str, *path: str, anchor: str | None = None, page: int | None = None) -> Block:
    return Block(text=text, heading_path=tuple(path), anchor=anchor, page=page)


def _numbered(count: int, words: int = 6, start: int = 0) -> list[str]:
    """Distinct sentences of `words` words each: "S3 w w w w done."."""
    filler = " ".join(["lorem"] * (words - 2))
    return [f"S{i} {filler} done." for i in range(start, start + count)]


def _check_budget(chunks: list[ChunkDraft], count: TokenCounter, max_tokens: int) -> None:
    assert [c.order for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert c.token_count == count(c.text)
        assert c.token_count <= max_tokens


# --------------------------------------------------------------------------- packing


def test_small_paragraphs_are_packed_into_one_chunk() -> None:
    doc = _doc(_para("First para.", "A", anchor="a"), _para("Second para.", "A", anchor="a"))
    chunks = chunk(doc, count_tokens=count_words, max_tokens=50, overlap_tokens=5)
    assert [(c.text, c.heading_path, c.anchor, c.token_count) for c in chunks] == [
        ("First para.\n\nSecond para.", ("A",), "a", 4)
    ]


def test_heading_changes_always_start_a_new_chunk_without_overlap() -> None:
    doc = _doc(
        _para("Intro text.", "Guide", anchor="guide"),
        _para("Returns text.", "Guide", "Returns", anchor="returns"),
        _para("More returns.", "Guide", "Returns", anchor="returns"),
        _para("Billing text.", "Guide", "Billing", anchor="billing"),
        _para("Back in guide.", "Guide", anchor="guide"),
    )
    chunks = chunk(doc, count_tokens=count_words, max_tokens=100, overlap_tokens=10)
    assert [(c.heading_path, c.anchor, c.text) for c in chunks] == [
        (("Guide",), "guide", "Intro text."),
        (("Guide", "Returns"), "returns", "Returns text.\n\nMore returns."),
        (("Guide", "Billing"), "billing", "Billing text."),
        (("Guide",), "guide", "Back in guide."),
    ]


def test_paragraph_that_fits_a_fresh_chunk_is_not_split() -> None:
    first = " ".join(_numbered(3))  # 18 words
    second = " ".join(_numbered(3, start=3))  # 18 words: does not fit after the first
    chunks = chunk(_doc(_para(first), _para(second)), count_tokens=count_words, max_tokens=30,
                   overlap_tokens=6)  # fmt: skip
    assert [c.text for c in chunks] == [first, _numbered(1, start=2)[0] + "\n\n" + second]


def test_long_paragraph_splits_on_sentence_boundaries_with_overlap() -> None:
    parts = _numbered(20)  # 6 words each
    chunks = chunk(_doc(_para(" ".join(parts), "Policy")), count_tokens=count_words,
                   max_tokens=20, overlap_tokens=6)  # fmt: skip
    assert len(chunks) > 1
    for previous, current in itertools.pairwise(chunks):
        # The next chunk starts with the previous chunk's last sentence (6 words <= 6).
        assert current.text.startswith(sentences(previous.text)[-1])
    for c in chunks:
        assert c.token_count <= 20
        assert c.heading_path == ("Policy",)
        assert all(s in parts for s in sentences(c.text))  # never cut mid-sentence
    covered = {s for c in chunks for s in sentences(c.text)}
    assert covered == set(parts)


def test_overlap_zero_means_no_repeated_text() -> None:
    parts = _numbered(10)
    chunks = chunk(_doc(_para(" ".join(parts))), count_tokens=count_words, max_tokens=20,
                   overlap_tokens=0)  # fmt: skip
    assert [s for c in chunks for s in sentences(c.text)] == parts


def test_overlap_never_exceeds_its_budget() -> None:
    parts = _numbered(12, words=10)  # each sentence is bigger than the overlap budget
    chunks = chunk(_doc(_para(" ".join(parts))), count_tokens=count_words, max_tokens=30,
                   overlap_tokens=8)  # fmt: skip
    assert [s for c in chunks for s in sentences(c.text)] == parts


def test_only_an_overlong_sentence_is_cut_mid_sentence() -> None:
    words = [f"W{i}" for i in range(95)]
    text = f"Short start. {' '.join(words)}. Short end."
    chunks = chunk(_doc(_para(text)), count_tokens=count_words, max_tokens=40, overlap_tokens=4)
    assert [c.text for c in chunks] == [
        "Short start.",
        " ".join(words[:40]),
        " ".join(words[40:80]),
        " ".join(words[80:]) + ". Short end.",
    ]


def test_a_word_longer_than_the_budget_is_cut_by_characters(count_tokens: TokenCounter) -> None:
    blob = "".join(
        random.Random(7).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(3000)
    )
    chunks = chunk(_doc(_para(f"Key: {blob} end.")), count_tokens=count_tokens, max_tokens=64,
                   overlap_tokens=8)  # fmt: skip
    _check_budget(chunks, count_tokens, 64)
    assert "".join(c.text for c in chunks).replace(" ", "").startswith("Key:" + blob[:100])


def test_faq_rows_are_exactly_one_chunk_each_even_when_long() -> None:
    long_answer = " ".join(_numbered(30))
    doc = _doc(
        Block("Q: Short?\nA: Yes.", BlockKind.FAQ, ("Short?",)),
        Block("Q: Short?\nA: Duplicate question, still its own chunk.", BlockKind.FAQ, ("Short?",)),
        Block(f"Q: Long?\nA: {long_answer}", BlockKind.FAQ, ("Long?",)),
    )
    chunks = chunk(doc, count_tokens=count_words, max_tokens=20, overlap_tokens=5)
    assert [(c.heading_path, c.text) for c in chunks] == [
        (b.heading_path, b.text) for b in doc.blocks
    ]
    assert chunks[2].token_count > 20


def test_lists_split_between_items_and_tables_repeat_their_header() -> None:
    items = "\n".join(f"- item {i} lorem ipsum" for i in range(12))
    rows = "\n".join(["Plan | Price | Days"] + [f"P{i} | {i}0 | {i}" for i in range(15)])
    doc = _doc(Block(items, BlockKind.LIST, ("L",)), Block(rows, BlockKind.TABLE, ("T",)))
    chunks = chunk(doc, count_tokens=count_words, max_tokens=16, overlap_tokens=0)
    list_chunks = [c for c in chunks if c.heading_path == ("L",)]
    table_chunks = [c for c in chunks if c.heading_path == ("T",)]
    assert len(list_chunks) > 1 and len(table_chunks) > 1
    assert all(line.startswith("- item ") for c in list_chunks for line in c.text.split("\n"))
    assert all(c.text.startswith("Plan | Price | Days\n") for c in table_chunks)
    assert all(c.token_count <= 16 for c in chunks)


def test_pdf_pages_are_kept_and_page_changes_start_new_chunks(count_tokens: TokenCounter) -> None:
    pages = [[f"Page {n} talks about topic {n}.", "It has a second sentence."] for n in (1, 2, 3)]
    doc = parse(pdf_with_pages(pages), "manual.pdf")
    chunks = chunk(doc, count_tokens=count_tokens)
    assert [c.page for c in chunks] == [1, 2, 3]
    assert chunks[1].text.startswith("Page 2 talks")


def test_real_tokenizer_budget_on_a_mixed_document(count_tokens: TokenCounter) -> None:
    rng = random.Random(3)
    words = ["refund", "shipping", "parcel", "invoice", "warranty", "order", "delivery"]

    def sentence() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(3, 40))).capitalize() + "."

    markdown = ["# Handbook"]
    for section in range(6):
        markdown.append(f"## Section {section}")
        for _ in range(rng.randint(1, 5)):
            markdown.append(" ".join(sentence() for _ in range(rng.randint(1, 25))))
        markdown.append("\n".join(f"- {sentence()}" for _ in range(rng.randint(0, 12))))
    doc = parse("\n\n".join(markdown).encode(), "handbook.md")
    for max_tokens, overlap in ((256, 32), (64, 16), (32, 0)):
        chunks = chunk(doc, count_tokens=count_tokens, max_tokens=max_tokens,
                       overlap_tokens=overlap)  # fmt: skip
        _check_budget(chunks, count_tokens, max_tokens)
        assert {c.heading_path for c in chunks} == {b.heading_path for b in doc.blocks}


def test_invalid_budgets_are_rejected() -> None:
    doc = _doc(_para("x"))
    with pytest.raises(ValueError):
        chunk(doc, count_tokens=count_words, max_tokens=4)
    with pytest.raises(ValueError):
        chunk(doc, count_tokens=count_words, max_tokens=64, overlap_tokens=40)
    assert chunk(_doc(), count_tokens=count_words) == []


# --------------------------------------------------------------------------- token counter


def test_embedding_token_counter_is_cached_and_counts_without_special_tokens() -> None:
    counter = embedding_token_counter()
    assert embedding_token_counter() is counter
    assert counter("hello") == 1  # no [CLS]/[SEP]
    assert counter("") == 0
    # The shipped tokenizer.json truncates at 128 tokens; counting must not.
    assert counter("word " * 500) == 500
    assert (embedding_model_dir() / "config.json").is_file()


def test_embedding_token_counter_can_be_reset() -> None:
    first = embedding_token_counter()
    reset_embedding_token_counter()
    second = embedding_token_counter()
    assert second is not first
    assert second("refund policy") == first("refund policy")
