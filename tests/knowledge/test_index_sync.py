"""A worker on a machine without the shared data directory catches up from the database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.test import override_settings

from support import backends, knowledge, retrieval
from support.search import index as search_index

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = b"# Permits\n\nRenew a fishing permit online from the Permits page of your account.\n"


def test_index_sync_builds_a_missing_or_stale_index_and_is_a_no_op_otherwise(
    kb_env: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    doc = knowledge.document_upload(filename="permits.md", data=PAGE, queue=False)
    knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
    built = knowledge.index_sync()  # no index yet on this machine
    assert built is not None and built.chunks >= 1
    assert knowledge.index_sync() is None  # up to date: nothing to do

    # Another machine: its own empty data directory, the same database.
    other = tmp_path_factory.mktemp("other-machine")
    with override_settings(SUPPORT_DATA_DIR=other):
        backends.reset_backends()
        assert search_index.current_version(other / "index") is None
        assert knowledge.index_sync() is not None
        assert retrieval.passages_search(query="renew a fishing permit").passages

    # A document added elsewhere makes this machine's index stale.
    boats = b"# Boats\n\nRegister a boat at the harbour office.\n"
    doc2 = knowledge.document_upload(filename="boats.md", data=boats, queue=False)
    knowledge.document_ingest(document_id=doc2.pk, rebuild_index=False)
    again = knowledge.index_sync()
    assert again is not None and again.version > built.version


@override_settings(SUPPORT_INDEX_SYNC_INTERVAL_S=60)
def test_searches_trigger_the_check_in_the_background_at_most_once_per_interval(
    kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    monkeypatch.setattr(knowledge, "index_sync", lambda: calls.append(time.monotonic()))
    monkeypatch.setattr(retrieval, "_sync_checked", 0.0)
    for _ in range(5):
        retrieval.passages_search(query="anything")
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(calls) == 1  # five searches, one check
    monkeypatch.setattr(retrieval, "_sync_checked", time.monotonic() - 61)  # a minute later
    retrieval.passages_search(query="anything")
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(calls) == 2
