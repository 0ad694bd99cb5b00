"""`specialise --facts` with the real embedder on a small knowledge base: approved exchanges
teach the pipeline which sentence to quote, the gate judges it on the held-back ones, the
answer pipeline serves the promoted ranker, and a rollback brings the lexical ranking back
(docs/learning.md, "Fact selection")."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from support.answers import fact_ranker
from support.answers.pipeline import answer_compose
from support.conf import get_support_settings
from support.learning import fact_train
from support.models import Example, KnowledgeDocument, SpecialiseRun
from tests.fakes import FakeChatModel

# Customers whose invoice did not come: the agents answer with the page's second sentence,
# which shares fewer of their words than the first ("Invoices are sent ... every month").
QUESTIONS = (
    "I did not get my invoice this month",
    "my invoice for this month never came",
    "no invoice arrived this month",
    "where is my invoice for the month?",
    "the monthly invoice is not in my inbox",
    "this month I got no invoice",
    "invoice missing for this month",
    "still waiting for the invoice of this month",
)
AGENT = "Please call us on 1-800-555-0199 if an invoice is missing, we will resend it."


def _example(i: int, question: str, answer: str, *, held_back: bool) -> Example:
    return Example.objects.create(
        question=question,
        answer=answer,
        source=Example.Source.IMPORT,
        state=Example.State.APPROVED,
        reviewed_at=timezone.now(),
        external_id=f"x-{i}",
        split_key=f"conv-{i}",
        held_back=held_back,
    )


def _examples(answer: Any) -> None:
    n = 0
    for round_ in range(3):
        for j, q in enumerate(QUESTIONS):
            text = q if round_ == 0 else f"{q} {('please', 'thanks')[round_ - 1]}"
            _example(n, text, answer(j), held_back=round_ == 2 and j < 4)
            n += 1


@pytest.fixture
def few_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    # A handful of exchanges is enough to show the path (the product wants 20 labelled).
    monkeypatch.setattr(fact_train, "MIN_LABELLED", 5)
    fact_ranker.reset()


@pytest.mark.django_db
def test_approved_answers_teach_the_quote_and_rollback_restores_it(
    kb: dict[str, KnowledgeDocument],
    few_labels: None,
    chat_env: FakeChatModel,
) -> None:
    question = "the invoice of this month did not come"
    before = answer_compose(question=question, generate=False)
    assert before.text.startswith("Invoices are sent by e-mail"), before.text
    _examples(lambda _: AGENT)

    out = io.StringIO()
    call_command("specialise", "--facts", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["promoted"] is True, report
    assert report["held_back"] == 4 and report["trained_on"] == 20
    assert report["after"]["answer_f1"] > report["before"]["answer_f1"]
    assert report["cv"]["chosen_c"] is not None
    run = SpecialiseRun.objects.get(pk=report["run_id"])
    assert run.kind == SpecialiseRun.Kind.FACTS and run.status == SpecialiseRun.Status.PROMOTED
    root = get_support_settings().fact_rankers_dir
    assert fact_ranker.FACT_RANKERS.current(root) == report["model_version"]

    # The version carries every sentence of the knowledge base with its vector.
    served = fact_ranker.served_ranker(root)
    assert served is not None
    assert set(fact_train.kb_sentences()) <= set(served.sentences)
    assert any("ERR-4032" in t for t in served.sentences)  # a chunk no example asked about

    after = answer_compose(question=question, generate=False)
    assert after.text.startswith("Call us on 1-800-555-0199"), after.text
    assert after.action == before.action and after.reason == before.reason
    chosen = [f["text"] for f in after.trace["facts"] if f["chosen"]]  # the trace shows the pick
    assert len(chosen) == 1 and chosen[0].startswith("Call us on")
    assert not any(f["chosen"] for f in before.trace["facts"])
    # With generation on, the pick is among the facts the model is shown.
    written = answer_compose(question=question)
    assert written.trace["generate"]["facts_shown"], written.trace
    shown = [f["text"] for f in written.trace["generate"]["facts_shown"] if f["chosen"]]
    assert len(shown) == 1 and shown[0].startswith("Call us on")
    assert chat_env.prompts and "1-800-555-0199" in chat_env.prompts[-1]

    out = io.StringIO()
    call_command("specialise", "--facts", "--rollback", stdout=out)
    assert "lexical ranking" in out.getvalue()
    assert answer_compose(question=question, generate=False).text == before.text


@pytest.mark.django_db
def test_answers_the_passages_do_not_hold_are_refused_and_nothing_changes(
    kb: dict[str, KnowledgeDocument], few_labels: None
) -> None:
    question = "the invoice of this month did not come"
    before = answer_compose(question=question, generate=False)
    # Replies about something else entirely (a harmful set: nothing in them is in the pages).
    _examples(lambda j: f"Our shop in Glasgow opens at {8 + j % 3} on Saturdays.")
    report = fact_train.facts_specialise()
    assert report.promoted is False and report.model_version is None
    assert report.after["answer_f1"] == report.before["answer_f1"]
    assert fact_ranker.FACT_RANKERS.current(get_support_settings().fact_rankers_dir) is None
    assert answer_compose(question=question, generate=False).text == before.text


@pytest.mark.django_db
def test_the_admin_button_queues_a_fact_ranker_run_on_the_training_task(
    kb: dict[str, KnowledgeDocument],
    few_labels: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.test import Client

    from tests.factories import knowledge_admin_user

    _examples(lambda _: AGENT)
    client = Client()
    client.force_login(knowledge_admin_user(username="kim"))
    runs = "/admin/support/specialiserun/"
    assert "Start learning which sentence to quote" in client.get(runs).content.decode()
    with django_capture_on_commit_callbacks(execute=True):  # the task runs eagerly in tests
        assert client.post(runs + "start/", {"_start_facts": "1"}).status_code == 302
    run = SpecialiseRun.objects.get()
    assert run.kind == SpecialiseRun.Kind.FACTS and run.requested_by.username == "kim"
    assert run.status == SpecialiseRun.Status.PROMOTED, run.message
    assert run.progress == 100 and not run.holds_lock
    assert fact_ranker.FACT_RANKERS.current(get_support_settings().fact_rankers_dir) == (
        run.model_version
    )


@pytest.mark.django_db
def test_a_cancelled_fact_ranker_run_publishes_nothing(
    kb: dict[str, KnowledgeDocument], few_labels: None
) -> None:
    from support.learning.specialise import SpecialiseCancelled, run_create

    _examples(lambda _: AGENT)
    run = run_create(kind=SpecialiseRun.Kind.FACTS)
    SpecialiseRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    with pytest.raises(SpecialiseCancelled):
        fact_train.facts_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == SpecialiseRun.Status.CANCELLED and not run.holds_lock
    assert fact_ranker.FACT_RANKERS.current(get_support_settings().fact_rankers_dir) is None
