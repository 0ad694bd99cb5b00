"""Specialising the chat model (issue 15 items 1, 3, 4; docs/learning.md, "The gate for the chat
model, promotion and rollback"), with fake training and export (tests/learning/chat_fakes.py)
and a scripted chat-model backend (tests.fakes.ScriptFileChatModel) but the real answer
pipeline, retrieval and embedder: the gate, promotion and every process switching, rollback,
the lock shared with retriever runs, cancel, resume, a failed export check, the command, the
task and the admin. The real training and export: test_chat_specialise_real.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from support import backends
from support.answers.types import Turn
from support.conf import get_support_settings
from support.learning import chat_specialise as chat
from support.learning import specialise as spec
from support.learning.chat_specialise import AnswerResult, ChatGateEvaluation, GateCase
from support.llm import chat_models
from support.models_golden import GateReport, GoldenQuestion
from support.models_learning import SpecialiseRun
from tests.fakes import ScriptFileChatModel
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)
from tests.learning.chat_fakes import (
    TRAINED,
    FakeTools,
    help_desk_create,
)
from tests.learning.chat_fakes import good_answers as _good
from tests.learning.chat_fakes import shuffled_answers as _shuffled

pytestmark = pytest.mark.django_db


@pytest.fixture
def chat_env(tmp_path: Path, real_embedder: Any) -> Iterator[dict[str, Any]]:  # noqa: F811
    """Six help pages indexed with the real embedder, 8 approved training examples and 4 held
    back; the chat model is ScriptFileChatModel built from the served file (the shipped GGUF
    answers like FakeChatModel, a fake export with its script)."""
    with override_settings(
        SUPPORT_DATA_DIR=tmp_path,
        MEDIA_ROOT=tmp_path / "media",
        SUPPORT_GENERATOR_BACKEND="tests.fakes.ScriptFileChatModel",
        SUPPORT_RETRIEVAL_MIN_CONFIDENCE=0.02,
        # A scripted model's timings are the pipeline's own overhead: noise (the speed rule is
        # tested on its own below, and with real models in test_chat_specialise_real.py).
        SUPPORT_CHAT_GATE_SPEED_TOLERANCE=0.9,
    ):
        backends.reset_backends()
        backends.set_backend("embedder", real_embedder)
        examples = help_desk_create()
        yield {"examples": examples, "root": get_support_settings().chat_models_dir}
    backends.reset_backends()


def _use(monkeypatch: pytest.MonkeyPatch, fake: FakeTools) -> FakeTools:
    monkeypatch.setattr(chat, "tools", fake.tools)
    return fake


def _run(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("specialise", "--model", "--json", *args, stdout=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


def _served_file() -> str:
    model = backends.get_chat_model()
    assert isinstance(model, ScriptFileChatModel)
    return model.model_path


def test_a_better_model_is_promoted_and_served(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _use(monkeypatch, FakeTools(_good()))
    shipped = _served_file()
    data = _run()
    assert data["promoted"] is True, data["reason"]
    assert data["kind"] == "model" and data["model_version"] == 1
    assert data["trained_on"] == TRAINED and data["held_back"] == 4
    for key in ("before", "after", "seconds", "exports", "gate_report"):
        assert key in data
    held_before, held_after = data["before"]["held_back"], data["after"]["held_back"]
    assert held_after["answer_f1"] > held_before["answer_f1"]
    assert held_after["support"] >= 0.95
    # Both qtypes exported and checked; the faithful, faster one serves.
    assert fake.exported[:2] == ["Q8_0", "Q4_1"]
    assert {e["qtype"] for e in data["exports"]} == {"Q8_0", "Q4_1"}
    assert data["served_qtype"] in {"Q8_0", "Q4_1"}
    # Promoted: exported once more with the gate's report in the file's metadata.
    assert fake.exported[2:] == [data["served_qtype"]]
    root = chat_env["root"]
    served = chat_models.current(root)
    assert served is not None and served.version == 1
    assert sorted(p.name for p in served.path.iterdir()) == ["meta.json", "model.gguf"]
    written = json.loads(served.model_file.read_text())
    assert json.loads(written["metadata"]["gate_report"])["promoted"] is True
    assert written["metadata"]["base_sha256"] and written["qtype"] == data["served_qtype"]
    meta = chat_models.meta(served)
    assert meta["trained_on"] == TRAINED and meta["gate"]["promoted"] is True
    assert meta["example_ids"] == [e.pk for e in chat_env["examples"][:TRAINED]]
    # This process answers with it from its next answer on (no restart, no reset).
    assert _served_file() == str(served.model_file) != shipped
    run = SpecialiseRun.objects.get()
    assert run.kind == SpecialiseRun.Kind.MODEL and run.status == SpecialiseRun.Status.PROMOTED
    assert run.model_version == 1 and not run.holds_lock and run.progress == 100
    report = GateReport.objects.get(pk=data["gate_report"])
    assert report.kind == GateReport.Kind.LEARNING
    assert report.decision == GateReport.Decision.PROMOTED
    assert report.after["held_back"]["answer_f1"] == held_after["answer_f1"]
    assert not (root / "work").exists() or not any((root / "work").iterdir())


def test_shuffled_answers_are_refused_and_nothing_served_changes(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, FakeTools(_shuffled()))
    shipped = _served_file()
    data = _run()
    assert data["promoted"] is False
    assert "F1 did not improve" in data["reason"] or "support" in data["reason"], data["reason"]
    root = chat_env["root"]
    assert chat_models.current(root) is None and chat_models.versions(root) == []
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp")] == []
    assert _served_file() == shipped
    assert get_support_settings().resolved_model_path() == Path(shipped)
    run = SpecialiseRun.objects.get()
    assert run.status == SpecialiseRun.Status.REFUSED and run.model_version is None
    report = GateReport.objects.get(pk=data["gate_report"])
    assert report.decision == GateReport.Decision.REFUSED and report.regressions


def test_force_promotes_a_refused_model_and_logs_it(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _use(monkeypatch, FakeTools(_shuffled()))
    with caplog.at_level(logging.WARNING, logger="support.learning.chat_specialise"):
        data = _run("--force")
    assert data["promoted"] is True and data["forced"] is True
    assert data["reason"].startswith("forced (")
    assert "promoted by force" in caplog.text
    assert chat_models.current_version(chat_env["root"]) == 1
    report = GateReport.objects.get(pk=data["gate_report"])
    assert report.decision == GateReport.Decision.FORCED


def test_rollback_serves_the_previous_version_then_the_shipped_model(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, FakeTools(_good()))
    root = chat_env["root"]
    shipped = _served_file()
    with pytest.raises(CommandError, match="no earlier chat model"):
        call_command("specialise", "--rollback", "--model", stdout=StringIO())
    assert _run("--force")["model_version"] == 1
    assert _run("--force")["model_version"] == 2
    assert _served_file().endswith("model-v2/model.gguf")
    out = StringIO()
    call_command("specialise", "--rollback", "--model", "--json", stdout=out)
    assert json.loads(out.getvalue())["rolled_back_to"] == 1
    assert _served_file().endswith("model-v1/model.gguf")
    call_command("specialise", "--rollback", "--model", stdout=StringIO())
    assert _served_file() == shipped and chat_models.current(root) is None
    assert chat_models.versions(root) == [1, 2]  # kept for a later promotion by hand
    assert SpecialiseRun.objects.filter(status=SpecialiseRun.Status.ROLLED_BACK).count() == 2


def test_cancel_during_training_keeps_the_served_model_and_the_next_run_resumes(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = spec.run_create(kind=SpecialiseRun.Kind.MODEL)
    fake = _use(
        monkeypatch,
        FakeTools(
            _good(), steps=6, on_step=lambda step: step == 2 and spec.run_cancel(run_id=run.pk)
        ),
    )
    with pytest.raises(spec.SpecialiseCancelled):
        chat.model_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == SpecialiseRun.Status.CANCELLED and not run.holds_lock
    root = chat_env["root"]
    assert chat_models.current(root) is None and chat_models.versions(root) == []
    assert fake.trained == 2
    # The checkpoint stays: the next run on the same examples goes on from step 2.
    fake.on_step = None
    data = _run()
    assert fake.resumed_from == 2 and fake.trained == 6
    assert data["promoted"] is True


def test_one_run_at_a_time_with_retriever_runs_and_a_stale_lock_expires(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, FakeTools(_good()))
    first = spec.run_create()  # a retriever run
    with pytest.raises(CommandError, match="Another specialisation run"):
        _run()
    with pytest.raises(spec.SpecialiseBusy):
        chat.model_run_execute(run_id=first.pk)  # not a chat-model run
    SpecialiseRun.objects.filter(pk=first.pk).update(
        heartbeat_at=timezone.now() - timedelta(hours=2)
    )
    assert _run()["promoted"] is True
    first.refresh_from_db()
    assert first.status == SpecialiseRun.Status.FAILED and not first.holds_lock


def test_a_failed_export_check_fails_the_run(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _use(monkeypatch, FakeTools(_good(), check_ok=False))
    with pytest.raises(CommandError, match="export check failed"):
        _run("--force")  # --force never serves an export that failed its check
    run = SpecialiseRun.objects.get()
    assert run.status == SpecialiseRun.Status.FAILED and "export check" in run.message
    root = chat_env["root"]
    assert chat_models.current(root) is None and chat_models.versions(root) == []
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp")] == []


def test_too_few_examples_trains_nothing_and_a_pinned_model_cannot_run(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _use(monkeypatch, FakeTools(_good()))
    with override_settings(SUPPORT_CHAT_SPECIALISE_MIN_EXAMPLES=50):
        data = _run()
    assert data["promoted"] is False and "fewer than" in data["reason"]
    assert fake.trained == 0
    with (
        override_settings(SUPPORT_MODEL_PATH=str(get_support_settings().configured_model_path())),
        pytest.raises(CommandError, match="SUPPORT_MODEL_PATH pins"),
    ):
        _run()


def test_the_task_runs_on_the_training_queue(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery import current_app

    from support.tasks import specialise_model_task

    _use(monkeypatch, FakeTools(_good()))
    assert current_app.conf.task_routes["support.specialise_model"] == {"queue": "training"}
    assert specialise_model_task.soft_time_limit < specialise_model_task.time_limit
    visibility = current_app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > specialise_model_task.time_limit
    run = spec.run_create(kind=SpecialiseRun.Kind.MODEL)
    assert specialise_model_task.apply(kwargs={"run_id": run.pk}).get() == "promoted"


RUNS = "/admin/support/specialiserun/"


def test_the_admin_starts_watches_and_rolls_back_a_chat_model_run(
    chat_env: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.test import Client

    from tests.factories import agent_user, knowledge_admin_user

    _use(monkeypatch, FakeTools(_good()))
    client = Client()
    client.force_login(knowledge_admin_user(username="kim"))
    page = client.get(RUNS).content.decode()
    assert "Start specialising the chat model" in page
    assert "Chat model served: the shipped model" in page
    assert "Roll back the chat model" not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(RUNS + "start/", {"_start_model": "1"})
    assert response.status_code == 302
    run = SpecialiseRun.objects.get()
    assert run.kind == SpecialiseRun.Kind.MODEL
    assert run.status == SpecialiseRun.Status.PROMOTED, run.message
    assert run.requested_by is not None and run.requested_by.username == "kim"
    detail = client.get(RUNS + f"{run.pk}/change/").content.decode()
    assert "answer F1" in detail and "export Q8_0: check ok" in detail and "report #" in detail
    report = GateReport.objects.get()
    report_page = client.get(f"/admin/support/gatereport/{report.pk}/change/").content.decode()
    assert "answer token F1 vs the approved answers" in report_page
    page = client.get(RUNS).content.decode()
    assert "Chat model served: model-v1" in page and "Roll back the chat model" in page
    client.post(RUNS + "start/", {"_rollback_model": "1"})
    assert chat_models.current(chat_env["root"]) is None
    other = Client()
    other.force_login(agent_user(username="alex"))
    assert other.post(RUNS + "start/", {"_start_model": "1"}).status_code == 403
    assert other.post(RUNS + "start/", {"_rollback_model": "1"}).status_code == 403


def test_golden_questions_join_the_gate(
    chat_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The golden questions are a slice of their own, answered by both models. These two the
    pipeline declines before any model writes (nothing in the knowledge base answers them), so
    the candidate's script for them never shows and they block nothing; a should-be-declined
    question the candidate does answer is refused by the rule tested below."""
    declined = ["what is the capital of Peru", "can I pay with bitcoin"]
    for question in declined:
        GoldenQuestion.objects.create(question=question, should_decline=True)
    script = {**_good(), **dict.fromkeys(declined, "Parcels are delivered by courier.")}
    _use(monkeypatch, FakeTools(script))
    data = _run()
    for side in ("before", "after"):
        golden = data[side]["golden"]
        assert golden["questions"] == golden["should_decline"] == 2
        assert golden["declined_when_should"] == 1.0 and golden["answered_when_should_decline"] == 0
        assert data[side]["overall"]["questions"] == 6  # 4 held back + 2 golden
    assert data["promoted"] is True, data["reason"]


# --- the decision alone -------------------------------------------------------------------------


def _result(key: str, **values: Any) -> AnswerResult:
    base: dict[str, Any] = {
        "declined": False,
        "answer": "x",
        "action": "answer",
        "reason": "generated",
        "f1": 0.5,
        "support": 1.0,
        "ttft_ms": 300.0,
        "tokens_per_s": 100.0,
    }
    return AnswerResult(key=key, **{**base, **values})


def _golden(declined: bool) -> AnswerResult:
    if declined:  # a decline asks no model: no support, no timings
        return _result("g:1", declined=True, f1=None, support=None, ttft_ms=None, tokens_per_s=None)
    return _result("g:1", f1=None)


def _evaluation(
    after: dict[str, Any], *, declines: tuple[bool, bool] = (True, True)
) -> ChatGateEvaluation:
    cases = {
        "held_back": [GateCase("h:1", "held_back", "q1", (Turn("customer", "hi"),), "ref")],
        "golden": [GateCase("g:1", "golden", "q2", should_decline=True)],
    }
    return ChatGateEvaluation(
        cases,
        {"h:1": _result("h:1"), "g:1": _golden(declines[0])},
        {"h:1": _result("h:1", **after), "g:1": _golden(declines[1])},
    )


@pytest.mark.parametrize(
    ("after", "declines", "promote", "why"),
    [
        ({"f1": 0.7}, (True, True), True, ""),
        ({"f1": 0.5}, (True, True), False, "F1 did not improve"),
        ({"f1": 0.7, "support": 0.9}, (True, True), False, "support 0.900 is below 0.95"),
        ({"f1": 0.7}, (True, False), False, "should-be-declined question(s) answered"),
        ({"f1": 0.7, "ttft_ms": 400.0}, (True, True), False, "time to first token"),
        ({"f1": 0.7, "ttft_ms": 360.0}, (True, True), True, ""),  # within 25 %
        ({"f1": 0.7, "tokens_per_s": 70.0}, (True, True), False, "tokens/s"),
        ({"f1": 0.7}, (False, False), True, ""),  # answered before too: not worse
    ],
)
def test_the_gate_decides_on_f1_support_declines_and_speed(
    after: dict[str, Any], declines: tuple[bool, bool], promote: bool, why: str
) -> None:
    decision = chat.chat_gate_decide(
        _evaluation(after, declines=declines), min_support=0.95, speed_tolerance=0.25
    )
    assert decision.promote is promote, decision.reason
    assert why in decision.reason


def test_export_choice_prefers_the_faithful_then_the_faster() -> None:
    q8 = {"qtype": "Q8_0", "ok": True, "agreement": 0.99, "tokens_per_s": 90.0}
    q41 = {"qtype": "Q4_1", "ok": True, "agreement": 0.98, "tokens_per_s": 120.0}
    assert chat.export_choose([q8, q41]) is q41  # within QTYPE_NEAR: the faster
    assert chat.export_choose([q8, {**q41, "agreement": 0.9}]) is q8
    assert chat.export_choose([q8, {**q41, "ok": False}]) is q8
    assert chat.export_choose([{**q8, "ok": False}]) is None
