"""Grounding rows name their chunk by content: they follow it through re-ingestion (new primary
keys, new index versions), follow an edited chunk at the same place, and let go of text that is
gone."""

from __future__ import annotations

import pytest

from support import knowledge
from support.learning.examples import Exchange, _store
from support.learning.grounding import (
    Candidate,
    chunk_key,
    grounding_choose,
    grounding_select,
    groundings_relink,
)
from support.models import Chunk, Example, ExampleGrounding, KnowledgeDocument

pytestmark = pytest.mark.django_db

RESET = "Hold the reset button on the back for 10 seconds until the light blinks orange."


def _example(kb: dict[str, KnowledgeDocument]) -> ExampleGrounding:
    grounding = grounding_choose(answer=RESET)
    example = _store(
        source=Example.Source.IMPORT,
        exchange=Exchange("How do I reset my router?", (), RESET),
        grounding=grounding,
        approve=True,
        external_id="g-1",
    )
    row = example.grounding.get()
    assert row.document == kb["router.md"]
    return row


def _rewrite(doc: KnowledgeDocument, text: bytes) -> None:
    with doc.file.open("wb") as fh:
        fh.write(text)


def test_a_row_follows_its_chunk_through_re_ingestion(kb: dict[str, KnowledgeDocument]) -> None:
    row = _example(kb)
    old_pk = row.chunk_id
    knowledge.document_ingest(document_id=kb["router.md"].pk)  # same text, new rows
    row.refresh_from_db()
    assert row.chunk_id is not None and row.chunk_id != old_pk
    assert not Chunk.objects.filter(pk=old_pk).exists()
    assert chunk_key(row.chunk.text) == row.chunk_key


def test_an_edited_chunk_at_the_same_place_is_followed_and_lost_text_let_go(
    kb: dict[str, KnowledgeDocument],
) -> None:
    from tests.chat.conftest import ROUTER_MD

    row = _example(kb)
    doc = kb["router.md"]
    _rewrite(doc, ROUTER_MD.replace(b"blinks orange", b"blinks orange twice"))
    knowledge.document_ingest(document_id=doc.pk)
    row.refresh_from_db()
    assert row.chunk is not None and "blinks orange twice" in row.chunk.text
    assert row.text == row.chunk.text and row.chunk_key == chunk_key(row.chunk.text)

    _rewrite(doc, b"# Router guide\n\nWe no longer sell routers; see the shop for modems.\n")
    knowledge.document_ingest(document_id=doc.pk)
    row.refresh_from_db()
    assert row.chunk is None  # the text is gone; the row keeps what it said
    assert "reset button" in row.text
    example = row.example
    from support.learning.examples import examples_for_training

    assert example not in examples_for_training()


def test_relink_is_a_no_op_without_rows_or_changes(kb: dict[str, KnowledgeDocument]) -> None:
    assert groundings_relink(document_id=kb["billing.md"].pk) == 0
    _example(kb)
    assert groundings_relink(document_id=kb["router.md"].pk) == 0


def _candidate(chunk_id: int, dense: float, words: float) -> Candidate:
    return Candidate(chunk_id, 1, chunk_id, "t", dense, words, chunk_id)


def test_selection_takes_the_best_and_close_runners_up_above_the_threshold() -> None:
    best = _candidate(1, 0.8, 1.0)  # 0.9
    close = _candidate(2, 0.8, 0.95)  # 0.875
    far = _candidate(3, 0.6, 0.9)  # 0.75
    assert grounding_select([far, close, best]) == (best, close)
    assert grounding_select([_candidate(4, 0.5, 0.5)]) == ()  # 0.5 < threshold
    assert grounding_select([]) == ()
