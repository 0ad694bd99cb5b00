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

from support.models import Conversation, Example, Message
from support.reports.clusters import DEFAULT_DISTANCE_THRESHOLD, cluster_labels
from support.reports.gaps import GapKind, gap_items_collect, gaps_build
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)

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
