"""One local day's figures, per channel, computed by the database (docs/reports.md).

Every query here aggregates in SQL (grouped counts, sums and histogram buckets), the same on
SQLite and PostgreSQL. The one fold in Python is over the hand-overs' reason lists: a JSON list
has no portable containment query on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, ExtractHour

from ..handoff.escalation_rules.state import LineKind
from ..models import Conversation, Escalation, Feedback, Message
from . import histogram
from .sql import EpochMs, bucket_of
from .tally import Tally

CUSTOMER = Message.Role.CUSTOMER
BOT = Message.Role.BOT
AGENT = Message.Role.AGENT
SYSTEM = Message.Role.SYSTEM
ANSWER_ACTIONS = (Message.Action.ANSWER, Message.Action.EXTRACTIVE)
DECLINE = Message.Action.ESCALATE
CHANNELS: tuple[str, ...] = tuple(Conversation.Channel.values)


@dataclass(frozen=True, slots=True)
class Windows:
    """What a day's figures depend on besides the data: the zone, the windows and `now`."""

    zone: tzinfo
    assumed_after: timedelta
    durable: timedelta
    now: datetime

    def bounds(self, day: date) -> tuple[datetime, datetime]:
        """The UTC instants of the local day [00:00, next 00:00)."""
        start = datetime.combine(day, time.min, tzinfo=self.zone)
        end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=self.zone)
        return start, end


def local_date(moment: datetime, zone: tzinfo | str) -> date:
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    return moment.astimezone(tz).date()


def day_compute(
    *, day: date, windows: Windows, scope: QuerySet[Conversation] | None = None
) -> dict[str, Tally]:
    """The figures of local `day`, one Tally per channel (every channel, empty or not); with
    `scope`, of those conversations only (a document or agent filter; never stored)."""
    start, end = windows.bounds(day)
    out = {channel: Tally() for channel in CHANNELS}
    _conversations(out, start, end, windows, scope)
    _opened_without_message(out, start, end, scope)
    _answers(out, start, end, windows.zone, scope)
    _escalations(out, start, end, scope)
    _agents(out, start, end, scope)
    return out


Scope = QuerySet[Conversation] | None


def _scoped(rows: QuerySet[Any], scope: Scope, field: str = "conversation") -> QuerySet[Any]:
    return rows if scope is None else rows.filter(**{f"{field}__in": scope.values("pk")})


# --- helpers ------------------------------------------------------------------------------------
def _visible(conversation: Any = None) -> QuerySet[Message]:
    rows = Message.objects.filter(internal=False)
    if conversation is not None:
        rows = rows.filter(conversation_id=conversation)
    return rows


def _turns(conversation: Any) -> QuerySet[Message]:
    """Visible messages that are a question or a reply (system lines excluded)."""
    return _visible(conversation).exclude(role=SYSTEM)


def _answers_of(conversation: Any) -> QuerySet[Message]:
    return Message.objects.filter(conversation_id=conversation, role=BOT, action__in=ANSWER_ACTIONS)


def _grouped(rows: QuerySet[Any]) -> list[dict[str, Any]]:
    """The rows of a grouped `values(...).annotate(...)` query, as plain dicts."""
    return [dict(row) for row in rows.order_by()]


def _first(rows: QuerySet[Message], field: str, *, last: bool = False) -> Subquery:
    return Subquery(rows.order_by("-pk" if last else "pk").values(field)[:1])


def _grouped_buckets(
    out: dict[str, Tally], rows: QuerySet[Any], name: str, ms: Any, *, key: str | None = None
) -> None:
    """Add the histogram of duration `ms` over `rows`, per channel (and per `key` value)."""
    group = ["channel", "b"] + ([key] if key else [])
    for row in _grouped(
        rows.annotate(ms=ms)
        .filter(ms__isnull=False)
        .annotate(b=bucket_of(F("ms")))
        .values(*group)
        .annotate(n=Count("pk"), s=Sum("ms"))
    ):
        full = name if key is None else name.format(row[key])
        out[row["channel"]].bucket(full, row["b"], row["n"], row["s"])


# --- conversation measures (the cohort of the first customer message) --------------------------
def _cohort(start: datetime, end: datetime, scope: Scope = None) -> QuerySet[Conversation]:
    """Conversations whose first customer message was sent in [start, end)."""
    earlier = _visible(OuterRef("conversation_id")).filter(role=CUSTOMER, pk__lt=OuterRef("pk"))
    firsts = (
        Message.objects.filter(
            role=CUSTOMER, internal=False, created_at__gte=start, created_at__lt=end
        )
        .exclude(Exists(earlier))
        .values("conversation_id")
    )
    return _scoped(Conversation.objects.filter(pk__in=firsts), scope, "pk")


def _conversations(
    out: dict[str, Tally], start: datetime, end: datetime, windows: Windows, scope: Scope
) -> None:
    conv = OuterRef("pk")
    customer = _visible(conv).filter(role=CUSTOMER)
    bots = Message.objects.filter(conversation_id=conv, role=BOT)
    answers = _answers_of(conv)
    # A customer message that came `assumed_after` or more after a bot answer that was the last
    # turn: the customer came back to an assumed resolution (docs/reports.md, "reopened").
    answer = OuterRef("pk")
    next_turn = _turns(OuterRef("conversation_id")).filter(pk__gt=answer).order_by("pk")
    returns = (
        _answers_of(conv)
        .annotate(
            next_role=Subquery(next_turn.values("role")[:1]),
            next_ms=EpochMs(Subquery(next_turn.values("created_at")[:1])),
        )
        .filter(
            next_role=CUSTOMER,
            next_ms__gte=EpochMs(F("created_at")) + windows.assumed_after.total_seconds() * 1000,
        )
    )
    rows = _cohort(start, end, scope).annotate(
        first_at=_first(customer, "created_at"),
        first_bot_at=_first(bots, "created_at"),
        has_bot=Exists(bots),
        has_answer=Exists(answers),
        has_decline=Exists(bots.filter(action=DECLINE)),
        escalated=Exists(Escalation.objects.filter(conversation_id=conv)),
        last_turn=_first(_turns(conv), "pk", last=True),
        last_answer=_first(answers, "pk", last=True),
        last_answer_at=_first(answers, "created_at", last=True),
        # Coalesced: a NULL would make every negated condition below NULL, not true.
        last_answer_feedback=Coalesce(
            _first(answers, "feedback__value", last=True), Value(""), output_field=CharField()
        ),
        has_return=Exists(returns),
    )
    durable_ms = windows.durable.total_seconds() * 1000
    rows = rows.annotate(
        hour=ExtractHour("first_at", tzinfo=windows.zone),
        came_back_bot=_returned_by_email("last_answer_at", durable_ms),
        came_back_person=_returned_by_email("resolved_at", durable_ms),
    )
    # One pass: every per-conversation subquery is evaluated once per row. (Referenced from
    # many filtered aggregates, Django repeats each subquery in every one of them, which
    # PostgreSQL plans far worse than SQLite.) The counts are added up below.
    fields = (
        "channel", "hour", "first_at", "first_bot_at", "has_bot", "has_answer", "has_decline",
        "escalated", "last_turn", "last_answer", "last_answer_at", "last_answer_feedback",
        "rating", "status", "resolved_at", "has_return", "came_back_bot", "came_back_person",
    )  # fmt: skip
    now = windows.now
    for values in rows.values_list(*fields).order_by().iterator(chunk_size=2000):
        r = dict(zip(fields, values, strict=True))
        t = out[r["channel"]]
        t.count("conversations")
        t.hour("conversations", r["hour"], 1)
        t.count("involved", int(r["has_bot"]))
        t.count("answered", int(r["has_answer"]))
        t.count("declined_conv", int(r["has_decline"]))
        t.count("reopened", int(r["has_return"]))
        if r["escalated"]:
            t.count("handed_over")
            t.hour("handed_over", r["hour"], 1)
        if r["has_bot"] and r["first_bot_at"] is not None:
            _one(t, "bot_first_response", r["first_bot_at"] - r["first_at"])
        resolved_bot = (
            r["has_answer"]
            and not r["escalated"]
            and r["last_turn"] == r["last_answer"]
            and r["last_answer_feedback"] != Feedback.Value.DOWN
        )
        if resolved_bot:
            said_so = r["last_answer_feedback"] == Feedback.Value.UP or (r["rating"] or 0) >= 4
            age = now - r["last_answer_at"]
            if said_so or age >= windows.assumed_after:
                t.count("bot_confirmed" if said_so else "bot_assumed")
                t.count("bot_resolved")
                t.hour("bot_resolved", r["hour"], 1)
                _one(t, "bot_resolution", r["last_answer_at"] - r["first_at"])
                if age >= windows.durable:
                    t.count("durable_known_bot")
                    t.count("durable_bot", int(not r["came_back_bot"]))
            else:
                t.count("bot_awaiting")
        if r["status"] == Conversation.Status.RESOLVED and r["resolved_at"] is not None:
            t.count("person_resolved")
            _one(t, "resolution", r["resolved_at"] - r["first_at"])
            if now - r["resolved_at"] >= windows.durable:
                t.count("durable_known_person")
                t.count("durable_person", int(not r["came_back_person"]))
        if r["rating"] is not None:
            t.count("rated")
            t.count("rating_sum", r["rating"])
            t.count(f"rating.{r['rating']}")
    # Reasons: each handed-over conversation counts once per reason any hand-over lists.
    seen: dict[str, dict[str, set[Any]]] = {}
    for channel, conversation_id, reasons in Escalation.objects.filter(
        conversation__in=_cohort(start, end, scope)
    ).values_list("conversation__channel", "conversation_id", "reasons"):
        for reason in reasons if isinstance(reasons, list) else ():
            seen.setdefault(channel, {}).setdefault(str(reason), set()).add(conversation_id)
    for channel, by_reason in seen.items():
        for reason, conversations in by_reason.items():
            out[channel].count(f"reason.{reason}", len(conversations))


def _one(tally: Tally, name: str, duration: timedelta) -> None:
    ms = duration.total_seconds() * 1000
    tally.bucket(name, histogram.bucket_index(ms), 1, ms)


def _returned_by_email(point: str, durable_ms: float) -> Case:
    """True when another conversation with the same (non-empty) address was created within
    the durable window after `point` (an annotation of the outer conversation)."""
    later = Conversation.objects.filter(
        customer_email=OuterRef("customer_email"), created_at__gt=OuterRef(point)
    ).exclude(pk=OuterRef("pk"))
    later = later.annotate(ms=EpochMs(F("created_at"))).filter(
        ms__lte=EpochMs(OuterRef(point)) + durable_ms
    )
    return Case(
        When(customer_email="", then=Value(False)),
        default=Exists(later),
    )


def _opened_without_message(
    out: dict[str, Tally], start: datetime, end: datetime, scope: Scope
) -> None:
    asked = Message.objects.filter(conversation_id=OuterRef("pk"), role=CUSTOMER, internal=False)
    for row in _grouped(
        _scoped(Conversation.objects.filter(created_at__gte=start, created_at__lt=end), scope, "pk")
        .exclude(Exists(asked))
        .values("channel")
        .annotate(n=Count("pk"))
    ):
        out[row["channel"]].count("opened_no_message", row["n"])


# --- answer measures (the day of the bot message) -----------------------------------------------
def _answers(
    out: dict[str, Tally], start: datetime, end: datetime, zone: tzinfo, scope: Scope
) -> None:
    day = Message.objects.filter(role=BOT, created_at__gte=start, created_at__lt=end)
    rows = _scoped(day, scope).annotate(
        channel=F("conversation__channel"),
        hour=ExtractHour("created_at", tzinfo=zone),
        fb=F("feedback__value"),
        ttft=Cast(KT("timings__ttft_ms"), FloatField()),
        total_ms=Cast(KT("timings__total_ms"), FloatField()),
        cpu=Cast(KT("trace__cpu_ms"), FloatField()),
    )
    is_answer = Q(action__in=ANSWER_ACTIONS)
    for row in _grouped(
        rows.values("channel").annotate(
            bot_replies=Count("pk"),
            answers=Count("pk", filter=is_answer),
            declines=Count("pk", filter=Q(action=DECLINE)),
            thumbs_up=Count("pk", filter=is_answer & Q(fb=Feedback.Value.UP)),
            thumbs_down=Count("pk", filter=is_answer & Q(fb=Feedback.Value.DOWN)),
        )
    ):
        tally = out[row.pop("channel")]
        tally.count("replies", row.pop("bot_replies"))
        for name, n in row.items():
            tally.count(name, n)
    for row in _grouped(rows.values("channel", "action").annotate(n=Count("pk"))):
        out[row["channel"]].count(f"action.{row['action'] or 'none'}", row["n"])
    for row in _grouped(
        rows.filter(action=DECLINE).values("channel", "reason").annotate(n=Count("pk"))
    ):
        out[row["channel"]].count(f"decline_reason.{row['reason'] or 'unknown'}", row["n"])
    for row in _grouped(
        rows.values("channel", "hour").annotate(
            a=Count("pk", filter=is_answer), d=Count("pk", filter=Q(action=DECLINE))
        )
    ):
        out[row["channel"]].hour("answers", row["hour"], row["a"])
        out[row["channel"]].hour("declines", row["hour"], row["d"])
    _grouped_buckets(out, rows, "ttft", F("ttft"))
    _grouped_buckets(out, rows, "answer_total", F("total_ms"))
    _grouped_buckets(out, rows, "cpu", F("cpu"))


# --- queue measures (the day of the hand-over) --------------------------------------------------
def _escalations(out: dict[str, Tally], start: datetime, end: datetime, scope: Scope) -> None:
    first_reply = (
        _visible(OuterRef("conversation_id"))
        .filter(role=AGENT, created_at__gte=OuterRef("created_at"))
        .order_by("pk")
        .values("created_at")[:1]
    )
    day = Escalation.objects.filter(created_at__gte=start, created_at__lt=end)
    rows = _scoped(day, scope).annotate(
        channel=F("conversation__channel"), first_reply_at=Subquery(first_reply)
    )
    for row in _grouped(
        rows.values("channel").annotate(
            n=Count("pk"), claimed=Count("pk", filter=Q(claimed_at__isnull=False))
        )
    ):
        out[row["channel"]].count("escalations", row["n"])
        out[row["channel"]].count("claimed", row["claimed"])
    _grouped_buckets(out, rows, "queue_wait", EpochMs(F("claimed_at")) - EpochMs(F("created_at")))
    _grouped_buckets(
        out, rows, "human_first_response", EpochMs(F("first_reply_at")) - EpochMs(F("created_at"))
    )


# --- per agent (the day of the action) ----------------------------------------------------------
def _agents(out: dict[str, Tally], start: datetime, end: datetime, scope: Scope) -> None:
    day = _scoped(
        Message.objects.filter(created_at__gte=start, created_at__lt=end, author__isnull=False),
        scope,
    ).annotate(channel=F("conversation__channel"))
    lines = day.filter(role=SYSTEM)
    for kind, name in ((LineKind.CLAIMED, "claimed"), (LineKind.ENDED, "resolved")):
        for row in _grouped(
            lines.filter(reason=kind.value).values("channel", "author_id").annotate(n=Count("pk"))
        ):
            out[row["channel"]].count(f"agent.{row['author_id']}.{name}", row["n"])
    for row in _grouped(
        day.filter(role=AGENT, internal=False)
        .values("channel", "author_id")
        .annotate(n=Count("pk"), c=Count("conversation_id", distinct=True))
    ):
        out[row["channel"]].count(f"agent.{row['author_id']}.replies", row["n"])
        out[row["channel"]].count(f"agent.{row['author_id']}.replied", row["c"])
    first_reply = (
        _visible(OuterRef("conversation_id"))
        .filter(role=AGENT, author_id=OuterRef("author_id"), pk__gt=OuterRef("pk"))
        .order_by("pk")
        .values("created_at")[:1]
    )
    claims = lines.filter(reason=LineKind.CLAIMED.value).annotate(
        first_reply_at=Subquery(first_reply)
    )
    _grouped_buckets(
        out,
        claims,
        "agent.{}.first_reply",
        EpochMs(F("first_reply_at")) - EpochMs(F("created_at")),
        key="author_id",
    )
