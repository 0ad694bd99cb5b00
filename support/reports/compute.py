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


def day_compute(*, day: date, windows: Windows) -> dict[str, Tally]:
    """The figures of local `day`, one Tally per channel (every channel, empty or not)."""
    start, end = windows.bounds(day)
    out = {channel: Tally() for channel in CHANNELS}
    _conversations(out, start, end, windows)
    _opened_without_message(out, start, end)
    _answers(out, start, end, windows.zone)
    _escalations(out, start, end)
    _agents(out, start, end)
    return out


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
def _cohort(start: datetime, end: datetime) -> QuerySet[Conversation]:
    """Conversations whose first customer message was sent in [start, end)."""
    earlier = _visible(OuterRef("conversation_id")).filter(role=CUSTOMER, pk__lt=OuterRef("pk"))
    firsts = (
        Message.objects.filter(
            role=CUSTOMER, internal=False, created_at__gte=start, created_at__lt=end
        )
        .exclude(Exists(earlier))
        .values("conversation_id")
    )
    return Conversation.objects.filter(pk__in=firsts)


def _conversations(out: dict[str, Tally], start: datetime, end: datetime, windows: Windows) -> None:
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
    rows = _cohort(start, end).annotate(
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
        rating0=Coalesce("rating", Value(0)),
        has_return=Exists(returns),
    )
    now_ms = windows.now.timestamp() * 1000
    assumed_ms = windows.assumed_after.total_seconds() * 1000
    durable_ms = windows.durable.total_seconds() * 1000
    bot_resolved = Q(has_answer=True, escalated=False, last_turn=F("last_answer")) & ~Q(
        last_answer_feedback=Feedback.Value.DOWN
    )
    said_so = Q(last_answer_feedback=Feedback.Value.UP) | Q(rating0__gte=4)
    confirmed = bot_resolved & said_so
    unconfirmed = bot_resolved & ~said_so
    rows = rows.annotate(
        hour=ExtractHour("first_at", tzinfo=windows.zone),
        answer_age_ms=Value(now_ms) - EpochMs(F("last_answer_at")),
        resolved_age_ms=Value(now_ms) - EpochMs(F("resolved_at")),
        came_back_bot=_returned_by_email("last_answer_at", durable_ms),
        came_back_person=_returned_by_email("resolved_at", durable_ms),
    )
    is_bot_resolved = confirmed | (unconfirmed & Q(answer_age_ms__gte=assumed_ms))
    person = Q(status=Conversation.Status.RESOLVED, resolved_at__isnull=False)
    totals = _grouped(
        rows.values("channel").annotate(
            conversations=Count("pk"),
            involved=Count("pk", filter=Q(has_bot=True)),
            answered=Count("pk", filter=Q(has_answer=True)),
            declined_conv=Count("pk", filter=Q(has_decline=True)),
            handed_over=Count("pk", filter=Q(escalated=True)),
            bot_confirmed=Count("pk", filter=confirmed),
            bot_assumed=Count("pk", filter=unconfirmed & Q(answer_age_ms__gte=assumed_ms)),
            bot_awaiting=Count("pk", filter=unconfirmed & Q(answer_age_ms__lt=assumed_ms)),
            reopened=Count("pk", filter=Q(has_return=True)),
            person_resolved=Count("pk", filter=person),
            durable_known_bot=Count(
                "pk", filter=is_bot_resolved & Q(answer_age_ms__gte=durable_ms)
            ),
            durable_bot=Count(
                "pk",
                filter=is_bot_resolved & Q(answer_age_ms__gte=durable_ms, came_back_bot=False),
            ),
            durable_known_person=Count("pk", filter=person & Q(resolved_age_ms__gte=durable_ms)),
            durable_person=Count(
                "pk",
                filter=person & Q(resolved_age_ms__gte=durable_ms, came_back_person=False),
            ),
            rated=Count("pk", filter=Q(rating__isnull=False)),
            rating_sum=Sum("rating"),
            **{f"rating_{v}": Count("pk", filter=Q(rating=v)) for v in range(1, 6)},
        )
    )
    for row in totals:
        tally = out[row.pop("channel")]
        tally.count("bot_resolved", row["bot_confirmed"] + row["bot_assumed"])
        tally.count("rating_sum", row.pop("rating_sum") or 0)
        for name, n in row.items():
            tally.count(name.replace("rating_", "rating.") if name[-1].isdigit() else name, n)
    for row in _grouped(
        rows.values("channel", "hour").annotate(
            n=Count("pk"),
            handed=Count("pk", filter=Q(escalated=True)),
            resolved=Count("pk", filter=is_bot_resolved),
        )
    ):
        tally = out[row["channel"]]
        tally.hour("conversations", row["hour"], row["n"])
        tally.hour("handed_over", row["hour"], row["handed"])
        tally.hour("bot_resolved", row["hour"], row["resolved"])
    _grouped_buckets(
        out,
        rows.filter(has_bot=True),
        "bot_first_response",
        EpochMs(F("first_bot_at")) - EpochMs(F("first_at")),
    )
    _grouped_buckets(
        out, rows.filter(person), "resolution", EpochMs(F("resolved_at")) - EpochMs(F("first_at"))
    )
    _grouped_buckets(
        out,
        rows.filter(is_bot_resolved),
        "bot_resolution",
        EpochMs(F("last_answer_at")) - EpochMs(F("first_at")),
    )
    # Reasons: each handed-over conversation counts once per reason any hand-over lists.
    seen: dict[str, dict[str, set[Any]]] = {}
    for channel, conversation_id, reasons in Escalation.objects.filter(
        conversation__in=_cohort(start, end)
    ).values_list("conversation__channel", "conversation_id", "reasons"):
        for reason in reasons if isinstance(reasons, list) else ():
            seen.setdefault(channel, {}).setdefault(str(reason), set()).add(conversation_id)
    for channel, by_reason in seen.items():
        for reason, conversations in by_reason.items():
            out[channel].count(f"reason.{reason}", len(conversations))


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


def _opened_without_message(out: dict[str, Tally], start: datetime, end: datetime) -> None:
    asked = Message.objects.filter(conversation_id=OuterRef("pk"), role=CUSTOMER, internal=False)
    for row in _grouped(
        Conversation.objects.filter(created_at__gte=start, created_at__lt=end)
        .exclude(Exists(asked))
        .values("channel")
        .annotate(n=Count("pk"))
    ):
        out[row["channel"]].count("opened_no_message", row["n"])


# --- answer measures (the day of the bot message) -----------------------------------------------
def _answers(out: dict[str, Tally], start: datetime, end: datetime, zone: tzinfo) -> None:
    rows = Message.objects.filter(role=BOT, created_at__gte=start, created_at__lt=end).annotate(
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
def _escalations(out: dict[str, Tally], start: datetime, end: datetime) -> None:
    first_reply = (
        _visible(OuterRef("conversation_id"))
        .filter(role=AGENT, created_at__gte=OuterRef("created_at"))
        .order_by("pk")
        .values("created_at")[:1]
    )
    rows = Escalation.objects.filter(created_at__gte=start, created_at__lt=end).annotate(
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
def _agents(out: dict[str, Tally], start: datetime, end: datetime) -> None:
    day = Message.objects.filter(
        created_at__gte=start, created_at__lt=end, author__isnull=False
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
