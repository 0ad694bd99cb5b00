"""Specialising the retriever (issue 14 item 5, docs/learning.md): a real, tiny fine-tune of
all-MiniLM-L6-v2, the gate, the lock, cancel, rollback, and search following the promoted model.

Training runs here are a handful of pairs and one or two optimiser steps: they check the
plumbing and the gate's decisions, not the model's quality (bench/specialise_retrieval.py)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from support import backends, knowledge
from support.golden.evaluate import CaseResult, GateEvaluation, SliceRun, runs_compare
from support.learning import specialise as spec
from support.learning.grounding import chunk_key
from support.models import Chunk, KnowledgeDocument
from support.models_golden import GateReport
from support.models_learning import Example, ExampleGrounding, SpecialiseRun
from support.search import index as search_index
from support.search import retrievers
from tests.chat.conftest import chat_env  # noqa: F401  (fixture)
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)

pytestmark = pytest.mark.django_db

HELP_MD = b"""# Help centre

## Delivery

Parcels are delivered by courier within 3 working days; the tracking link comes by SMS.

## Returns

Unused items can be sent back within 30 days with the prepaid label from your account page.

## Warranty

Every device has a two-year warranty covering manufacturing faults, not water damage.

## Opening hours

The shop in Leeds is open Monday to Saturday from 9 am to 6 pm, closed on bank holidays.

## Gift cards

Gift cards never expire and can be spent online or in the shop, but not on other gift cards.

## Passwords

To change your password open Settings, then Security, and choose Change password.
"""

# (question, words of the chunk that answers it); the first ones are trained on, the last
# four held back.
QUESTIONS = [
    ("when will my parcel arrive", "courier"),
    ("can I send a jacket back", "prepaid label"),
    ("is my phone covered if it breaks", "warranty"),
    ("what time does the Leeds store open", "Saturday"),
    ("do vouchers run out", "never expire"),
    ("how do I set a new login secret", "Change password"),
    ("my router light is off, how to restart it", "reset button"),
    ("what does ERR-4032 mean", "fibre line"),
    ("how long does shipping take", "courier"),
    ("how many days do I have to return something", "prepaid label"),
    ("is water damage covered", "warranty"),
    ("is the shop open on Sunday", "Saturday"),
]
TRAINED = 8


@pytest.fixture
def spec_env(chat_env: Any) -> Iterator[dict[str, Any]]:  # noqa: F811
    """router.md and six help pages indexed with the real embedder; 8 approved training examples and
    4 held-back ones, each grounded on the chunk that answers it."""
    # One document per section: each is a chunk of its own (a chunk holds up to 256 tokens).
    for n, section in enumerate(HELP_MD.split(b"\n## ")[1:]):
        doc = knowledge.document_upload(filename=f"help-{n}.md", data=b"# " + section, queue=False)
        knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
    knowledge.index_rebuild()
    chunks = list(Chunk.objects.select_related("document").order_by("pk"))
    examples = []
    for n, (question, words) in enumerate(QUESTIONS):
        chunk = next(c for c in chunks if words in c.text)
        examples.append(_example(n, question, chunk, held_back=n >= TRAINED))
    with override_settings(SUPPORT_SPECIALISE_BATCH_SIZE=8, SUPPORT_SPECIALISE_THREADS=1):
        yield {"chunks": chunks, "examples": examples}


def _example(n: int, question: str, chunk: Chunk, *, held_back: bool) -> Example:
    example = Example.objects.create(
        question=question,
        answer=chunk.text,
        source=Example.Source.IMPORT,
        external_id=f"t-{n}",
        state=Example.State.APPROVED,
        reviewed_at=timezone.now(),
        grounding_method=Example.GroundingMethod.DOCUMENT,
        split_key=f"k{n}",
        held_back=held_back,
    )
    ExampleGrounding.objects.create(
        example=example,
        document=chunk.document,
        chunk=chunk,
        chunk_key=chunk_key(chunk.text),
        chunk_order=chunk.order,
        text=chunk.text,
        method=Example.GroundingMethod.DOCUMENT,
    )
    return example


def _served(conf_dir: Path) -> dict[str, Any]:
    """What serving depends on: the index version, its model, the model pointer, embeddings."""
    version = search_index.current_version(conf_dir / "index")
    assert version is not None
    manifest = search_index.read_manifest(conf_dir / "index", version)
    return {
        "index_version": version,
        "embedding_model": manifest.metadata.get("embedding_model"),
        "retriever": retrievers.current(conf_dir / "retrievers"),
        "embeddings": dict(Chunk.objects.values_list("pk", "embedding")),
        "labels": set(Chunk.objects.values_list("embedding_model", flat=True)),
    }


def _data_dir() -> Path:
    from support.conf import get_support_settings

    return get_support_settings().data_dir


def _copy_trainer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training replaced by copying the shipped model (rollback / lock tests: not about the
    training itself, and cheaper on a shared machine)."""

    def copy(*, pairs: Any, output: Path, conf: Any, on_step: Any = None) -> int:
        shutil.copytree(spec.base_model_path(), output)
        return 0

    monkeypatch.setattr(spec, "model_train", copy)


def _run_command(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("specialise", "--retrieval", "--json", *args, stdout=out)
    data: dict[str, Any] = json.loads(out.getvalue())
    return data


# --- a real run -------------------------------------------------------------------------------


def test_tiny_real_run_promotes_a_new_model_and_index_version(spec_env: Any) -> None:
    root = _data_dir()
    before = _served(root)
    data = _run_command("--force")
    for key in ("promoted", "before", "after", "trained_on", "held_back", "seconds"):
        assert key in data
    assert data["promoted"] is True
    assert data["trained_on"] == TRAINED
    assert data["held_back"] == len(QUESTIONS) - TRAINED
    assert data["steps"] == 1
    assert set(data["before"]) == {"held_back", "overall"} == set(data["after"])
    assert data["before"]["held_back"]["answerable"] == 4
    assert data["gate_report"] == GateReport.objects.get(kind="learning").pk
    # A versioned, complete model folder, and a new served index version made by it.
    model = retrievers.current(root / "retrievers")
    assert model is not None and model.version == data["model_version"] == 1
    assert (model.path / "modules.json").is_file()
    assert retrievers.info(model)["trained_on"] == TRAINED
    after = _served(root)
    assert after["index_version"] == data["index_version"] > before["index_version"]
    assert after["embedding_model"] == "retriever-v1"
    assert after["labels"] == {"retriever-v1"}
    assert after["embeddings"] != before["embeddings"]
    run = SpecialiseRun.objects.get()
    assert run.status == SpecialiseRun.Status.PROMOTED and not run.holds_lock
    assert run.report["promoted"] is True and run.progress == 100

    # kb_search (and every search) embeds the query with the promoted model.
    snapshot = backends.get_index_reader().snapshot()
    embedder = backends.embedder_for_manifest(snapshot.manifest)
    assert Path(embedder.model_path) == model.path  # type: ignore[attr-defined]
    out = StringIO()
    call_command("kb_search", "is the shop open on Sunday", "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["index_version"] == after["index_version"]
    query = embedder.encode_query("is the shop open on Sunday")
    top = result["results"][0]
    stored = np.frombuffer(Chunk.objects.get(pk=top["chunk_id"]).embedding, dtype="<f4")
    assert top["dense_score"] == pytest.approx(float(stored @ query), abs=1e-3)

    # A document ingested now is embedded with the promoted model too.
    doc = knowledge.document_upload(filename="extra.md", data=b"# Extra\n\nFax us.\n", queue=False)
    knowledge.document_ingest(document_id=doc.pk)
    assert set(Chunk.objects.filter(document=doc).values_list("embedding_model", flat=True)) == {
        "retriever-v1"
    }


def test_harmful_examples_are_refused_and_nothing_served_changes(spec_env: Any) -> None:
    """Groundings shuffled across the training questions (each question taught the wrong
    chunk, hard) are refused by the gate; the held-back slice is what catches it."""
    trained = [e for e in spec_env["examples"] if not e.held_back]
    rows = [e.grounding.get() for e in trained]
    chunks = [r.chunk for r in rows]
    for row, chunk in zip(rows, chunks[3:] + chunks[:3], strict=True):
        row.chunk = chunk
        row.save()
    root = _data_dir()
    before = _served(root)
    with override_settings(SUPPORT_SPECIALISE_LEARNING_RATE=1e-3, SUPPORT_SPECIALISE_EPOCHS=3):
        data = _run_command()
    assert data["promoted"] is False
    assert data["held_back"] == 4
    # Learned strongly enough (3 steps at a high rate) that a held-back question drops.
    assert data["reason"].startswith("worse: held_back: ")
    assert data["worse"] and data["after"]["held_back"]["mrr_at_10"] < 1.0
    report = GateReport.objects.get()
    assert report.kind == "learning" and report.decision == "refused" and report.worse
    assert _served(root) == before
    assert retrievers.versions(root / "retrievers") == []  # the refused model is deleted
    run = SpecialiseRun.objects.get()
    assert run.status == SpecialiseRun.Status.REFUSED and not run.holds_lock
    assert run.report["before"]["held_back"]["answerable"] == 4


def test_cancel_during_training_leaves_everything_untouched(spec_env: Any) -> None:
    root = _data_dir()
    before = _served(root)
    run = spec.run_create()

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "training":
            assert spec.run_cancel(run_id=run.pk)

    with pytest.raises(spec.SpecialiseCancelled):
        spec.run_execute(run_id=run.pk, progress=progress)
    run.refresh_from_db()
    assert run.status == SpecialiseRun.Status.CANCELLED and not run.holds_lock
    assert _served(root) == before
    assert retrievers.versions(root / "retrievers") == []
    assert [p.name for p in (root / "retrievers").iterdir() if p.name.startswith(".tmp")] == []


# --- without real training ----------------------------------------------------------------------


def test_the_lock_refuses_a_second_run_until_the_first_ends_or_expires(spec_env: Any) -> None:
    first = spec.run_create()
    with pytest.raises(spec.SpecialiseBusy):
        spec.run_create()
    with pytest.raises(CommandError, match="Another specialisation run"):
        call_command("specialise", "--json", stdout=StringIO())
    # A run whose worker died stops reporting; after the expiry its lock is taken over.
    SpecialiseRun.objects.filter(pk=first.pk).update(
        heartbeat_at=timezone.now() - timedelta(hours=2)
    )
    second = spec.run_create()
    first.refresh_from_db()
    assert first.status == SpecialiseRun.Status.FAILED and not first.holds_lock
    assert second.holds_lock
    assert spec.run_cancel(run_id=second.pk)
    with pytest.raises(spec.SpecialiseCancelled):
        spec.run_execute(run_id=second.pk)
    spec.run_create()  # released


def test_rollback_restores_the_previous_version(
    spec_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_trainer(monkeypatch)
    root = _data_dir()
    shipped = _served(root)
    with pytest.raises(CommandError, match="no earlier retriever"):
        call_command("specialise", "--rollback", stdout=StringIO())
    first = _run_command("--force")
    second = _run_command("--force")
    assert (first["model_version"], second["model_version"]) == (1, 2)
    assert _served(root)["embedding_model"] == "retriever-v2"

    out = StringIO()
    call_command("specialise", "--rollback", "--json", stdout=out)
    assert json.loads(out.getvalue())["rolled_back_to"] == 1
    served = _served(root)
    assert served["embedding_model"] == "retriever-v1" and served["labels"] == {"retriever-v1"}
    assert served["retriever"].version == 1

    call_command("specialise", "--rollback", stdout=StringIO())
    served = _served(root)
    assert served["retriever"] is None
    assert served["embedding_model"] == shipped["embedding_model"]
    assert served["labels"] == shipped["labels"]
    # The shipped model's vectors again (the copy is the same weights: equal up to float noise).
    for pk, blob in served["embeddings"].items():
        old = np.frombuffer(shipped["embeddings"][pk], dtype="<f4")
        assert np.allclose(np.frombuffer(blob, dtype="<f4"), old, atol=1e-5)
    snapshot = backends.get_index_reader().snapshot()
    assert backends.embedder_for_manifest(snapshot.manifest) is backends.get_embedder()
    assert SpecialiseRun.objects.filter(status=SpecialiseRun.Status.ROLLED_BACK).count() == 2


def test_too_few_pairs_trains_nothing(spec_env: Any) -> None:
    with override_settings(SUPPORT_SPECIALISE_MIN_PAIRS=50):
        data = _run_command()
    assert data["promoted"] is False and data["trained_on"] == TRAINED
    assert "fewer than" in data["reason"]
    assert not (_data_dir() / "retrievers").exists() or not retrievers.versions(
        _data_dir() / "retrievers"
    )


def test_no_knowledge_base_cannot_run(spec_env: Any) -> None:
    KnowledgeDocument.objects.update(status=KnowledgeDocument.Status.DISABLED)
    with pytest.raises(CommandError, match="no indexed chunks"):
        call_command("specialise", "--json", stdout=StringIO())
    assert not SpecialiseRun.objects.filter(holds_lock=True).exists()


# --- the gate, on its own -----------------------------------------------------------------------


def _run(name: str, ranks: dict[str, int | None], declined: frozenset[str] = frozenset()) -> Any:
    results = tuple(
        CaseResult(
            key=key,
            question=f"q {key}",
            answerable=not key.startswith("d"),
            should_decline=key.startswith("d"),
            rank=rank,
            declined=key in declined,
            reason="",
            top_documents=(),
        )
        for key, rank in ranks.items()
    )
    return SliceRun(name, 1, results)


def _evaluation(before: dict[str, Any], after: dict[str, Any]) -> GateEvaluation:
    """What support.golden.evaluate.gate_evaluate returns for these runs."""
    comparisons = tuple(runs_compare(before[name], after[name]) for name in before)
    recall = [
        sum(r.hit for c in comparisons for r in getattr(c, side).results if r.answerable)
        for side in ("before", "after")
    ]
    answered = [
        sum(
            not r.declined
            for c in comparisons
            for r in getattr(c, side).results
            if r.should_decline
        )
        for side in ("before", "after")
    ]
    return GateEvaluation(
        slices=comparisons,
        regressions=tuple(r for c in comparisons for r in c.regressions),
        gained=recall[1] > recall[0] or answered[1] < answered[0],
        require_gain=True,
    )


def test_gate_promotes_only_when_better_overall_and_no_slice_worse() -> None:
    declined = frozenset({"d1"})
    base = {
        "held_back": _run("held_back", {"a": 1, "b": 6, "c": None}),
        "golden": _run("golden", {"g": 2, "d1": None}, declined),
    }

    def after(held: dict[str, int | None], golden: dict[str, int | None], dec: Any = declined):
        return {"held_back": _run("held_back", held), "golden": _run("golden", golden, dec)}

    better = after({"a": 1, "b": 3, "c": None}, {"g": 2, "d1": None})
    assert spec.gate_decide(_evaluation(base, better)).promote
    same = after({"a": 1, "b": 6, "c": None}, {"g": 2, "d1": None})
    assert spec.gate_decide(_evaluation(base, same)).reason == "no better overall"
    # MRR@10 alone rises (c comes in at rank 8, outside the top 5): better too.
    climbed = after({"a": 1, "b": 6, "c": 8}, {"g": 2, "d1": None})
    assert spec.gate_decide(_evaluation(base, climbed)).promote
    # Better on held-back, the golden question's chunk lower: refused, and named.
    mixed = after({"a": 1, "b": 1, "c": 1}, {"g": 3, "d1": None})
    decision = spec.gate_decide(_evaluation(base, mixed))
    assert not decision.promote and "golden: MRR@10 dropped" in decision.reason
    assert [w["key"] for w in decision.worse] == ["g"]
    # A should-be-declined question now answered blocks, whatever else improved.
    answered = after({"a": 1, "b": 1, "c": 1}, {"g": 2, "d1": None}, frozenset())
    decision = spec.gate_decide(_evaluation(base, answered))
    assert not decision.promote and "should be declined" in decision.reason
    # MRR drop alone (recall@5 unchanged) is worse too.
    slower = after({"a": 2, "b": 6, "c": None}, {"g": 2, "d1": None})
    assert not spec.gate_decide(_evaluation(base, slower)).promote


# --- the admin and the task ---------------------------------------------------------------------

RUNS = "/admin/support/specialiserun/"


def test_the_admin_starts_a_run_on_the_training_queue_and_shows_its_outcome(
    spec_env: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from celery import current_app
    from django.test import Client

    from tests.factories import knowledge_admin_user

    _copy_trainer(monkeypatch)  # the same weights: the gate finds nothing better
    client = Client()
    client.force_login(knowledge_admin_user(username="kim"))
    assert client.get(RUNS).status_code == 200
    routes = current_app.conf.task_routes
    assert routes["support.specialise"] == {"queue": "training"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(RUNS + "start/", {"_start": "1"})
    assert response.status_code == 302
    run = SpecialiseRun.objects.get()
    assert run.status == SpecialiseRun.Status.REFUSED and run.message == "no better overall"
    assert run.requested_by is not None and run.requested_by.username == "kim"
    page = client.get(RUNS + f"{run.pk}/change/").content.decode()
    assert "no better overall" in page and "held_back: recall@5 1.0" in page
    assert "report #" in page


def test_the_admin_cancels_a_queued_run_and_agents_cannot_start_one(spec_env: Any) -> None:
    from django.test import Client

    from tests.factories import agent_user, knowledge_admin_user

    run = spec.run_create()
    client = Client()
    client.force_login(knowledge_admin_user(username="kim"))
    page = client.get(RUNS).content.decode()
    assert f"Cancel run #{run.pk}" in page and 'http-equiv="refresh"' in page
    client.post(RUNS + "start/", {"_cancel": "1", "run": str(run.pk)})
    run.refresh_from_db()
    assert run.cancel_requested
    # The worker that picks it up stops before doing anything.
    assert spec_task(run.pk) == "cancelled"
    run.refresh_from_db()
    assert run.status == SpecialiseRun.Status.CANCELLED and not run.holds_lock

    other = Client()
    other.force_login(agent_user(username="alex"))
    assert other.post(RUNS + "start/", {"_start": "1"}).status_code == 403
    assert not SpecialiseRun.objects.filter(holds_lock=True).exists()


def spec_task(run_id: int) -> str:
    from support.tasks import specialise_task

    result: str = specialise_task.apply(kwargs={"run_id": run_id}).get()
    return result
