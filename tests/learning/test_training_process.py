"""Specialisation runs in the embedded mode train in a child process
(support/learning/training_process.py, `manage.py specialise_run`)."""

from __future__ import annotations

import os
import sys
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from support import embedded
from support.learning import training_process
from support.learning.specialise import run_create
from support.models_learning import SpecialiseRun

Status = SpecialiseRun.Status


@pytest.fixture
def serving_here() -> Any:
    embedded._serving.set()
    yield
    embedded._serving.clear()


@pytest.mark.django_db
def test_specialise_run_executes_a_queued_run() -> None:
    run = run_create(kind=SpecialiseRun.Kind.RETRIEVAL)
    SpecialiseRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    out = StringIO()
    call_command("specialise_run", str(run.pk), stdout=out)
    assert out.getvalue().split()[-1] == "cancelled"
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and not run.holds_lock


@pytest.mark.django_db
def test_specialise_run_refuses_what_is_not_queued() -> None:
    run = SpecialiseRun.objects.create(status=Status.REFUSED, kind=SpecialiseRun.Kind.MODEL)
    with pytest.raises(CommandError, match="not queued"):
        call_command("specialise_run", str(run.pk))
    with pytest.raises(CommandError, match="no specialisation run"):
        call_command("specialise_run", "999999")


def test_the_child_s_last_line_is_the_outcome() -> None:
    said = [sys.executable, "-c", "print('epoch 1/1'); print('refused')"]
    assert training_process.run_in_child(run_id=1, argv=said) == "refused"
    for argv, why in (
        ([sys.executable, "-c", "import sys; print('promoted'); sys.exit(1)"], "exited with 1"),
        ([sys.executable, "-c", "print('Traceback ...')"], "exited with 0"),
    ):
        with pytest.raises(training_process.TrainingProcessFailed, match=why):
            training_process.run_in_child(run_id=1, argv=argv)


@pytest.mark.django_db
def test_a_training_task_in_the_serving_process_trains_in_a_child(
    serving_here: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.tasks import specialise_model_task, specialise_task

    children: list[int] = []
    monkeypatch.setattr(
        training_process, "run_in_child", lambda *, run_id: children.append(run_id) or "refused"
    )
    lowered: list[bool] = []
    monkeypatch.setattr(
        "support.learning.priority.training_priority_lower", lambda: lowered.append(True) or 10
    )
    assert specialise_task.run(run_id=7) == "refused"
    assert specialise_model_task.run(run_id=8) == "refused"
    assert children == [7, 8]
    assert not lowered  # the serving process keeps its priority: the child lowers its own


@pytest.mark.django_db(transaction=True)
def test_the_child_executes_the_run_against_the_same_database(serving_here: None) -> None:
    """The real child: `manage.py specialise_run` in a new process, on this test's database."""
    if connection.vendor != "postgresql":
        pytest.skip("the child process needs a database it can open (PostgreSQL: DATABASE_URL)")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}",
        "SUPPORT_SPECIALISE_NICENESS": "0",
    }
    run = run_create(kind=SpecialiseRun.Kind.RETRIEVAL)
    SpecialiseRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    assert training_process.run_in_child(run_id=run.pk, env=env) == "cancelled"
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and not run.holds_lock


@pytest.mark.django_db
def test_a_child_whose_server_has_ended_does_not_train() -> None:
    run = run_create(kind=SpecialiseRun.Kind.RETRIEVAL)
    with pytest.raises(CommandError, match="has ended"):
        call_command("specialise_run", str(run.pk), "--parent", str(os.getpid() + 10**6))
    run.refresh_from_db()
    assert run.status == Status.QUEUED  # untouched: its lock expires as a killed run's would
    assert training_process.child_argv(run.pk)[-2:] == ["--parent", str(os.getpid())]
