"""A worker on a machine without the shared data directory catches up from the database."""

from __future__ import annotations

import itertools
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


def test_a_search_never_starts_an_index_check(
    kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    monkeypatch.setattr(knowledge, "index_sync", lambda: calls.append(time.monotonic()))
    with override_settings(SUPPORT_INDEX_SYNC_INTERVAL_S=60):
        for _ in range(5):
            retrieval.passages_search(query="anything")
    time.sleep(0.2)
    assert calls == []  # a read never starts a write


@override_settings(SUPPORT_INDEX_SYNC_INTERVAL_S=0.05)
def test_a_serving_process_checks_its_index_in_the_background_every_interval(
    kb_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[float] = []
    monkeypatch.setattr(knowledge, "index_sync", lambda: calls.append(time.monotonic()))
    knowledge.index_sync_loop_stop()
    try:
        assert knowledge.index_sync_loop_start() is True
        assert knowledge.index_sync_loop_start() is False  # once per process
        deadline = time.monotonic() + 5
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        knowledge.index_sync_loop_stop()
    stopped = len(calls)
    time.sleep(0.2)
    assert len(calls) == stopped  # stopped for good
    assert len(calls) >= 3
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.04  # paced by the interval, not a busy loop


def test_the_background_check_is_off_when_the_interval_is_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    knowledge.index_sync_loop_stop()
    with override_settings(SUPPORT_INDEX_SYNC_INTERVAL_S=0):
        assert knowledge.index_sync_loop_start() is False
