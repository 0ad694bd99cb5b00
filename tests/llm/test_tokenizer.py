"""Tokenizer built from the GGUF vocabulary, and UTF-8-safe streaming detokenization."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.llm import GgufTokenizer

pytestmark = pytest.mark.slow

ROUND_TRIP_TEXTS = [
    "Hello world!",
    "  leading and trailing spaces  ",
    "Line one\nline two\r\n\ttabbed",
    "Prices: 12345 EUR, 3.14%, #42",
    "Café, naïve, façade, Ærøskøbing, Straße",
    "日本語のテキスト、中文文本、한국어",
    "Emoji: 👍🏽 🚀 👨‍👩‍👧 ❤️",
    "Mixed <b>html</b> & code: def f(x): return x**2",
    "",
]


@pytest.fixture(scope="module")
def tok(model_path: Path) -> GgufTokenizer:
    return GgufTokenizer.from_file(model_path)


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_round_trip(tok: GgufTokenizer, text: str) -> None:
    ids = tok.encode(text)
    assert tok.decode(ids) == text


def test_special_tokens_are_parsed_unless_disabled(tok: GgufTokenizer) -> None:
    text = "<|im_start|>user\nHi<|im_end|>\n"
    ids = tok.encode(text)
    assert ids[0] == 1 and 2 in ids
    assert tok.decode(ids, skip_special=False) == text
    assert tok.decode(ids) == "user\nHi\n"  # control tokens are not text

    plain = tok.encode(text, parse_special=False)
    assert 1 not in plain and 2 not in plain
    assert tok.decode(plain) == text


def test_smollm_pre_tokenizer_splits_digits(tok: GgufTokenizer) -> None:
    assert len(tok.encode("12345")) == 5


def test_metadata(tok: GgufTokenizer) -> None:
    info = tok.info
    assert (info.bos_token_id, info.eos_token_id) == (1, 2)
    assert (info.bos_token, info.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert info.end_of_generation_ids == frozenset({0, 2})  # <|endoftext|>, <|im_end|>
    assert info.add_bos_token is False
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    assert tok.vocab_size == 49152


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_streaming_detokenizer_never_splits_a_character(tok: GgufTokenizer, text: str) -> None:
    detok = tok.detokenizer()
    pieces = [detok.push(token_id) for token_id in tok.encode(text)]
    pieces.append(detok.flush())
    assert "".join(pieces) == text
    for piece in pieces:
        assert "\ufffd" not in piece
        piece.encode("utf-8")  # no lone surrogates either


def test_streaming_detokenizer_holds_back_partial_characters(tok: GgufTokenizer) -> None:
    ids = tok.encode("👍🏽")
    detok = tok.detokenizer()
    pieces = [detok.push(token_id) for token_id in ids]
    assert len(ids) > 2  # byte-level BPE spreads these over several tokens
    assert "" in pieces  # ... so some tokens complete no character
    assert "".join(pieces) == "👍🏽"


def test_flush_reports_an_unfinished_character(tok: GgufTokenizer) -> None:
    ids = tok.encode("🚀")
    detok = tok.detokenizer()
    partial = "".join(detok.push(token_id) for token_id in ids[:-1])
    assert partial == ""
    assert detok.flush() == "\ufffd"
