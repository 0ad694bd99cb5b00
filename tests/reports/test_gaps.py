"""Knowledge gaps (support.reports.gaps): what counts, the clustering on real paraphrases, the
ranking by volume and trend."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client

from support import backends, roles
from support.llm.errors import GenerationError
from support.models import ArticleDraft, Conversation, Example, GapRun, KnowledgeDocument, Message
from support.reports import articles
from support.reports.clusters import DEFAULT_DISTANCE_THRESHOLD, cluster_labels
from support.reports.gaps import GapKind, gap_items_collect, gaps_build
from tests.factories import UserFactory
from tests.fakes import FakeChatModel
from tests.knowledge.conftest import kb_env, real_embedder  # noqa: F401  (fixtures)

EVAL = Path(__file__).resolve().parents[2].parent / "shared" / "eval" / "doc2dial"

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
START = NOW - timedelta(days=30)


class TopicEmbedder:
    """An Embedder that puts every text mentioning one keyword on one axis."""

    KEYWORDS = ("refund", "password", "parking", "invoice")
    dimension = len(KEYWORDS) + 1
    model_name = "fake-topics"

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> Any:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            hit = [i for i, k in enumerate(self.KEYWORDS) if k in text.lower()]
            out[row, hit[0] if hit else len(self.KEYWORDS)] = 1.0
        return out

    def encode_query(self, text: str) -> Any:
        return self.encode([text])[0]


def _at(obj: Any, when: datetime) -> None:
    type(obj).objects.filter(pk=obj.pk).update(created_at=when)


def decline(question: str, when: datetime, conversation: Conversation | None = None) -> Message:
    conv = conversation or Conversation.objects.create()
    asked = Message.objects.create(conversation=conv, role="customer", text=question)
    bot = Message.objects.create(
        conversation=conv,
        role="bot",
        text="I'm not sure about that.",
        action=Message.Action.ESCALATE,
        in_reply_to=asked,
    )
    _at(asked, when)
    _at(bot, when)
    return bot


def gap_example(
    question: str,
    answer: str,
    when: datetime,
    *,
    conversation: Conversation | None = None,
    source: str = Example.Source.AGENT_REPLY,
    state: str = Example.State.PENDING,
    knowledge_gap: bool = True,
) -> Example:
    example = Example.objects.create(
        question=question,
        answer=answer,
        source=source,
        state=state,
        knowledge_gap=knowledge_gap,
        reviewed_at=None if state == Example.State.PENDING else NOW,
        conversation=conversation,
        split_key="k",
    )
    _at(example, when)
    return example


@pytest.fixture
def gaps_data(db: None) -> None:
    day = timedelta(days=1)
    # refund: 3 now (two declines, one unsupported agent answer), 1 before -> volume 3, +2
    decline("How do I get a refund?", NOW - 2 * day)
    decline("refund for a broken kettle please", NOW - 3 * day)
    gap_example("Can I have a refund after 60 days?", "Yes, within 90 days.", NOW - 4 * day)
    decline("I want a refund", START - 5 * day)
    # password: 3 now, none before -> volume 3, +3 (new): ranked above refund
    decline("I forgot my password", NOW - day)
    decline("password reset link does not work", NOW - day)
    gap_example(
        "How do I change my password?", "Settings > Security > Change password.", NOW - 2 * day
    )
    # parking: 1 now, 4 before -> last, trend down
    decline("Is there parking at the store?", NOW - day)
    for i in range(4):
        decline(f"parking question {i}", START - (i + 1) * day)
    # Not gaps: a rejected example, a grounded example, one outside both periods, one from the
    # future (after the end), and a rated-helpful answer no chunk supports (counted as helpful).
    gap_example("invoice rejected", "x", NOW - day, state=Example.State.REJECTED)
    gap_example("invoice grounded", "x", NOW - day, knowledge_gap=False)
    decline("invoice from long ago", START - 40 * day)
    decline("invoice from tomorrow", NOW + day)
    gap_example(
        "Where is my invoice?", "In your account.", NOW - day, source=Example.Source.RATED_HELPFUL
    )


def test_items_collect_counts_declines_unsupported_and_helpful(gaps_data: None) -> None:
    items = gap_items_collect(start=START, end=NOW)
    kinds = Counter(i.kind for i in items)
    assert kinds == {GapKind.DECLINED: 5, GapKind.UNSUPPORTED: 2, GapKind.HELPFUL: 1}
    assert all(START <= i.at < NOW for i in items)
    assert [i.at for i in items] == sorted(i.at for i in items)
    assert {i.question for i in items if i.kind == GapKind.HELPFUL} == {"Where is my invoice?"}


@pytest.mark.django_db
def test_decline_answered_by_the_conversations_example_counts_once() -> None:
    conv = Conversation.objects.create()
    decline("My parcel never arrived", NOW - timedelta(days=1), conversation=conv)
    gap_example(
        "Hello\nMy parcel never arrived",
        "We sent a new one.",
        NOW - timedelta(hours=20),
        conversation=conv,
    )
    items = gap_items_collect(start=START, end=NOW)
    assert [(i.kind, i.answer) for i in items] == [(GapKind.UNSUPPORTED, "We sent a new one.")]


def test_topics_ranked_by_volume_then_trend(gaps_data: None) -> None:
    report = gaps_build(start=START, end=NOW, embedder=TopicEmbedder(), distance_threshold=0.3)
    names = [t.name for t in report.topics]
    assert len(names) == 4
    first, second, third, fourth = report.topics
    assert "password" in first.name.lower() and (first.volume, first.previous) == (3, 0)
    assert first.trend == "new" and first.change == 3
    assert "refund" in second.name.lower() and (second.volume, second.previous) == (3, 1)
    assert second.trend == "up"
    assert second.kinds == {"declined": 2, "unsupported": 1}
    assert second.answers == ("Yes, within 90 days.",)
    assert len(second.questions) == 3
    # invoice (1 now, 0 before) outranks parking (1 now, 4 before) on the trend.
    assert "invoice" in third.name.lower() and third.kinds == {"helpful": 1}
    assert "parking" in fourth.name.lower() and (fourth.volume, fourth.previous) == (1, 4)
    assert fourth.trend == "down"
    assert (report.questions, report.previous_questions) == (8, 5)
    data = json.loads(json.dumps(report.as_dict()))
    assert [t["name"] for t in data["topics"]] == names


def test_topic_named_by_its_most_typical_question() -> None:
    vectors = np.array(
        [[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32
    )  # one group: the middle two are closest to the centroid (0.6, 0.6)
    from support.reports.clusters import typical_index

    assert typical_index(vectors, [0, 1, 2, 3]) in (1, 2)
    assert typical_index(vectors, [0, 1]) in (0, 1)
    assert cluster_labels(vectors[:1], distance_threshold=0.3) == [0]
    assert cluster_labels(vectors[:0], distance_threshold=0.3) == []


@pytest.mark.django_db
def test_no_gaps_is_an_empty_report() -> None:
    report = gaps_build(start=START, end=NOW, embedder=TopicEmbedder())
    assert report.topics == () and report.questions == 0


def _paraphrase_groups(min_size: int) -> list[list[str]]:
    """doc2dial first-turn questions grouped by their annotated grounding span."""
    groups: dict[tuple[str, int, int], list[str]] = defaultdict(list)
    with (EVAL / "questions.jsonl").open(encoding="utf-8") as fh:
        for row in map(json.loads, filter(str.strip, fh)):
            span = row.get("grounding_span") or {}
            if span.get("doc_id"):
                groups[(span["doc_id"], span["start"], span["end"])].append(row["question"])
    return [g for _, g in sorted(groups.items()) if len(g) >= min_size]


@pytest.mark.skipif(not EVAL.is_dir(), reason="needs ../shared/eval/doc2dial")
def test_clustering_groups_real_paraphrases(real_embedder: Any) -> None:  # noqa: F811
    """Real crowd-written questions answered by the same passage land in one topic, and
    topics do not mix groups (at the threshold bench/gaps_fit.py chose)."""
    groups = _paraphrase_groups(min_size=3)
    assert len(groups) >= 8
    texts = [q for g in groups for q in g]
    truth = [i for i, g in enumerate(groups) for _ in g]
    labels = cluster_labels(
        real_embedder.encode(texts), distance_threshold=DEFAULT_DISTANCE_THRESHOLD
    )
    from sklearn.metrics import adjusted_rand_score

    by_topic: dict[int, Counter[int]] = defaultdict(Counter)
    for label, group in zip(labels, truth, strict=True):
        by_topic[label][group] += 1
    purity = sum(c.most_common(1)[0][1] for c in by_topic.values()) / len(texts)
    ari = adjusted_rand_score(truth, labels)
    assert purity >= 0.8, (purity, ari)
    assert ari >= 0.4, (purity, ari)
    # Most groups have a topic holding at least half of their questions.
    together = 0
    for i, g in enumerate(groups):
        topic_counts = Counter(label for label, t in zip(labels, truth, strict=True) if t == i)
        together += topic_counts.most_common(1)[0][1] * 2 >= len(g)
    assert together >= 0.7 * len(groups)
    # And with everything merged (a threshold far too high) the test would fail.
    merged = cluster_labels(real_embedder.encode(texts), distance_threshold=1.5)
    assert adjusted_rand_score(truth, merged) < 0.1


# --- runs, drafts and publishing (support.reports.articles) ---------------------------------
class BrokenChatModel(FakeChatModel):
    """A chat model whose generation fails (a missing file, a crashed backend)."""

    def stream(self, prompt_ids: Any, params: Any, should_stop: Any = None) -> Any:
        raise GenerationError("the model file is gone")


@pytest.fixture
def topic_backends() -> Any:
    backends.set_backend("embedder", TopicEmbedder())
    model = FakeChatModel("Yes: you can get a refund within 90 days.")
    backends.set_backend("chat_model", model)
    yield model
    backends.reset_backends()


@pytest.fixture
def run(gaps_data: None, topic_backends: Any, django_capture_on_commit_callbacks: Any) -> GapRun:
    with django_capture_on_commit_callbacks(execute=True):
        requested = articles.gaps_run_request(days=30)
    requested.refresh_from_db()
    return requested


def _topic_index(run: GapRun, word: str) -> int:
    return next(i for i, t in enumerate(run.topics) if word in t["name"].lower())


def test_run_computed_by_the_task(run: GapRun) -> None:
    assert run.state == GapRun.State.DONE and run.finished_at is not None
    assert run.embedder == "fake-topics"
    assert run.distance_threshold == DEFAULT_DISTANCE_THRESHOLD
    assert articles.gaps_run_latest() == run
    assert articles.gaps_run_pending() is None
    assert [t.volume for t in articles.run_topics(run)] == sorted(
        (t.volume for t in articles.run_topics(run)), reverse=True
    )


@pytest.mark.django_db
def test_failed_run_is_stored_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**_: Any) -> Any:
        raise RuntimeError("embedder exploded")

    monkeypatch.setattr(articles, "gaps_build", boom)
    start, end = NOW - timedelta(days=1), NOW
    queued = GapRun.objects.create(start=start, end=end)
    done = articles.gaps_run_execute(run_id=queued.pk)
    assert done is not None and done.state == GapRun.State.FAILED
    assert "exploded" in done.error
    assert articles.gaps_run_execute(run_id=queued.pk).state == GapRun.State.FAILED  # type: ignore[union-attr]
    assert articles.gaps_run_execute(run_id=999_999) is None


def test_draft_proposed_by_the_model(
    run: GapRun, topic_backends: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        draft = articles.article_draft_request(
            run_id=run.pk, topic_index=_topic_index(run, "refund")
        )
    draft.refresh_from_db()
    assert draft.state == ArticleDraft.State.DRAFT
    assert draft.written_by == ArticleDraft.Writer.MODEL
    assert draft.body == "Yes: you can get a refund within 90 days."
    assert "refund" in draft.title.lower()
    prompt = topic_backends.prompts[-1]
    assert "Yes, within 90 days." in prompt  # the agents' answer is what the model drafts from
    assert "FAQ" in prompt


@pytest.mark.parametrize(
    "model",
    [
        BrokenChatModel(),
        FakeChatModel(""),
        # Words the agents never wrote (a small model wandering off): set aside.
        FakeChatModel("Refunds go back to the card you paid with within 5 business days."),
    ],
    ids=["fails", "empty", "unsupported"],
)
def test_draft_falls_back_to_the_most_typical_agent_answer(
    run: GapRun, model: Any, django_capture_on_commit_callbacks: Any
) -> None:
    backends.set_backend("chat_model", model)
    with django_capture_on_commit_callbacks(execute=True):
        draft = articles.article_draft_request(
            run_id=run.pk, topic_index=_topic_index(run, "password")
        )
    draft.refresh_from_db()
    assert draft.state == ArticleDraft.State.DRAFT
    assert draft.written_by == ArticleDraft.Writer.FALLBACK
    assert draft.body == "Settings > Security > Change password."
    assert draft.note


def test_topic_without_agent_answers_is_not_sent_to_the_model(
    run: GapRun, topic_backends: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        draft = articles.article_draft_request(
            run_id=run.pk, topic_index=_topic_index(run, "parking")
        )
    assert draft.state == ArticleDraft.State.DRAFT and draft.body == ""
    assert draft.written_by == ArticleDraft.Writer.NONE
    assert topic_backends.calls == 0
    with pytest.raises(articles.DraftRefused):
        articles.article_draft_request(run_id=run.pk, topic_index=99)


def test_publish_creates_and_ingests_a_document(
    kb_env: Path,  # noqa: F811
    gaps_data: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    backends.set_backend("chat_model", FakeChatModel("unused"))
    from support.reports.gaps import gaps_build

    report = gaps_build(start=START, end=NOW, embedder=TopicEmbedder())
    done = GapRun.objects.create(
        start=START, end=NOW, state=GapRun.State.DONE, topics=[t.as_dict() for t in report.topics]
    )
    index = _topic_index(done, "password")
    draft = articles.article_draft_request(run_id=done.pk, topic_index=index)
    user = UserFactory(groups=[roles.SUPPORT_MANAGERS, roles.KNOWLEDGE_ADMINS])
    body = "Open Settings, then Security, and choose Change password. The link lasts one hour."
    with django_capture_on_commit_callbacks(execute=True):
        published = articles.article_publish(
            draft_id=draft.pk, title="How do I change my password?", body=body, user=user
        )
    doc = KnowledgeDocument.objects.get(pk=published.document_id)
    assert published.state == ArticleDraft.State.PUBLISHED and published.published_at
    assert doc.title == "How do I change my password?" and doc.uploaded_by == user
    assert doc.status == KnowledgeDocument.Status.READY, doc.error
    assert doc.chunk_count >= 1
    assert "Change password" in " ".join(doc.chunks.values_list("text", flat=True))
    with pytest.raises(articles.DraftRefused):
        articles.article_publish(draft_id=draft.pk, title="again", body=body, user=user)
    with pytest.raises(articles.DraftRefused):
        articles.article_save(draft_id=draft.pk, title="x", body="y")


@pytest.mark.django_db
def test_publish_refuses_an_empty_article() -> None:
    draft = ArticleDraft.objects.create(title="T", body="", state=ArticleDraft.State.DRAFT)
    with pytest.raises(articles.DraftRefused):
        articles.article_publish(draft_id=draft.pk, title="T", body="  ")
    assert not KnowledgeDocument.objects.exists()


# --- the admin pages --------------------------------------------------------------------------
GAPS_URL = "/admin/support/gaprun/"


def _client(*groups: str) -> Client:
    client = Client()
    client.force_login(UserFactory(groups=list(groups)))
    return client


def test_gaps_page_for_managers_only(run: GapRun) -> None:
    manager = _client(roles.SUPPORT_MANAGERS)
    page = manager.get(GAPS_URL)
    assert page.status_code == 200
    html = page.content.decode()
    for t in run.topics:
        assert t["name"] in html
    assert "Draft an article" in html and "Yes, within 90 days." in html
    for refused in (_client(roles.SUPPORT_AGENTS), _client(roles.KNOWLEDGE_ADMINS)):
        assert refused.get(GAPS_URL).status_code == 403
        assert refused.post(f"{GAPS_URL}{run.pk}/draft/0/").status_code == 403
        assert refused.post(f"{GAPS_URL}recompute/").status_code == 403
    assert not ArticleDraft.objects.exists()


def test_draft_edit_and_publish_in_the_admin(
    run: GapRun,
    kb_env: Path,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    backends.set_backend("embedder", TopicEmbedder())
    backends.set_backend("chat_model", FakeChatModel("Use the reset link we e-mail you."))
    manager = _client(roles.SUPPORT_MANAGERS)
    with django_capture_on_commit_callbacks(execute=True):
        drafted = manager.post(f"{GAPS_URL}{run.pk}/draft/{_topic_index(run, 'password')}/")
    assert drafted.status_code == 302
    draft = ArticleDraft.objects.get()
    edit_url = f"/admin/support/articledraft/{draft.pk}/edit/"
    assert drafted["Location"] == edit_url
    page = manager.get(edit_url)
    assert page.status_code == 200 and "Use the reset link we e-mail you." in page.content.decode()
    assert manager.post(edit_url, {"title": "Password reset", "body": "Edited."}).status_code == 302
    draft.refresh_from_db()
    assert (draft.body, draft.written_by) == ("Edited.", ArticleDraft.Writer.PERSON)
    # A manager without the knowledge-admin role may edit but not publish.
    refused = manager.post(edit_url, {"title": "Password reset", "body": "Edited.", "publish": "1"})
    assert refused.status_code == 403 and not KnowledgeDocument.objects.exists()
    assert _client(roles.SUPPORT_AGENTS).get(edit_url).status_code == 403
    both = _client(roles.SUPPORT_MANAGERS, roles.KNOWLEDGE_ADMINS)
    with django_capture_on_commit_callbacks(execute=True):
        done = both.post(
            edit_url, {"title": "Password reset", "body": "Use the reset link.", "publish": "1"}
        )
    assert done.status_code == 302
    draft.refresh_from_db()
    assert draft.state == ArticleDraft.State.PUBLISHED
    assert draft.document is not None and draft.document.title == "Password reset"
    assert manager.get("/admin/support/articledraft/").status_code == 200
