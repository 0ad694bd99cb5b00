"""Knowledge gaps (docs/reports.md, "Knowledge gaps"): the questions the knowledge base could not
answer, grouped by meaning into topics a person can turn into articles.

What counts as a gap question, in a window of time:

- `declined`: a customer message the bot declined ("not sure", `Message.action` escalate),
  with the agent's answer when the conversation's example (below) holds it;
- `unsupported`: an escalated question whose agent answer no chunk supports (an `Example` with
  `knowledge_gap`, source agent_reply; not rejected by a reviewer);
- `helpful`: a helpful-rated answer no chunk supports (an `Example` with `knowledge_gap`,
  source rated_helpful; the customers rate bot answers, so these are rare).

The questions of this period and of the previous one of equal length are embedded together
(the project's embedder backend) and clustered (support.reports.clusters); each topic is named
by its most typical question, counted in both periods and ranked by volume, then by its change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

import numpy as np

from ..backends import get_embedder
from ..conf import get_support_settings
from ..models import Message
from ..models_learning import Example
from ..search.embedder import Embedder
from .clusters import MAX_CLUSTERED, cluster_labels, typical_index

logger = logging.getLogger(__name__)

# Per topic: example questions and agents' answers kept for the page and the draft.
TOPIC_QUESTIONS: Final = 5
TOPIC_ANSWERS: Final = 5
MAX_TEXT_CHARS: Final = 2000


class GapKind(StrEnum):
    DECLINED = "declined"
    UNSUPPORTED = "unsupported"
    HELPFUL = "helpful"


@dataclass(frozen=True, slots=True)
class GapItem:
    """One gap question: what was asked, the agent's answer if any, when and why it counts."""

    kind: GapKind
    question: str
    answer: str
    at: datetime
    conversation_id: str | None = None
    example_id: int | None = None


@dataclass(frozen=True, slots=True)
class GapTopic:
    """A group of gap questions that ask the same thing."""

    name: str  # the most typical question (closest to the topic's centroid)
    volume: int  # questions in this period
    previous: int  # questions in the previous period of equal length
    kinds: Mapping[str, int]  # this period's questions by GapKind
    questions: tuple[str, ...]  # distinct examples, most typical first
    answers: tuple[str, ...]  # the agents' distinct answers, most typical question first

    @property
    def change(self) -> int:
        return self.volume - self.previous

    @property
    def trend(self) -> str:
        """'new', 'up', 'down' or 'same' against the previous period."""
        if self.previous == 0:
            return "new"
        if self.volume == self.previous:
            return "same"
        return "up" if self.volume > self.previous else "down"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "volume": self.volume,
            "previous": self.previous,
            "kinds": dict(self.kinds),
            "questions": list(self.questions),
            "answers": list(self.answers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GapTopic:
        return cls(
            name=str(data.get("name", "")),
            volume=int(data.get("volume", 0)),
            previous=int(data.get("previous", 0)),
            kinds={str(k): int(v) for k, v in dict(data.get("kinds") or {}).items()},
            questions=tuple(str(q) for q in data.get("questions") or ()),
            answers=tuple(str(a) for a in data.get("answers") or ()),
        )


@dataclass(frozen=True, slots=True)
class GapsReport:
    start: datetime
    end: datetime
    topics: tuple[GapTopic, ...]
    questions: int  # gap questions in this period
    previous_questions: int
    distance_threshold: float
    embedder: str
    truncated: bool = False  # more questions than MAX_CLUSTERED: the oldest were left out
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def previous_start(self) -> datetime:
        return self.start - (self.end - self.start)

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "questions": self.questions,
            "previous_questions": self.previous_questions,
            "distance_threshold": self.distance_threshold,
            "embedder": self.embedder,
            "truncated": self.truncated,
            "topics": [t.as_dict() for t in self.topics],
        }


def _clip(text: str) -> str:
    return " ".join(str(text).split())[:MAX_TEXT_CHARS]


def gap_items_collect(*, start: datetime, end: datetime) -> list[GapItem]:
    """The gap questions asked in [start, end), oldest first (see the module docstring)."""
    items: list[GapItem] = []
    examples = (
        Example.objects.filter(knowledge_gap=True, created_at__gte=start, created_at__lt=end)
        .filter(source__in=(Example.Source.AGENT_REPLY, Example.Source.RATED_HELPFUL))
        .exclude(state=Example.State.REJECTED)
        .values_list("pk", "question", "answer", "source", "created_at", "conversation_id")
    )
    by_conversation: dict[str, list[str]] = {}
    for pk, question, answer, source, at, conversation_id in examples:
        conv = conversation_id.hex if conversation_id is not None else None
        kind = GapKind.UNSUPPORTED if source == Example.Source.AGENT_REPLY else GapKind.HELPFUL
        if not _clip(question):
            continue
        items.append(GapItem(kind, _clip(question), _clip(answer), at, conv, pk))
        if conv is not None and kind is GapKind.UNSUPPORTED:
            by_conversation.setdefault(conv, []).append(_clip(question).casefold())
    declines = (
        Message.objects.filter(
            role=Message.Role.BOT,
            action=Message.Action.ESCALATE,
            in_reply_to__isnull=False,
            created_at__gte=start,
            created_at__lt=end,
        )
        .exclude(in_reply_to__text="")
        .values_list("in_reply_to__text", "created_at", "conversation_id")
    )
    for text, at, conversation_id in declines:
        question = _clip(text)
        conv = conversation_id.hex
        # The agent's example of this conversation already counts this question (its question
        # is the customer's turns before the reply, which include the declined one).
        if question and any(question.casefold() in q for q in by_conversation.get(conv, ())):
            continue
        if question:
            items.append(GapItem(GapKind.DECLINED, question, "", at, conv))
    items.sort(key=lambda i: i.at)
    return items


def _distinct(texts: Iterable[str], limit: int) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            out.append(text)
            if len(out) == limit:
                break
    return tuple(out)


def topics_rank(topics: Iterable[GapTopic]) -> list[GapTopic]:
    """Most questions first; among equals the fastest growing, then by name."""
    return sorted(topics, key=lambda t: (-t.volume, -t.change, t.name.casefold()))


def topics_build(
    items: Sequence[GapItem],
    *,
    start: datetime,
    embedder: Embedder,
    distance_threshold: float,
) -> list[GapTopic]:
    """Cluster the items (this period: at >= start; before it: the previous period) into
    ranked topics; a topic with no question in this period is left out."""
    if not items:
        return []
    vectors = np.asarray(embedder.encode([i.question for i in items]), dtype=np.float32)
    labels = cluster_labels(vectors, distance_threshold=distance_threshold)
    members: dict[int, list[int]] = {}
    for row, label in enumerate(labels):
        members.setdefault(label, []).append(row)
    topics: list[GapTopic] = []
    for rows in members.values():
        current = [r for r in rows if items[r].at >= start]
        if not current:
            continue
        typical = typical_index(vectors, current)
        centroid = vectors[current].mean(axis=0)
        ordered = sorted(current, key=lambda r: -float(vectors[r] @ centroid))
        kinds: dict[str, int] = {}
        for r in current:
            kinds[items[r].kind.value] = kinds.get(items[r].kind.value, 0) + 1
        topics.append(
            GapTopic(
                name=items[typical].question,
                volume=len(current),
                previous=len(rows) - len(current),
                kinds=kinds,
                questions=_distinct((items[r].question for r in ordered), TOPIC_QUESTIONS),
                answers=_distinct((items[r].answer for r in ordered), TOPIC_ANSWERS),
            )
        )
    return topics_rank(topics)


def gaps_build(
    *,
    start: datetime,
    end: datetime,
    embedder: Embedder | None = None,
    distance_threshold: float | None = None,
) -> GapsReport:
    """The knowledge-gap topics of [start, end), against the previous period of equal length.

    Embeds the questions (the embedder backend: call it in a worker, never the web process).
    """
    if end <= start:
        raise ValueError("end must be after start")
    threshold = (
        get_support_settings().gaps_distance_threshold
        if distance_threshold is None
        else distance_threshold
    )
    embedder = embedder or get_embedder()
    previous_start = start - (end - start)
    items = gap_items_collect(start=previous_start, end=end)
    truncated = len(items) > MAX_CLUSTERED
    if truncated:
        items = items[-MAX_CLUSTERED:]
    topics = topics_build(items, start=start, embedder=embedder, distance_threshold=threshold)
    current = sum(1 for i in items if i.at >= start)
    return GapsReport(
        start=start,
        end=end,
        topics=tuple(topics),
        questions=current,
        previous_questions=len(items) - current,
        distance_threshold=threshold,
        embedder=embedder.model_name,
        truncated=truncated,
    )


def period_of(*, days: int | None = None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The last `days` (SUPPORT_GAPS_PERIOD_DAYS) up to now."""
    from django.utils import timezone

    end = now or timezone.now()
    return end - timedelta(days=days or get_support_settings().gaps_period_days), end
