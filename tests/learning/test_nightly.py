"""The nightly specialisation (issue 14 item 9): beat's entry, the decision to start a run (a fake
starter: nothing trains here), the lock, and the training worker's lowered priority."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import Any

import pytest
from celery.schedules import crontab
from django.utils import timezone

from support import jobs
from support.learning import nightly
from support.learning import specialise as spec
from support.learning.specialise import SpecialiseUnavailable
from support.models import Chunk, KnowledgeDocument
from support.models_learning import Example, ExampleGrounding, SpecialiseRun

pytestmark = pytest.mark.django_db

Status = SpecialiseRun.Status


@pytest.fixture
def chunk() -> Chunk:
    doc = KnowledgeDocument.objects.create(
        title="Help", file="help.md", original_filename="help.md", checksum="0" * 64
    )
    return Chunk.objects.create(document=doc, order=0, text="Parcels arrive within 3 days.")


_seq = iter(range(10_000))


def _example(chunk: Chunk | None, *, approved_at: Any = None, **values: Any) -> Example:
    n = next(_seq)
    state = values.pop("state", Example.State.APPROVED)
    example = Example.objects.create(
        question=f"question {n}",
        answer=f"answer {n}",
        source=Example.Source.IMPORT,
        external_id=f"x{n}",
        split_key=f"k{n}",
        state=state,
        reviewed_at=(approved_at or timezone.now()) if state != Example.State.PENDING else None,
        grounding_method=Example.GroundingMethod.NONE
        if values.get("knowledge_gap")
        else Example.GroundingMethod.INFERRED,
        **values,
    )
    if chunk is not None and not example.knowledge_gap:
        ExampleGrounding.objects.create(
            example=example,
            document=chunk.document,
            chunk=chunk,
            chunk_key=f"{n:064d}",
            chunk_order=0,
            text=chunk.text,
            method=Example.GroundingMethod.INFERRED,
        )
    return example


class FakeStart:
    """specialise_start without the queue: takes the real lock, records the call (its kind);
    `unavailable` kinds are refused as a pinned chat model is."""

    def __init__(self, unavailable: tuple[str, ...] = ()) -> None:
        self.calls = 0
        self.kinds: list[str] = []
        self.unavailable = unavailable

    def __call__(self, **kwargs: Any) -> SpecialiseRun:
        self.calls += 1
        self.kinds.append(kwargs["kind"])
        if kwargs["kind"] in self.unavailable:
            raise SpecialiseUnavailable("SUPPORT_MODEL_PATH pins the chat model")
        return spec.run_create(**kwargs)


def _decided_run(status: str, *, at: Any, kind: str = "retrieval") -> SpecialiseRun:
    run = SpecialiseRun.objects.create(status=status, finished_at=at, kind=kind)
    SpecialiseRun.objects.filter(pk=run.pk).update(created_at=at)
    run.refresh_from_db()
    return run


def test_beat_schedules_the_nightly_entry() -> None:
    from django.conf import settings as live

    from chatbot.celery import app
    from support import tasks

    entry = live.CELERY_BEAT_SCHEDULE["support.specialise_nightly"]
    assert entry["task"] == jobs.SPECIALISE_NIGHTLY == tasks.specialise_nightly_task.name
    schedule = entry["schedule"]
    assert isinstance(schedule, crontab)
    assert schedule.hour == {live.SUPPORT_SPECIALISE_NIGHTLY_HOUR}
    assert schedule.minute == {0}
    assert jobs.SPECIALISE_NIGHTLY in app.tasks
    # Not on the training queue: the decision is a few queries, the run it starts goes there.
    assert jobs.SPECIALISE_NIGHTLY not in live.CELERY_TASK_ROUTES


def test_off_starts_nothing(settings: Any, chunk: Chunk) -> None:
    settings.SUPPORT_SPECIALISE_NIGHTLY = False
    for _ in range(5):
        _example(chunk)
    start = FakeStart()
    outcome = nightly.specialise_nightly(start=start)
    assert not outcome.started and "off" in outcome.reason
    assert start.calls == 0 and not SpecialiseRun.objects.exists()


def test_starts_once_enough_examples_to_train_on_are_approved(settings: Any, chunk: Chunk) -> None:
    settings.SUPPORT_SPECIALISE_NIGHTLY = True
    settings.SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW = 3
    _example(chunk)
    _example(chunk)
    # None of these is something a run would train on.
    _example(chunk, state=Example.State.PENDING)
    _example(chunk, state=Example.State.REJECTED)
    _example(chunk, held_back=True)
    _example(chunk, knowledge_gap=True)
    _example(None)  # its grounding chunk is gone
    start = FakeStart()
    outcome = nightly.specialise_nightly(start=start)
    assert (outcome.started, outcome.new_examples, outcome.since) == (False, 2, None)
    assert "fewer than SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW (3)" in outcome.reason
    assert start.calls == 0

    _example(chunk)
    outcome = nightly.specialise_nightly(start=start)
    assert outcome.started and outcome.new_examples == 3
    run = SpecialiseRun.objects.get()
    assert outcome.run_id == run.pk and run.holds_lock and run.status == Status.QUEUED
    assert start.calls == 1


def test_new_means_approved_since_the_last_promoted_or_refused_run(
    settings: Any, chunk: Chunk
) -> None:
    settings.SUPPORT_SPECIALISE_NIGHTLY = True
    settings.SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW = 2
    now = timezone.now()
    for _ in range(4):
        _example(chunk, approved_at=now - timedelta(days=3))
    last = _decided_run(Status.REFUSED, at=now - timedelta(days=2))
    _example(chunk, approved_at=now - timedelta(days=1))
    # Failed, cancelled and rolled-back runs learned nothing: they do not reset the count.
    for status in (Status.FAILED, Status.CANCELLED, Status.ROLLED_BACK):
        _decided_run(status, at=now - timedelta(hours=12))
    start = FakeStart()
    outcome = nightly.specialise_nightly(start=start)
    assert (outcome.started, outcome.new_examples, outcome.since) == (False, 1, last.created_at)

    _example(chunk, approved_at=now - timedelta(hours=1))
    assert nightly.specialise_nightly(start=start).started

    # Once that run is decided, the examples before it are no longer new.
    SpecialiseRun.objects.filter(holds_lock=True).update(holds_lock=False, status=Status.PROMOTED)
    outcome = nightly.specialise_nightly(start=start)
    assert (outcome.started, outcome.new_examples) == (False, 0)
    assert start.calls == 1


def test_one_run_a_night_the_first_kind_with_enough_new_examples(
    settings: Any, chunk: Chunk
) -> None:
    settings.SUPPORT_SPECIALISE_NIGHTLY = True
    settings.SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW = 2
    settings.SUPPORT_SPECIALISE_NIGHTLY_KINDS = ["model", "retrieval"]
    now = timezone.now()
    _decided_run(Status.REFUSED, at=now - timedelta(days=5), kind="retrieval")
    _decided_run(Status.PROMOTED, at=now - timedelta(days=1), kind="model")
    for _ in range(2):
        _example(chunk, approved_at=now - timedelta(days=3))
    # The chat model's last run saw those two; the retriever's did not.
    start = FakeStart()
    outcome = nightly.specialise_nightly(start=start)
    assert (outcome.started, outcome.kind, outcome.new_examples) == (True, "retrieval", 2)
    assert start.kinds == ["retrieval"]
    assert SpecialiseRun.objects.get(holds_lock=True).kind == "retrieval"
    SpecialiseRun.objects.filter(holds_lock=True).update(holds_lock=False, status=Status.REFUSED)
    # Two more: both kinds have enough, the first listed goes first.
    for _ in range(2):
        _example(chunk)
    outcome = nightly.specialise_nightly(start=start)
    assert (outcome.started, outcome.kind) == (True, "model")
    SpecialiseRun.objects.filter(holds_lock=True).delete()
    # A kind that cannot run (the chat model pinned) gives its turn to the next.
    start = FakeStart(unavailable=("model",))
    outcome = nightly.specialise_nightly(start=start)
    assert (outcome.started, outcome.kind) == (True, "retrieval")
    assert start.kinds == ["model", "retrieval"]


def test_an_unknown_kind_is_a_configuration_error(settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from support.conf import get_support_settings

    settings.SUPPORT_SPECIALISE_NIGHTLY_KINDS = ["retrieval", "embeddings"]
    with pytest.raises(ImproperlyConfigured, match="unknown kind"):
        get_support_settings()


def test_skips_cleanly_while_a_run_holds_the_lock(settings: Any, chunk: Chunk) -> None:
    settings.SUPPORT_SPECIALISE_NIGHTLY = True
    settings.SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW = 1
    _example(chunk)
    running = spec.run_create()  # started by hand, still going
    # The real starter: the lock refuses it before anything is queued.
    outcome = nightly.specialise_nightly()
    assert not outcome.started
    assert (outcome.reason, outcome.run_id) == ("another run holds the lock", running.pk)
    assert list(SpecialiseRun.objects.values_list("pk", flat=True)) == [running.pk]


def test_the_task_queues_a_training_run(
    settings: Any, chunk: Chunk, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import tasks

    settings.SUPPORT_SPECIALISE_NIGHTLY = True
    settings.SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW = 1
    _example(chunk)
    queued: list[int] = []
    # The training itself is tested in test_specialise.py; here only that the run is queued.
    monkeypatch.setattr(jobs, "specialise_enqueue", lambda *, run_id: queued.append(run_id))
    result = tasks.specialise_nightly_task.delay().get()
    run = SpecialiseRun.objects.get()
    assert result["started"] and result["run_id"] == run.pk and queued == [run.pk]
    assert result["new_examples"] == 1 and result["since"] is None
    # The next night, with that run still going: skipped, nothing more queued.
    result = tasks.specialise_nightly_task.delay().get()
    assert not result["started"] and queued == [run.pk]


def test_the_training_worker_lowers_all_its_threads() -> None:
    # In a child process: a niceness cannot be raised back, the test process must stay as is.
    code = textwrap.dedent(
        """
        import os, threading
        from support.learning.priority import process_niceness_raise

        started, stop = threading.Event(), threading.Event()
        tid = []
        def other():
            tid.append(threading.get_native_id()); started.set(); stop.wait()
        t = threading.Thread(target=other); t.start(); started.wait()
        before = os.getpriority(os.PRIO_PROCESS, tid[0])
        target = min(before + 7, 19)
        own = process_niceness_raise(target)
        after = os.getpriority(os.PRIO_PROCESS, tid[0])
        again = process_niceness_raise(before)  # never lowered back
        stop.set(); t.join()
        print(before, own, after, again)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    before, own, after, again = map(int, out)
    assert before < 19, "the test process is niced to the limit already"
    assert own == after == again == min(before + 7, 19)
