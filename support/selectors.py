"""Reads for views and adapters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.db.models import QuerySet

from .exceptions import ConversationNotFound
from .models import Chunk, Conversation, KnowledgeDocument, Message


def conversation_lock(conversation_id: UUID) -> Conversation:
    """The conversation, its row locked until the surrounding transaction ends (every write
    that changes who has a conversation or what it holds takes this lock first);
    ConversationNotFound when it does not exist."""
    conv = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
    if conv is None:
        raise ConversationNotFound("This conversation does not exist.")
    return conv


def public_document_get(*, document_id: int) -> KnowledgeDocument | None:
    """A document customers may read: ready (not disabled, failed or pending)."""
    return KnowledgeDocument.objects.filter(
        pk=document_id, status=KnowledgeDocument.Status.READY
    ).first()


def document_chunks_list(*, document_id: int) -> QuerySet[Chunk]:
    return (
        Chunk.objects.filter(document_id=document_id)
        .order_by("order")
        .only("pk", "order", "text", "heading_path", "page", "anchor")
    )


@dataclass(frozen=True, slots=True)
class TracePassage:
    rank: int
    chunk_id: int | None
    document_id: int | None
    title: str
    heading: str
    score: float | None
    dense: float | None
    lexical: float | None
    text: str
    cited: bool


@dataclass(frozen=True, slots=True)
class AnswerTrace:
    """What produced one bot message (docs/reports.md, "The per-answer trace")."""

    message: Message
    question: str
    query: str
    index_version: Any
    confidence: float | None
    passages: tuple[TracePassage, ...]
    facts: tuple[dict[str, Any], ...]
    stages: tuple[tuple[str, dict[str, Any]], ...]
    timings: dict[str, Any]
    cpu_ms: float | None
    prompt_version: str
    raw: dict[str, Any]


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def answer_trace_get(*, message_id: int) -> AnswerTrace | None:
    """The trace of a bot message (None for another role or an unknown id). Old or partial
    traces read as what they hold: every field is optional."""
    msg = (
        Message.objects.select_related("in_reply_to", "conversation")
        .filter(pk=message_id, role=Message.Role.BOT)
        .first()
    )
    if msg is None:
        return None
    trace = _as_dict(msg.trace)
    stored = {
        p.get("chunk_id"): p for p in (msg.retrieved or []) if isinstance(p, dict)
    }  # the passages as saved with the message (their text, heading)
    listed = [p for p in trace.get("passages") or [] if isinstance(p, dict)]
    if not listed:
        listed = list(stored.values())
    ids: list[int] = [p["chunk_id"] for p in listed if isinstance(p.get("chunk_id"), int)]
    texts = dict(Chunk.objects.filter(pk__in=ids).values_list("pk", "text"))
    cited = {c.get("chunk_id") for c in (msg.citations or []) if isinstance(c, dict)}
    passages = []
    for rank, p in enumerate(listed, start=1):
        chunk_id = p.get("chunk_id")
        saved = _as_dict(stored.get(chunk_id))
        passages.append(
            TracePassage(
                rank=rank,
                chunk_id=chunk_id if isinstance(chunk_id, int) else None,
                document_id=p.get("document_id") or saved.get("document_id"),
                title=str(p.get("title") or saved.get("title") or ""),
                heading=str(saved.get("heading") or ""),
                score=_as_float(p.get("score")),
                dense=_as_float(p.get("dense", p.get("dense_score"))),
                lexical=_as_float(p.get("lexical", p.get("lexical_score"))),
                text=str(
                    saved.get("text")
                    or (texts.get(chunk_id, "") if isinstance(chunk_id, int) else "")
                ),
                cited=chunk_id in cited,
            )
        )
    facts = tuple(f for f in trace.get("facts") or [] if isinstance(f, dict))
    stages = tuple(
        (name, _as_dict(trace.get(key)))
        for key, name in (
            ("decide", "decide"),
            ("recall", "recall (answer memory)"),
            ("generate", "generate"),
            ("check", "check"),
        )
        if trace.get(key)
    )
    timings = {**_as_dict(msg.timings), **_as_dict(trace.get("timings"))}
    generate = _as_dict(trace.get("generate"))
    return AnswerTrace(
        message=msg,
        question=msg.in_reply_to.text if msg.in_reply_to is not None else "",
        query=str(trace.get("query") or ""),
        index_version=trace.get("index_version"),
        confidence=_as_float(trace.get("confidence", msg.retrieval_confidence)),
        passages=tuple(passages),
        facts=facts,
        stages=stages,
        timings=timings,
        cpu_ms=_as_float(trace.get("cpu_ms")),
        prompt_version=msg.prompt_version or str(generate.get("prompt_version") or ""),
        raw=trace,
    )
