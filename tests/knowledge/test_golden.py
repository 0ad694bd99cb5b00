"""Golden questions and the knowledge-base gate: real parsers, the real embedder, real indexes
(the demo knowledge base), the admin's two decisions through the admin."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import IntegrityError
from django.test import Client, override_settings
from django.urls import reverse

from support import demo, knowledge, retrieval
from support.conf import get_support_settings
from support.golden import evaluate, gate
from support.golden.questions import golden_cases
from support.models import GateReport, GoldenQuestion, KnowledgeDocument
from support.search import index as search_index
from tests.factories import KnowledgeDocumentFactory, knowledge_admin_user

pytestmark = pytest.mark.django_db(transaction=True)

GOLDEN_LINES = [
    {"question": "When is my bill paid?", "document": "billing.md"},
    {"question": "What happens if a payment fails?", "document": "Billing and payments"},
    {"question": "How do I reset my password?", "document": "account-security.md"},
    {
        "question": "How do I reset the router to factory settings?",
        "document": "troubleshooting.md",
    },
    {"question": "Is there a data limit?", "document": "faq.csv"},
    {"question": "Do you sell mobile phones?", "decline": True},
    {"question": "What is the capital of France?", "decline": True},
]

MOBILE_MD = b"""# Mobile phones

## Buying a mobile phone

Yes, we sell mobile phones: every current smartphone model is sold in the Brightwave shop and
in the app under Shop > Mobile phones, with free delivery within 2 working days.
"""

OPENING_HOURS_MD = b"""# Opening hours

## Our shops

Brightwave shops open Monday to Saturday from 9:00 to 18:00 and are closed on Sundays.
"""


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def demo_kb(kb_env: Path) -> dict[str, KnowledgeDocument]:
    result = demo.demo_kb_ensure()
    assert result.loaded == 6
    return {d.original_filename: d for d in KnowledgeDocument.objects.all()}


@pytest.fixture
def golden(demo_kb: dict[str, KnowledgeDocument], tmp_path: Path) -> list[GoldenQuestion]:
    call_command("golden_import", str(_write_jsonl(tmp_path / "golden.jsonl", GOLDEN_LINES)))
    return list(GoldenQuestion.objects.order_by("pk"))


def _upload(name: str, data: bytes) -> KnowledgeDocument:
    # As the admin does: stored, then ingested and indexed by the (eager) tasks on commit.
    doc = knowledge.document_upload(filename=name, data=data)
    doc.refresh_from_db()
    return doc


def _served() -> int | None:
    return search_index.current_version(get_support_settings().index_dir)


def _top_files(question: str) -> list[str]:
    return [p.filename for p in retrieval.passages_search(query=question).passages]


# -- the golden questions ----------------------------------------------------------------------


def test_golden_import_reports_every_line_and_a_bad_line_never_stops_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with override_settings(MEDIA_ROOT=tmp_path / "media"):
        billing = KnowledgeDocumentFactory(
            original_filename="billing.md", title="Billing", status="ready"
        )
        KnowledgeDocumentFactory(original_filename="faq-a.csv", title="FAQ", status="ready")
        KnowledgeDocumentFactory(original_filename="faq-b.csv", title="FAQ", status="ready")
    path = tmp_path / "golden.jsonl"
    rows: list[object] = [
        {"question": "When is my bill paid?", "document": "billing.md"},
        {"question": "  Refund   times? ", "document": "BILLING"},
        {"question": "Do you sell phones?", "decline": True},
        {"question": "WHEN IS MY BILL PAID?", "document": "billing.md"},
        b"{not json",
        {"question": "Both?", "document": "billing.md", "decline": True},
        {"question": "Neither?"},
        {"question": "Unknown?", "document": "nowhere.md"},
        {"question": "Ambiguous?", "document": "FAQ"},
        {"question": "Typo?", "decline": True, "docment": "x"},
        {"question": 7, "decline": True},
        ["a", "list"],
        b"\xff\xfe not utf-8",
        b"",
        {"question": "By file name, after the bad lines", "document": "faq-a.csv"},
    ]
    path.write_bytes(
        b"\n".join(r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows)
    )
    call_command("golden_import", str(path))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 16  # one line per input line, then the summary
    assert out[0].startswith("line 1: imported -> golden question #")
    assert "expects document" in out[0] and "Billing" in out[0]
    assert out[1].startswith("line 2: imported")  # the title, case-insensitively
    assert out[2].startswith("line 3: imported") and "should be declined" in out[2]
    assert out[3].startswith("line 4: duplicate")
    assert out[4].startswith("line 5: error: not JSON")
    assert out[5] == 'line 6: error: give either "document" or "decline": true, not both'
    assert out[6] == 'line 7: error: give the expected "document", or "decline": true'
    assert out[7] == 'line 8: error: no document has the file name or title "nowhere.md"'
    assert out[8].startswith('line 9: error: "FAQ" names 2 documents')
    assert out[9] == 'line 10: error: unknown field(s) "docment"'
    assert out[10] == 'line 11: error: "question" must be a non-empty string'
    assert out[11] == "line 12: error: not a JSON object"
    assert out[12] == "line 13: error: not UTF-8 text"
    assert out[13] == "line 14: error: empty line"
    assert out[14].startswith("line 15: imported")
    assert out[15] == "15 line(s): 4 imported, 1 duplicate, 10 error(s)"
    stored = {q.question: q for q in GoldenQuestion.objects.all()}
    assert set(stored) == {
        "When is my bill paid?",
        "Refund times?",
        "Do you sell phones?",
        "By file name, after the bad lines",
    }
    assert stored["Refund times?"].document_id == billing.pk
    assert stored["Do you sell phones?"].should_decline
    assert stored["Do you sell phones?"].document_id is None


def test_a_golden_question_expects_a_document_or_a_decline_never_both_nor_neither(
    tmp_path: Path,
) -> None:
    with override_settings(MEDIA_ROOT=tmp_path / "media"):
        doc = KnowledgeDocumentFactory(status="ready")
    with pytest.raises(IntegrityError):
        GoldenQuestion.objects.create(question="Both?", document=doc, should_decline=True)
    with pytest.raises(IntegrityError):
        GoldenQuestion.objects.create(question="Neither?")
    GoldenQuestion.objects.create(question="Fine?", document=doc)
    with pytest.raises(IntegrityError):
        GoldenQuestion.objects.create(question="FINE?", should_decline=True)


def test_the_admin_imports_a_file_and_lists_the_questions(
    demo_kb: dict[str, KnowledgeDocument],
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    admin = Client()
    admin.force_login(knowledge_admin_user())
    changelist = reverse("admin:support_goldenquestion_changelist")
    assert b"Import (JSON Lines)" in admin.get(changelist).content
    body = "\n".join(json.dumps(r) for r in GOLDEN_LINES[:2]) + "\n{broken\n"
    response = admin.post(
        reverse("admin:support_goldenquestion_import"),
        {"file": SimpleUploadedFile("golden.jsonl", body.encode())},
        follow=True,
    )
    text = response.content.decode().lower()
    assert "line 1: imported" in text and "line 3: error: not json" in text
    assert "3 line(s): 2 imported, 0 duplicate, 1 error(s)" in text
    assert GoldenQuestion.objects.count() == 2
    assert "When is my bill paid?" in admin.get(changelist).content.decode()


# -- the evaluation ----------------------------------------------------------------------------


def test_the_golden_questions_run_against_the_served_index(
    golden: list[GoldenQuestion],
    demo_kb: dict[str, KnowledgeDocument],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cases = golden_cases()
    assert len(cases) == len(GOLDEN_LINES)
    run = evaluate.slice_run(name="golden", cases=cases, target=evaluate.target_published())
    by_question = {r.question: r for r in run.results}
    assert by_question["When is my bill paid?"].rank == 1
    assert by_question["How do I reset my password?"].hit
    assert by_question["Do you sell mobile phones?"].declined
    assert not by_question["Is there a data limit?"].declined
    measures = run.measures()
    assert measures["recall_at_5"] == 1.0
    assert measures["declined_when_should"] == 1.0
    assert measures["answered_when_should_decline"] == 0
    assert measures["questions"] == 7 and measures["answerable"] == 5

    call_command("golden_run", "--json")
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert printed["recall_at_5"] == 1.0 and len(printed["results"]) == 7
    call_command("golden_run")
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(f"index version {run.version}: 7 question(s); recall@5 1.000")
    assert all(line.startswith("ok\t") for line in lines[:-1])

    # The same version on both sides: nothing is worse, the gate passes, nothing was gained.
    same = evaluate.gate_evaluate(
        before=evaluate.target_published(), after=evaluate.target_published()
    )
    assert same.passed and not same.worse and not same.gained
    assert not evaluate.gate_evaluate(
        before=evaluate.target_published(), after=evaluate.target_published(), require_gain=True
    ).passed


def test_a_staged_version_is_searched_in_this_context_only(
    golden: list[GoldenQuestion], demo_kb: dict[str, KnowledgeDocument]
) -> None:
    """The gate searches a staged version while other threads keep serving the published one."""
    # Stage a version without the billing page by hand.
    KnowledgeDocument.objects.filter(pk=demo_kb["billing.md"].pk).update(pending_removal="disable")
    version, _, _ = knowledge._index_build({"fingerprint": knowledge._fingerprint()}, publish=False)
    KnowledgeDocument.objects.filter(pk=demo_kb["billing.md"].pk).update(pending_removal="")
    staged = evaluate.target_version(version)
    question = "When is my bill paid?"
    seen: list[list[str]] = []
    with retrieval.index_pinned(staged.snapshot):
        assert "billing.md" not in _top_files(question)
        worker = threading.Thread(target=lambda: seen.append(_top_files(question)))
        worker.start()
        worker.join()
    assert seen[0][0] == "billing.md"  # the other thread searched the published version
    assert _top_files(question)[0] == "billing.md"

    evaluation = evaluate.gate_evaluate(before=evaluate.target_published(), after=staged)
    assert not evaluation.passed
    worse = {w.after.question: w for w in evaluation.worse}
    assert evaluate.LEFT_TOP_K in worse[question].reasons and worse[question].blocking
    assert worse["What happens if a payment fails?"].blocking
    assert any("recall@5 dropped from 1.000" in r for r in evaluation.regressions)


# -- the knowledge-base gate -------------------------------------------------------------------


def test_disabling_a_document_golden_questions_need_is_held_and_both_decisions_work(
    golden: list[GoldenQuestion], demo_kb: dict[str, KnowledgeDocument]
) -> None:
    billing = demo_kb["billing.md"]
    served = _served()
    question = "When is my bill paid?"

    knowledge.document_set_enabled(document_id=billing.pk, enabled=False)  # rebuild on commit

    billing.refresh_from_db()
    assert billing.status == "ready" and billing.pending_removal == "disable"
    assert _served() == served  # nothing served changed
    assert _top_files(question)[0] == "billing.md"
    report = GateReport.objects.get()
    assert report.kind == "kb_change" and report.decision == "held"
    assert report.before_version == served and report.after_version == served + 1
    assert search_index.staged_exists(get_support_settings().index_dir, report.after_version)
    assert list(report.documents.all()) == [billing]
    assert report.changes["removed"] == [
        {"id": billing.pk, "title": "Billing and payments", "removal": "disable"}
    ]
    worse = {w["question"]: w for w in report.worse}
    assert worse[question]["blocking"] and worse[question]["reasons"][0] == "left_top_5"
    assert worse[question]["before"]["rank"] == 1
    assert report.before["golden"]["recall_at_5"] == 1.0
    assert report.after["golden"]["recall_at_5"] < 1.0
    # A serving process's periodic check leaves the held change alone.
    assert knowledge.index_sync() is None
    assert _served() == served and GateReport.objects.count() == 1

    admin = Client()
    user = knowledge_admin_user()
    admin.force_login(user)
    page = admin.get(reverse("admin:support_knowledgedocument_change", args=[billing.pk]))
    text = page.content.decode()
    assert "held back the index with this change" in text
    assert "Publish anyway" in text and "Keep the old index" in text
    assert question in text
    listing = admin.get(reverse("admin:support_knowledgedocument_changelist")).content.decode()
    assert f"report #{report.pk}" in listing
    # Another document's page shows nothing.
    other = admin.get(
        reverse("admin:support_knowledgedocument_change", args=[demo_kb["faq.csv"].pk])
    )
    assert "Publish anyway" not in other.content.decode()

    # Keep the old index: the removal is cancelled, the staged version discarded.
    response = admin.post(reverse("admin:support_gatereport_keep", args=[report.pk]))
    assert response.status_code == 302
    report.refresh_from_db()
    assert report.decision == "kept_old" and report.decided_by == user
    billing.refresh_from_db()
    assert billing.status == "ready" and billing.pending_removal == ""
    assert not search_index.staged_exists(get_support_settings().index_dir, served + 1)
    assert _served() == served
    assert _top_files(question)[0] == "billing.md"
    # Deciding twice is refused with a message, not an error page.
    again = admin.post(reverse("admin:support_gatereport_keep", args=[report.pk]), follow=True)
    assert "not waiting for a decision" in again.content.decode()

    # Disable again: held again; publish anyway.
    knowledge.document_set_enabled(document_id=billing.pk, enabled=False)
    held = GateReport.objects.get(decision="held")
    assert held.pk != report.pk
    admin.post(reverse("admin:support_gatereport_publish", args=[held.pk]))
    held.refresh_from_db()
    assert held.decision == "forced" and held.decided_by == user and held.decided_at
    assert _served() == held.after_version  # the held version itself
    billing.refresh_from_db()
    assert billing.status == "disabled" and billing.pending_removal == ""
    assert "billing.md" not in _top_files(question)
    assert knowledge.index_sync() is None  # every machine agrees now


def test_an_added_document_that_answers_a_should_be_declined_question_is_kept_out(
    golden: list[GoldenQuestion],
    demo_kb: dict[str, KnowledgeDocument],
    capsys: pytest.CaptureFixture[str],
) -> None:
    served = _served()
    # The command line says so too.
    (Path(get_support_settings().data_dir) / "mobile.md").write_bytes(MOBILE_MD)
    call_command("kb_ingest", str(Path(get_support_settings().data_dir) / "mobile.md"))
    assert "held back by the golden questions" in capsys.readouterr().out
    mobile = KnowledgeDocument.objects.get(original_filename="mobile.md")
    assert mobile.status == "ready"
    assert _served() == served
    report = GateReport.objects.get(decision="held")
    assert report.changes["added"] == [{"id": mobile.pk, "title": "Mobile phones"}]
    worse = {w["question"]: w for w in report.worse}
    assert worse["Do you sell mobile phones?"]["reasons"] == ["now_answered"]
    assert any("should be declined and is now answered" in r for r in report.regressions)
    assert "mobile.md" not in _top_files("Do you sell mobile phones?")

    kept = gate.gate_keep_old(report_id=report.pk, user=None)
    assert kept.disabled == ("Mobile phones",)
    mobile.refresh_from_db()
    assert mobile.status == "disabled"  # the database says what is served
    assert _served() == served
    assert knowledge.index_sync() is None


def test_a_change_the_golden_questions_do_not_mind_is_published_with_its_report(
    golden: list[GoldenQuestion], demo_kb: dict[str, KnowledgeDocument]
) -> None:
    served = _served()
    assert served is not None
    hours = _upload("opening-hours.md", OPENING_HOURS_MD)
    assert _served() == served + 1
    assert _top_files("When do your shops open?")[0] == "opening-hours.md"
    report = GateReport.objects.get()
    assert report.decision == "promoted" and not report.regressions
    assert list(report.documents.all()) == [hours]

    # Deleting a document no golden question needs: checked, then deleted.
    knowledge.document_delete(document_id=hours.pk)
    assert not KnowledgeDocument.objects.filter(pk=hours.pk).exists()
    assert GateReport.objects.filter(decision="promoted").count() == 2


def test_deleting_a_needed_document_waits_and_publishing_anyway_deletes_it(
    golden: list[GoldenQuestion], demo_kb: dict[str, KnowledgeDocument]
) -> None:
    faq = demo_kb["faq.csv"]
    assert knowledge.document_delete(document_id=faq.pk) is False
    faq.refresh_from_db()
    assert faq.pending_removal == "delete"
    report = gate.gate_report_held(document_id=faq.pk)
    assert report is not None
    assert "Is there a data limit?" in {w["question"] for w in report.worse}

    gate.gate_publish_anyway(report_id=report.pk, user=None)
    assert not KnowledgeDocument.objects.filter(pk=faq.pk).exists()
    assert _served() == report.after_version
    # Its golden question went with it; the report still names it.
    assert not GoldenQuestion.objects.filter(question="Is there a data limit?").exists()
    report.refresh_from_db()
    assert report.decision == "forced"
    assert "Is there a data limit?" in {w["question"] for w in report.worse}


def test_without_golden_questions_changes_behave_as_before(
    demo_kb: dict[str, KnowledgeDocument],
) -> None:
    served = _served()
    assert served is not None
    billing, faq = demo_kb["billing.md"], demo_kb["faq.csv"]
    knowledge.document_set_enabled(document_id=billing.pk, enabled=False)
    billing.refresh_from_db()
    assert billing.status == "disabled" and billing.pending_removal == ""
    assert _served() == served + 1
    assert knowledge.document_delete(document_id=faq.pk) is True
    assert not KnowledgeDocument.objects.filter(pk=faq.pk).exists()
    assert _served() == served + 2
    _upload("mobile.md", MOBILE_MD)
    assert _served() == served + 3
    assert GateReport.objects.count() == 0
    # An inactive golden question is no golden question.
    GoldenQuestion.objects.create(
        question="When is my bill paid?", document=demo_kb["moving-house.md"], active=False
    )
    knowledge.document_set_enabled(document_id=billing.pk, enabled=True)
    assert _served() == served + 4
    assert GateReport.objects.count() == 0


def test_the_api_answers_202_while_a_deletion_waits_and_the_report_pages_render(
    golden: list[GoldenQuestion], demo_kb: dict[str, KnowledgeDocument]
) -> None:
    from tests.api.conftest import make_api

    kadmin = knowledge_admin_user()
    api = make_api(kadmin, ["read", "knowledge"])
    billing = demo_kb["billing.md"]
    response = api.delete(f"/api/v1/documents/{billing.pk}/")
    assert response.status_code == 202
    assert response.json()["pending_removal"] == "delete"
    assert api.get(f"/api/v1/documents/{billing.pk}/").json()["status"] == "ready"
    report = GateReport.objects.get(decision="held")

    admin = Client()
    admin.force_login(kadmin)
    listing = admin.get(reverse("admin:support_gatereport_changelist"))
    assert listing.status_code == 200 and f"Gate report #{report.pk}" in listing.content.decode()
    page = admin.get(reverse("admin:support_gatereport_change", args=[report.pk])).content.decode()
    assert "Publish anyway" in page and "When is my bill paid?" in page
    assert "left_top_5" in page and "recall@5" in page
    # Publishing is a POST of someone who may change documents.
    assert (
        admin.get(reverse("admin:support_gatereport_publish", args=[report.pk])).status_code == 405
    )
    viewer = Client()
    from tests.factories import agent_user

    viewer.force_login(agent_user())
    assert (
        viewer.post(reverse("admin:support_gatereport_publish", args=[report.pk])).status_code
        == 403
    )
    report.refresh_from_db()
    assert report.decision == "held"
