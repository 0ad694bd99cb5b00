"""Examples: resolved exchanges the bot learns from, and their review (docs/learning.md).

Sources, each a service called on commit by a thin task or by the import command:

- `examples_from_conversation`: the agent's reply in an escalated conversation that ended
  resolved. The question is the customer's messages since the last bot turn (before the reply),
  the history the visible turns before them, the answer the agent's last reply burst.
- `example_from_feedback`: a bot answer the customer rated helpful (a thumbs down later
  withdraws an example nobody reviewed).
- `examples_import`: past exchanges, one JSON object per line (the `examples_import` command).

Every text is redacted (support.learning.redact) before it is stored; values the knowledge base
publishes (the company's phone numbers, its support address) are kept. Grounding comes from
support.learning.grounding. Whether an example waits for review is a setting per source
(SUPPORT_EXAMPLES_AUTO_APPROVE); held-back examples (SUPPORT_EXAMPLES_HELD_BACK_PERCENT, split by
conversation) are for evaluation only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, QuerySet, Sum
from django.utils import timezone

from .. import jobs
from ..answers.words import strip_citations
from ..conf import get_support_settings
from ..handoff.escalation_rules.decide import accepts_person_offer
from ..handoff.escalation_rules.request import asks_for_person
from ..models import Chunk, Conversation, KnowledgeDocument, Message
from ..models_learning import Example, ExampleGrounding
from .grounding import (
    NO_GROUNDING,
    Chosen,
    Grounding,
    document_find,
    grounding_choose,
    grounding_store,
)
from .redact import PublicValues, public_values_of, redact

logger = logging.getLogger(__name__)

Source = Example.Source
State = Example.State
Method = Example.GroundingMethod

# Turns kept before a question (the oldest go first).
MAX_HISTORY_TURNS: Final = 20
MAX_QUESTION_CHARS: Final = 4000
MAX_ANSWER_CHARS: Final = 8000
MAX_TURN_CHARS: Final = 4000
MAX_ID_CHARS: Final = 200
MAX_LINE_BYTES: Final = 1024 * 1024
IMPORT_FIELDS: Final = frozenset({"id", "question", "history", "answer", "document"})
IMPORT_ROLES: Final = ("user", "agent")


# --- what every source shares ---------------------------------------------------------------
def split_key_of(*, conversation_id: UUID | None, question: str, history: Sequence[Any]) -> str:
    """The key that keeps one conversation's examples on one side of the held-back split: the
    conversation's id, or without one (imports) a hash of the exchange's opening customer turn,
    which every later turn of the same conversation repeats in its history."""
    if conversation_id is not None:
        return conversation_id.hex
    opening = question
    for turn in history:
        if isinstance(turn, Mapping) and turn.get("role") == "user" and turn.get("text"):
            opening = str(turn["text"])
            break
    normal = " ".join(opening.split()).casefold()
    return "q:" + hashlib.sha256(normal.encode("utf-8")).hexdigest()[:40]


def held_back_of(split_key: str, *, percent: int | None = None) -> bool:
    """Whether examples with this split key are held back (a stable hash bucket of the key)."""
    share = get_support_settings().examples_held_back_percent if percent is None else percent
    bucket = int(hashlib.sha256(split_key.encode("utf-8")).hexdigest()[:8], 16) % 100
    return bucket < share


_public_lock = threading.Lock()
_public: tuple[tuple[Any, ...], PublicValues] | None = None


def public_values() -> PublicValues:
    """The e-mail addresses and numbers the knowledge base publishes (never redacted), read
    again whenever the chunks changed."""
    global _public
    chunks = Chunk.objects.filter(document__status=KnowledgeDocument.Status.READY)
    # Chunks are only ever replaced, never edited: new rows, new creation times.
    agg = chunks.aggregate(n=Count("pk"), top=Max("pk"), total=Sum("pk"), at=Max("created_at"))
    stamp = (agg["n"], agg["top"], agg["total"], agg["at"])
    cached = _public
    if cached is not None and cached[0] == stamp:
        return cached[1]
    values = public_values_of(chunks.values_list("text", flat=True).iterator(chunk_size=500))
    with _public_lock:
        _public = (stamp, values)
    return values


@dataclass(frozen=True, slots=True)
class Exchange:
    """An exchange before redaction: what an example is made of."""

    question: str
    history: tuple[dict[str, str], ...]
    answer: str
    citations: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class RedactedExchange:
    question: str
    history: list[dict[str, str]]
    answer: str
    redactions: int


def exchange_redact(exchange: Exchange, *, public: PublicValues | None = None) -> RedactedExchange:
    """The exchange's question, history and answer with personal data replaced."""
    known = public_values() if public is None else public
    count = 0

    def clean(text: str) -> str:
        nonlocal count
        result = redact(text, public=known)
        count += result.count
        return result.text

    question = clean(exchange.question)
    history = [{"role": t["role"], "text": clean(t["text"])} for t in exchange.history]
    answer = clean(exchange.answer)
    return RedactedExchange(question, history, answer, count)


def _auto_approved(source: str) -> bool:
    return source in get_support_settings().examples_auto_approve


def _store(
    *,
    source: str,
    exchange: Exchange,
    grounding: Grounding,
    approve: bool,
    conversation_id: UUID | None = None,
    answer_message_id: int | None = None,
    external_id: str | None = None,
    document_hint: str = "",
    public: PublicValues | None = None,
) -> Example:
    """Redact and store one example with its grounding (raises IntegrityError for a second
    example of the same answer message or import id)."""
    clean = exchange_redact(exchange, public=public)
    key = split_key_of(
        conversation_id=conversation_id, question=exchange.question, history=exchange.history
    )
    now = timezone.now()
    with transaction.atomic():
        example = Example.objects.create(
            question=clean.question,
            history=clean.history,
            answer=clean.answer,
            source=source,
            state=State.APPROVED if approve else State.PENDING,
            reviewed_at=now if approve else None,
            knowledge_gap=grounding.knowledge_gap,
            grounding_method=grounding.method,
            external_id=external_id,
            document_hint=document_hint[:300],
            conversation_id=conversation_id,
            answer_message_id=answer_message_id,
            split_key=key,
            held_back=held_back_of(key),
            redactions=clean.redactions,
        )
        grounding_store(example, grounding)
    return example


def memory_changed() -> None:
    """The question memory's examples changed: publish a new index version on commit (the
    rebuild is skipped when nothing it reads changed, so a burst of calls costs one build)."""
    jobs.index_rebuild_enqueue()


def _turn(message: Message) -> dict[str, str]:
    return {
        "role": "user" if message.role == Message.Role.CUSTOMER else "agent",
        "text": message.text,
    }


def _visible(conversation: Conversation) -> list[Message]:
    return [
        m
        for m in conversation.messages.filter(internal=False).order_by("created_at", "pk")
        if m.role != Message.Role.SYSTEM
    ]


# --- source: an agent's reply in a resolved escalated conversation ---------------------------
# A message of at most this many words that asks for a person (or says yes to the offer of
# one) is no question to learn from.
HANDOFF_WORDS_MAX: Final = 10


def _asks_something(message: Message) -> bool:
    """A customer message with a question in it: not just "a person please" or "yes"."""
    text = message.text
    if len(text.split()) > HANDOFF_WORDS_MAX:
        return True
    return not (asks_for_person(text) or accepts_person_offer(text))


def exchange_of_agent_reply(messages: Sequence[Message]) -> tuple[Exchange, Message] | None:
    """The exchange an agent resolved, from a conversation's visible messages in order.

    The answer is the agent's last reply burst that follows a customer message after the last
    bot turn. The question is the customer's messages since that bot turn (before the burst),
    leaving out mere requests for a person; when nothing else is left, it is the customer's
    messages the last bot turn failed to answer. The history is the turns before the question.
    Agent turns between the question's messages (a clarifying question) are not part of it.
    None when the agent never answered a customer question.
    """
    last_bot = max((i for i, m in enumerate(messages) if m.role == Message.Role.BOT), default=-1)
    tail = list(messages[last_bot + 1 :])
    end = None
    for i in range(len(tail) - 1, -1, -1):
        if tail[i].role == Message.Role.AGENT and any(
            m.role == Message.Role.CUSTOMER for m in tail[:i]
        ):
            end = i
            break
    if end is None:
        return None
    start = end
    while start > 0 and tail[start - 1].role == Message.Role.AGENT:
        start -= 1
    burst = tail[start : end + 1]
    asked = [m for m in tail[:start] if m.role == Message.Role.CUSTOMER and _asks_something(m)]
    if not asked and last_bot >= 0:
        # "A person please" after a bot answer that did not help: the question is what the
        # bot was asked.
        first = last_bot
        while first > 0 and messages[first - 1].role == Message.Role.CUSTOMER:
            first -= 1
        asked = [m for m in messages[first:last_bot] if _asks_something(m)]
    if not asked:
        return None
    first = messages.index(asked[0])
    history = tuple(_turn(m) for m in messages[:first][-MAX_HISTORY_TURNS:])
    citations = tuple(c for m in burst for c in (m.citations or []) if isinstance(c, Mapping))
    exchange = Exchange(
        question="\n".join(m.text for m in asked),
        history=history,
        answer="\n\n".join(m.text for m in burst),
        citations=citations,
    )
    return exchange, burst[-1]


def examples_from_conversation(*, conversation_id: UUID) -> Example | None:
    """Make the pending (or auto-approved) example of a resolved escalated conversation from the
    agent's reply; idempotent (one example per reply). None when there is nothing to learn."""
    conv = Conversation.objects.filter(pk=conversation_id).first()
    if conv is None or conv.status != Conversation.Status.RESOLVED:
        return None
    if not conv.escalations.exists():
        return None
    found = exchange_of_agent_reply(_visible(conv))
    if found is None:
        return None
    exchange, reply = found
    existing = Example.objects.filter(answer_message=reply).first()
    if existing is not None:
        return existing
    grounding = grounding_choose(answer=exchange.answer, citations=exchange.citations)
    try:
        example = _store(
            source=Source.AGENT_REPLY,
            exchange=exchange,
            grounding=grounding,
            approve=_auto_approved(Source.AGENT_REPLY),
            conversation_id=conv.pk,
            answer_message_id=reply.pk,
        )
    except IntegrityError:  # a concurrent run stored it first
        return Example.objects.filter(answer_message=reply).first()
    if example.state == State.APPROVED:
        memory_changed()
    return example


# --- source: a bot answer rated helpful -------------------------------------------------------
ANSWER_ACTIONS: Final = (Message.Action.ANSWER, Message.Action.EXTRACTIVE)


def exchange_of_bot_answer(messages: Sequence[Message], answer: Message) -> Exchange | None:
    """The exchange of one bot answer: the customer messages right before it (the burst it
    answered) as the question, the turns before them as history."""
    if answer not in messages:
        return None
    at = messages.index(answer)
    start = at
    while start > 0 and messages[start - 1].role == Message.Role.CUSTOMER:
        start -= 1
    asked = messages[start:at]
    if not asked:
        return None
    text = strip_citations(answer.text)
    if not text:
        return None
    return Exchange(
        question="\n".join(m.text for m in asked),
        history=tuple(_turn(m) for m in messages[:start][-MAX_HISTORY_TURNS:]),
        answer=text,
        citations=tuple(c for c in (answer.citations or []) if isinstance(c, Mapping)),
    )


def example_from_feedback(*, message_id: int) -> Example | None:
    """Follow the customer's rating of a bot answer: a thumbs up makes an example of it
    (idempotent); a thumbs down withdraws (rejects) one that no person reviewed."""
    msg = (
        Message.objects.select_related("conversation", "feedback")
        .filter(pk=message_id, role=Message.Role.BOT)
        .first()
    )
    if msg is None:
        return None
    feedback = getattr(msg, "feedback", None)
    existing = Example.objects.filter(answer_message=msg).first()
    if feedback is None or feedback.value != "up":
        if existing is not None and existing.reviewed_by_id is None:
            with transaction.atomic():
                Example.objects.filter(pk=existing.pk).update(
                    state=State.REJECTED, reviewed_at=timezone.now(), updated_at=timezone.now()
                )
                memory_changed()
            existing.refresh_from_db()
        return existing
    if existing is not None or msg.action not in ANSWER_ACTIONS:
        return existing
    exchange = exchange_of_bot_answer(_visible(msg.conversation), msg)
    if exchange is None:
        return None
    grounding = grounding_choose(answer=exchange.answer, citations=exchange.citations)
    try:
        example = _store(
            source=Source.RATED_HELPFUL,
            exchange=exchange,
            grounding=grounding,
            approve=_auto_approved(Source.RATED_HELPFUL),
            conversation_id=msg.conversation_id,
            answer_message_id=msg.pk,
        )
    except IntegrityError:
        return Example.objects.filter(answer_message=msg).first()
    if example.state == State.APPROVED:
        memory_changed()
    return example


# --- source: an import ------------------------------------------------------------------------
ImportOutcome = Literal["imported", "duplicate", "error"]


@dataclass(frozen=True, slots=True)
class ImportLine:
    """What became of one line of an import file."""

    line: int
    outcome: ImportOutcome
    external_id: str | None = None
    example_id: int | None = None
    detail: str = ""

    def render(self) -> str:
        ident = f" {json.dumps(self.external_id)}" if self.external_id is not None else ""
        if self.outcome == "error":
            return f"line {self.line}: error{ident}: {self.detail}"
        tail = f" ({self.detail})" if self.detail else ""
        return f"line {self.line}: {self.outcome}{ident} -> example #{self.example_id}{tail}"


@dataclass(slots=True)
class ImportSummary:
    lines: int = 0
    imported: int = 0
    duplicate: int = 0
    error: int = 0
    approved: int = 0
    knowledge_gaps: int = 0
    held_back: int = 0
    redactions: int = 0
    results: list[ImportLine] = field(default_factory=list)

    def add(self, result: ImportLine) -> None:
        self.lines += 1
        setattr(self, result.outcome, getattr(self, result.outcome) + 1)

    def render(self) -> str:
        return (
            f"{self.lines} line(s): {self.imported} imported, {self.duplicate} duplicate, "
            f"{self.error} error(s); of the imported: {self.approved} approved, "
            f"{self.knowledge_gaps} knowledge gap(s), {self.held_back} held back; "
            f"{self.redactions} piece(s) of personal data redacted"
        )


@dataclass(frozen=True, slots=True)
class ImportItem:
    external_id: str
    exchange: Exchange
    document: str


class ImportLineError(ValueError):
    """A line that breaks the import contract; the message says how."""


def _text(value: Any, name: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ImportLineError(f'"{name}" must be a string')
    text = value.replace("\x00", "").strip()
    if required and not text:
        raise ImportLineError(f'"{name}" is empty')
    if len(text) > limit:
        raise ImportLineError(f'"{name}" is longer than {limit} characters')
    return text


def import_line_parse(raw: str) -> ImportItem:
    """One line of an import file, checked against the contract (docs/learning.md):
    `{"id": str, "question": str, "history": [{"role": "user"|"agent", "text": str}]?,
    "answer": str, "document": str?}`. Raises ImportLineError with the reason."""
    if not raw.strip():
        raise ImportLineError("empty line")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ImportLineError(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ImportLineError("not a JSON object")
    unknown = sorted(set(data) - IMPORT_FIELDS)
    if unknown:
        raise ImportLineError(f"unknown field(s) {', '.join(map(json.dumps, unknown))}")
    for name in ("id", "question", "answer"):
        if name not in data:
            raise ImportLineError(f'"{name}" is missing')
    if not isinstance(data["id"], str):
        raise ImportLineError('"id" must be a string')
    ident = _text(data["id"], "id", MAX_ID_CHARS)
    question = _text(data["question"], "question", MAX_QUESTION_CHARS)
    answer = _text(data["answer"], "answer", MAX_ANSWER_CHARS)
    raw_history = data.get("history")
    history: list[dict[str, str]] = []
    if raw_history is not None:
        if not isinstance(raw_history, list):
            raise ImportLineError('"history" must be a list of turns')
        for n, turn in enumerate(raw_history, start=1):
            if not isinstance(turn, dict) or set(turn) != {"role", "text"}:
                raise ImportLineError(f'history turn {n} must be {{"role": ..., "text": ...}}')
            if turn["role"] not in IMPORT_ROLES:
                raise ImportLineError(f'history turn {n}: "role" must be "user" or "agent"')
            text = _text(turn["text"], f"history turn {n} text", MAX_TURN_CHARS, required=False)
            if text:
                history.append({"role": turn["role"], "text": text})
    document = data.get("document")
    if document is not None and not isinstance(document, str):
        raise ImportLineError('"document" must be a string')
    exchange = Exchange(question, tuple(history[-MAX_HISTORY_TURNS:]), answer)
    return ImportItem(ident, exchange, (document or "").strip()[:300])


def _decode(raw: str | bytes) -> str:
    if isinstance(raw, str):
        return raw.rstrip("\r\n")
    if len(raw) > MAX_LINE_BYTES:
        raise ImportLineError(f"longer than {MAX_LINE_BYTES} bytes")
    try:
        return raw.decode("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8").rstrip(
            "\r\n"
        )
    except UnicodeDecodeError as exc:
        raise ImportLineError(f"not UTF-8 (byte {exc.start + 1})") from None


def _import_one(
    number: int, raw: str | bytes, *, approve: bool, summary: ImportSummary, public: PublicValues
) -> ImportLine:
    try:
        item = import_line_parse(_decode(raw))
    except ImportLineError as exc:
        return ImportLine(number, "error", detail=str(exc))
    existing = Example.objects.filter(external_id=item.external_id).values_list("pk", flat=True)
    if existing:
        return ImportLine(number, "duplicate", item.external_id, existing[0])
    notes = []
    document_id = None
    if item.document:
        doc = document_find(item.document)
        if doc is None:
            notes.append(f"document {json.dumps(item.document)} not found; grounding inferred")
        else:
            document_id = doc.pk
    grounding = grounding_choose(answer=item.exchange.answer, document_id=document_id)
    try:
        example = _store(
            source=Source.IMPORT,
            exchange=item.exchange,
            grounding=grounding,
            approve=approve,
            external_id=item.external_id,
            document_hint=item.document,
            public=public,
        )
    except IntegrityError:
        again = Example.objects.filter(external_id=item.external_id).values_list("pk", flat=True)
        if again:
            return ImportLine(number, "duplicate", item.external_id, again[0])
        raise
    notes.insert(0, example.state)
    if example.knowledge_gap:
        notes.append("knowledge gap")
        summary.knowledge_gaps += 1
    if example.held_back:
        notes.append("held back")
        summary.held_back += 1
    if example.redactions:
        notes.append(f"{example.redactions} redacted")
        summary.redactions += example.redactions
    if example.state == State.APPROVED:
        summary.approved += 1
    return ImportLine(number, "imported", item.external_id, example.pk, ", ".join(notes))


def examples_import(
    *, lines: Iterable[str | bytes], approve: bool = False, summary: ImportSummary | None = None
) -> Iterator[ImportLine]:
    """Import past exchanges, one JSON object per line (text, or bytes decoded line by line
    as UTF-8); yields what became of each line as it
    goes (a bad line is an "error" result, never the end of the import). `approve` (or
    "import" in SUPPORT_EXAMPLES_AUTO_APPROVE) stores them approved; `summary` is filled in.
    The question memory is not rebuilt here: the command does it once at the end (or the next
    index sync does)."""
    totals = summary if summary is not None else ImportSummary()
    approve = approve or _auto_approved(Source.IMPORT)
    public = public_values()  # once: an import changes no chunk
    for number, raw in enumerate(lines, start=1):
        try:
            result = _import_one(number, raw, approve=approve, summary=totals, public=public)
        except Exception as exc:  # a database or model failure on this line only
            logger.exception("Importing line %s failed", number)
            result = ImportLine(number, "error", detail=f"internal error: {type(exc).__name__}")
        totals.add(result)
        yield result


# --- review -----------------------------------------------------------------------------------
def examples_review(*, example_ids: Sequence[int], state: str, by: Any) -> int:
    """Approve or reject examples (in bulk) as `by`; returns how many changed state. The
    question memory is rebuilt on commit when any did."""
    if state not in (State.APPROVED, State.REJECTED):
        raise ValueError(f"examples can be approved or rejected, not {state!r}")
    now = timezone.now()
    with transaction.atomic():
        changed = (
            Example.objects.filter(pk__in=list(example_ids))
            .exclude(state=state)
            .update(state=state, reviewed_by=by, reviewed_at=now, updated_at=now)
        )
        if changed:
            memory_changed()
        return changed


def example_edit(
    *,
    example_id: int,
    answer: str | None = None,
    chunk_ids: Sequence[int] | None = None,
    by: Any = None,
) -> Example:
    """Change an example's answer text (redacted again) and/or its grounding chunks (chosen by a
    reviewer; none left makes it a knowledge gap). The state stays as it is; a new grounding of
    an approved example rebuilds the question memory on commit."""
    with transaction.atomic():
        example = Example.objects.select_for_update().get(pk=example_id)
        fields = ["updated_at"]
        if answer is not None:
            text = answer.strip()
            if not text:
                raise ValueError("the answer cannot be empty")
            cleaned = redact(text, public=public_values())
            if cleaned.text != example.answer:
                example.answer = cleaned.text
                example.redactions += cleaned.count
                fields += ["answer", "redactions"]
        if chunk_ids is not None:
            wanted = list(dict.fromkeys(int(i) for i in chunk_ids))
            current = list(
                ExampleGrounding.objects.filter(example=example).values_list("chunk_id", flat=True)
            )
            if wanted != current:
                chunks = {c.pk: c for c in Chunk.objects.filter(pk__in=wanted)}
                chosen = tuple(
                    Chosen(c.pk, c.document_id, c.order, c.text, None)
                    for c in (chunks.get(i) for i in wanted)
                    if c is not None
                )
                grounding = Grounding(Method.REVIEWER, chosen) if chosen else NO_GROUNDING
                grounding_store(example, grounding)
                example.grounding_method = grounding.method
                example.knowledge_gap = grounding.knowledge_gap
                fields += ["grounding_method", "knowledge_gap"]
                if example.state == State.APPROVED:
                    memory_changed()
        example.save(update_fields=fields)
    return example


# --- reads ------------------------------------------------------------------------------------
def example_counts() -> dict[str, int]:
    """How many examples are in each review state (every state present, 0 when none)."""
    counts = dict.fromkeys(State.values, 0)
    for row in Example.objects.values("state").annotate(n=Count("pk")):
        counts[row["state"]] = row["n"]
    return counts


def examples_for_training() -> QuerySet[Example]:
    """Approved examples with grounding that may be learned from (not held back, no gap)."""
    return Example.objects.filter(
        state=State.APPROVED, knowledge_gap=False, held_back=False, grounding__chunk__isnull=False
    ).distinct()


def examples_held_back() -> QuerySet[Example]:
    """Approved, grounded examples of the held-back slice: evaluated on, never trained on."""
    return Example.objects.filter(
        state=State.APPROVED, knowledge_gap=False, held_back=True, grounding__chunk__isnull=False
    ).distinct()
