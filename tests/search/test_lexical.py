from __future__ import annotations

from pathlib import Path

import pytest

from support.search.lexical import Bm25Index, Bm25Params, tokenize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ERR-4032", ["err-4032", "err", "4032"]),
        ("SKU_77-b", ["sku_77-b", "sku", "77", "b"]),
        ("#123456", ["#123456", "123456"]),
        ("v2.3.1", ["v2.3.1", "v2", "3", "1"]),
    ],
)
def test_codes_are_one_token_plus_their_parts(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_tokenizer_lowercases_stops_and_strips_sentence_punctuation() -> None:
    tokens = tokenize("The app crashed with ERR-4032, after updating to v2.3.1. Refunds?")
    assert tokens == [
        "app",
        "crashed",
        "err-4032",
        "err",
        "4032",
        "after",
        "updating",
        "v2.3.1",
        "v2",
        "3",
        "1",
        "refund",
    ]
    assert "not" in tokenize("it does not work")  # negations carry meaning: kept


def test_exact_code_beats_near_misses(corpus: dict[int, str]) -> None:
    index = Bm25Index.build(list(corpus), list(corpus.values()))

    hits = index.search("I got ERR-4032 at checkout", 3)

    assert hits[0].chunk_id == 102
    assert hits[0].score > hits[1].score
    # The near miss (ERR-4033, which even repeats "ERR") ranks below the exact code.
    ranks = {h.chunk_id: h.rank for h in hits}
    assert ranks.get(103, 99) > ranks[102]


@pytest.mark.parametrize(
    ("query", "expected"),
    [("where is order #123456", 104), ("v2.3.1 changes", 105), ("sku_77-b", 107)],
)
def test_codes_match_exactly(corpus: dict[int, str], query: str, expected: int) -> None:
    index = Bm25Index.build(list(corpus), list(corpus.values()))
    assert index.search(query, 1)[0].chunk_id == expected


def test_filters_and_no_match(corpus: dict[int, str]) -> None:
    index = Bm25Index.build(list(corpus), list(corpus.values()))

    assert index.search("ERR-4032", 5, deny_ids=[102])[0].chunk_id != 102
    assert {h.chunk_id for h in index.search("error card", 5, allow_ids=[103, 108])} == {103}
    assert index.search("zebra xylophone", 5) == []


def test_save_load_round_trip(tmp_path: Path, corpus: dict[int, str]) -> None:
    index = Bm25Index.build(list(corpus), list(corpus.values()), params=Bm25Params(k1=1.5, b=0.6))
    path = tmp_path / "lexical.npz"
    index.save(path)

    loaded = Bm25Index.load(path)

    assert loaded.params == Bm25Params(k1=1.5, b=0.6)
    for query in ("refund policy", "ERR-4033", "order #123456 history"):
        assert loaded.search(query, 4) == index.search(query, 4)
    other = Bm25Index.load(path, params=Bm25Params(k1=0.5, b=0.0))
    assert other.search("refund", 1)[0].chunk_id == 106


def test_max_score_penalises_terms_missing_from_the_index(corpus: dict[int, str]) -> None:
    index = Bm25Index.build(list(corpus), list(corpus.values()))
    top = index.search("refund policy", 1)[0].score

    assert top / index.max_score("refund policy") > 0.5
    assert top / index.max_score("refund policy for quantum teleporters") < 0.5


def test_a_query_word_the_index_lacks_matches_the_form_the_knowledge_base_uses() -> None:
    texts = {
        1: "Wi-Fi is slower through walls and floors.",
        2: "If a payment fails we try again after 5 days. Missed payments add a late fee.",
        3: "Your router has a power button on the back.",
    }
    index = Bm25Index.build(list(texts), list(texts.values()))
    # "wifi" is written "Wi-Fi" in the knowledge base, "miss" only as "missed".
    assert [h.chunk_id for h in index.search("slow wifi", 3)] == [1]
    assert [h.chunk_id for h in index.search("what if I miss a payment", 3)] == [2]
    # The substitute counts as the term in the coverage reference too.
    assert index.max_score("wifi") == pytest.approx(index.idf("wi-fi"))
    assert index.max_score("wifi") < index.max_score("teleporter")  # not an unseen term
    # A word the index holds as written is never replaced, and unknown words still miss.
    assert [h.chunk_id for h in index.search("router", 3)] == [3]
    assert index.search("teleporter", 3) == []


def test_a_substitute_survives_save_and_load(tmp_path: Path) -> None:
    index = Bm25Index.build([1, 2], ["Set up your e-mail account.", "Call us."])
    index.save(tmp_path / "lex.npz")
    loaded = Bm25Index.load(tmp_path / "lex.npz")
    assert [h.chunk_id for h in loaded.search("email", 2)] == [1]
