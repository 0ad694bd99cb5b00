"""Uploads are untrusted: pathological inputs must stay linear (a quadratic regex or a
recursive walk here would hang or crash an ingest worker)."""

from __future__ import annotations

import time

import pytest

from support.ingest import IngestError, TokenCounter, chunk, parse

# Each of these took minutes (or hit RecursionError) with a naive implementation.
HOSTILE = {
    "unclosed links": (b"[a](" * 8000, "x.md"),
    "unclosed brackets": (b"[" * 30000, "x.md"),
    "unclosed comments": (b"<!--" * 8000, "x.md"),
    "unclosed emphasis": (b"*a" * 10000, "x.md"),
    "heading with whitespace runs": (b"# a" + b" \t" * 20000 + b"x", "x.md"),
    "front matter title with whitespace runs": (
        b"---\ntitle: a" + b" \t" * 20000 + b"x\n---\n\nBody.",
        "x.md",
    ),
    "dot leaders without spaces": (b"Contents" + b"." * 50000 + b"x", "x.txt"),
    "initials that never end a sentence": (b"J. " * 20000, "x.txt"),
    "one giant word": (b"x" * 200000, "x.txt"),
    "quote soup csv (csv.Sniffer is quadratic)": (b',"' * 30000, "faq.csv"),
    "nested tables": (b"<table><tr><td>" * 1500 + b"x", "x.html"),
    "nested lists": (b"<ul><li>x" * 1500, "x.html"),
    "nested hidden elements": (b"<div hidden>" * 1500 + b"<p>x</p><p>y</p>", "x.html"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_input_is_handled_in_linear_time(case: str, count_tokens: TokenCounter) -> None:
    data, name = HOSTILE[case]
    started = time.perf_counter()
    try:
        chunks = chunk(parse(data, name), count_tokens=count_tokens)
    except IngestError:
        chunks = []  # a refusal is a fine outcome; a hang or a crash is not
    assert all(c.token_count <= 256 for c in chunks)
    assert time.perf_counter() - started < 10
