"""Beat's nightly knowledge-gaps run (issue 16 item 3): the entry, the setting, no second run
while one is pending."""

from __future__ import annotations

from typing import Any

import pytest
from celery.schedules import crontab

from support import jobs
from support.models import GapRun
from support.reports import articles

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The runs handed to the queue (not computed: test_gaps.py computes them)."""
    ids: list[int] = []
    monkeypatch.setattr(jobs, "gaps_run_enqueue", lambda *, run_id: ids.append(run_id))
    return ids


def test_beat_schedules_the_nightly_entry() -> None:
    from django.conf import settings as live

    from chatbot.celery import app
    from support import tasks

    entry = live.CELERY_BEAT_SCHEDULE["support.gaps_nightly"]
    assert entry["task"] == jobs.GAPS_NIGHTLY == tasks.gaps_nightly_task.name
    assert isinstance(entry["schedule"], crontab)
    assert entry["schedule"].hour == {live.SUPPORT_GAPS_NIGHTLY_HOUR}
    assert entry["schedule"].minute == {0}
    assert jobs.GAPS_NIGHTLY in app.tasks


def test_queues_the_default_period(settings: Any, queued: list[int]) -> None:
    settings.SUPPORT_GAPS_NIGHTLY = True
    settings.SUPPORT_GAPS_PERIOD_DAYS = 14
    run = articles.gaps_run_scheduled()
    assert run is not None and queued == [run.pk]
    assert run.state == GapRun.State.QUEUED and run.requested_by is None
    assert (run.end - run.start).days == 14


def test_off_queues_nothing(settings: Any, queued: list[int]) -> None:
    settings.SUPPORT_GAPS_NIGHTLY = False
    assert articles.gaps_run_scheduled() is None
    assert queued == [] and not GapRun.objects.exists()


@pytest.mark.parametrize("state", [GapRun.State.QUEUED, GapRun.State.RUNNING])
def test_no_second_run_while_one_is_pending(settings: Any, queued: list[int], state: str) -> None:
    settings.SUPPORT_GAPS_NIGHTLY = True
    first = articles.gaps_run_scheduled()
    assert first is not None
    GapRun.objects.filter(pk=first.pk).update(state=state)
    assert articles.gaps_run_scheduled() is None
    assert queued == [first.pk] and GapRun.objects.count() == 1
    # Once it is done (or failed), the next night queues again.
    GapRun.objects.filter(pk=first.pk).update(state=GapRun.State.DONE)
    second = articles.gaps_run_scheduled()
    assert second is not None and queued == [first.pk, second.pk]


def test_the_task_computes_a_run(settings: Any, django_capture_on_commit_callbacks: Any) -> None:
    from support import tasks

    settings.SUPPORT_GAPS_NIGHTLY = True
    # No gap questions in the period: the run is computed (eagerly) and has no topics.
    with django_capture_on_commit_callbacks(execute=True):
        run_id = tasks.gaps_nightly_task.delay().get()
    run = GapRun.objects.get(pk=run_id)
    assert run.state == GapRun.State.DONE, run.error
    assert (run.questions, run.topics) == (0, [])
