"""A report over a range of local days: the rollup rows added up and read as the measures of
docs/reports.md (rates, means, percentiles, cost, per agent, series)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from .. import events
from ..conf import get_support_settings
from ..exceptions import SupportError
from ..models import Conversation, Escalation, Message
from . import histogram
from .rollup import DayFigures, report_days_load, report_days_scoped
from .tally import Tally

# A range longer than this is refused: the rows of a year are read at most.
MAX_DAYS = 366


class InvalidReportRange(SupportError):
    code = "invalid_range"


@dataclass(frozen=True, slots=True)
class Duration:
    """Durations in seconds: the exact count and mean, the estimated p50 / p95."""

    count: int
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None

    @classmethod
    def of(cls, tally: Tally, name: str) -> Duration:
        n = tally.get(f"{name}.n")
        hist = tally.hists.get(name, {})
        p50, p95 = histogram.percentile_ms(hist, 50), histogram.percentile_ms(hist, 95)
        return cls(
            count=n,
            mean_s=_r(tally.sum(name) / n / 1000) if n else None,
            p50_s=_r(p50 / 1000) if p50 is not None else None,
            p95_s=_r(p95 / 1000) if p95 is not None else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean_s": self.mean_s,
            "p50_s": self.p50_s,
            "p95_s": self.p95_s,
        }


def _r(value: float, digits: int = 4) -> float:
    return round(value, digits)


def _rate(part: float, whole: float) -> float | None:
    return _r(part / whole) if whole else None


@dataclass(frozen=True, slots=True)
class Report:
    start: date
    end: date
    time_zone: str
    channel: str | None
    computed_at: datetime
    figures: Tally
    days: tuple[tuple[date, Tally], ...]
    document: int | None = None
    agent: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Every measure of docs/reports.md, as JSON (the `report --json` output)."""
        t = self.figures
        conf = get_support_settings()
        conversations = t.get("conversations")
        involved = t.get("involved")
        bot_resolved = t.get("bot_resolved")
        replies = t.get("replies")
        answers = t.get("answers")
        up, down = t.get("thumbs_up"), t.get("thumbs_down")
        rated = t.get("rated")
        cpu_ms = t.sum("cpu")
        cpu_n = t.get("cpu.n")
        price = conf.report_vcpu_hour_price
        reasons = {
            reason: {
                "count": t.get(f"reason.{reason}"),
                "share": _rate(t.get(f"reason.{reason}"), t.get("handed_over")),
            }
            for reason in [*Escalation.Reason.values, *t.names("reason.")]
        }
        return {
            "range": {
                "from": self.start.isoformat(),
                "to": self.end.isoformat(),
                "time_zone": self.time_zone,
                "channel": self.channel,
                "document": self.document,
                "agent": self.agent,
                "computed_at": self.computed_at.isoformat(),
            },
            "volume": {
                "conversations": conversations,
                "opened_without_message": t.get("opened_no_message"),
                "bot_involvement": {"count": involved, "rate": _rate(involved, conversations)},
                "answered_by_bot": {
                    "count": t.get("answered"),
                    "rate": _rate(t.get("answered"), conversations),
                },
            },
            "resolution": {
                "bot_resolutions": bot_resolved,
                "confirmed": t.get("bot_confirmed"),
                "assumed": t.get("bot_assumed"),
                "awaiting": t.get("bot_awaiting"),
                "reopened": t.get("reopened"),
                "bot_resolution_rate": _rate(bot_resolved, involved),
                "automation_rate": _rate(bot_resolved, conversations),
                "resolved_by_person": t.get("person_resolved"),
                "durable": {
                    who: {
                        "durable": t.get(f"durable_{who}"),
                        "known": t.get(f"durable_known_{who}"),
                        "rate": _rate(t.get(f"durable_{who}"), t.get(f"durable_known_{who}")),
                    }
                    for who in ("bot", "person")
                },
            },
            "handoffs": {
                "handed_over": t.get("handed_over"),
                "rate": _rate(t.get("handed_over"), conversations),
                "reasons": reasons,
            },
            "declines": {
                "declines": t.get("declines"),
                "bot_replies": replies,
                "share": _rate(t.get("declines"), replies),
                "conversations": t.get("declined_conv"),
                "conversation_rate": _rate(t.get("declined_conv"), conversations),
                "reasons": {r: t.get(f"decline_reason.{r}") for r in t.names("decline_reason.")},
            },
            "actions": {
                action: t.get(f"action.{action}")
                for action in [*Message.Action.values, *t.names("action.")]
            },
            "speed": {
                "bot_first_response": Duration.of(t, "bot_first_response").as_dict(),
                "human_first_response": Duration.of(t, "human_first_response").as_dict(),
                "queue_wait": {
                    **Duration.of(t, "queue_wait").as_dict(),
                    "escalations": t.get("escalations"),
                    "unclaimed": t.get("escalations") - t.get("claimed"),
                },
                "resolution_time": Duration.of(t, "resolution").as_dict(),
                "bot_resolution_time": Duration.of(t, "bot_resolution").as_dict(),
                "answer_ttft": Duration.of(t, "ttft").as_dict(),
                "answer_total": Duration.of(t, "answer_total").as_dict(),
            },
            "satisfaction": {
                "thumbs": {
                    "up": up,
                    "down": down,
                    "satisfaction": _rate(up, up + down),
                    "response_rate": _rate(up + down, answers),
                },
                "rating": {
                    "count": rated,
                    "mean": _rate(t.get("rating_sum"), rated),
                    "satisfaction": _rate(t.get("rating.4") + t.get("rating.5"), rated),
                    "response_rate": _rate(rated, t.get("person_resolved")),
                    "distribution": {str(v): t.get(f"rating.{v}") for v in range(1, 6)},
                },
            },
            "cost": {
                "bot_replies_with_cpu": cpu_n,
                "cpu_seconds_total": _r(cpu_ms / 1000, 3),
                "cpu_seconds_per_answer": Duration.of(t, "cpu").as_dict(),
                "vcpu_hour_price": price,
                "currency": conf.report_currency,
                "cost_total": _r(cpu_ms / 1000 / 3600 * price, 6),
                "cost_per_answer": _r(cpu_ms / cpu_n / 1000 / 3600 * price, 8) if cpu_n else None,
            },
            "agents": _agents(t),
            "series": {
                "days": [
                    {
                        "day": d.isoformat(),
                        "conversations": day.get("conversations"),
                        "bot_resolutions": day.get("bot_resolved"),
                        "handed_over": day.get("handed_over"),
                        "answers": day.get("answers"),
                        "declines": day.get("declines"),
                    }
                    for d, day in self.days
                ],
                "hours": {name: t.hours.get(name, [0] * 24) for name in SERIES_HOURS},
            },
        }


SERIES_HOURS = ("conversations", "handed_over", "bot_resolved", "answers", "declines")


def _agents(t: Tally) -> list[dict[str, Any]]:
    ids = [int(i) for i in t.names("agent.") if i.isdigit()]
    users = {u.pk: u for u in get_user_model().objects.filter(pk__in=ids)}
    rows = []
    for agent_id in ids:
        p = f"agent.{agent_id}."
        first = Duration.of(t, f"{p}first_reply")
        user = users.get(agent_id)
        rows.append(
            {
                "agent_id": agent_id,
                "name": events.display_name(user) if user is not None else f"user {agent_id}",
                "claimed": t.get(f"{p}claimed"),
                "replied": t.get(f"{p}replied"),
                "replies": t.get(f"{p}replies"),
                "resolved": t.get(f"{p}resolved"),
                "median_first_reply_s": first.p50_s,
                "first_replies": first.count,
            }
        )
    return sorted(rows, key=lambda r: (-r["claimed"], -r["replies"], r["name"]))


def report_scope(
    *, document: int | None = None, agent: int | None = None
) -> QuerySet[Conversation] | None:
    """The conversations a document or agent filter keeps (None: no filter). A document's: a
    bot reply cited it. An agent's: they claimed a hand-over of it or wrote in it (a reply,
    a note, a claimed or ended line)."""
    if document is None and agent is None:
        return None
    rows = Conversation.objects.all()
    if document is not None:
        # Citations are a JSON list; its text is matched (a list has no containment query on
        # SQLite). The key is followed by "," (SQLite's key order) or "}" (PostgreSQL's).
        cites = Q()
        for end in (",", "}"):
            cites |= Q(citations__icontains=f'"document_id": {int(document)}{end}')
        rows = rows.filter(
            pk__in=Message.objects.filter(cites, role=Message.Role.BOT).values("conversation_id")
        )
    if agent is not None:
        rows = rows.filter(
            Q(pk__in=Message.objects.filter(author_id=agent).values("conversation_id"))
            | Q(pk__in=Escalation.objects.filter(claimed_by_id=agent).values("conversation_id"))
        )
    return rows


def report_build(
    *,
    start: date,
    end: date,
    channel: str | None = None,
    document: int | None = None,
    agent: int | None = None,
    refresh: bool = False,
    now: datetime | None = None,
) -> Report:
    """The measures of local days `start`..`end` (inclusive), for one channel or all: read
    from the daily rollup, computing (and storing) the days that have no usable row. With a
    document or agent, of the conversations `report_scope` keeps, computed from the tables."""
    if end < start:
        raise InvalidReportRange("The range ends before it starts.")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidReportRange(f"A report covers at most {MAX_DAYS} days.")
    if channel is not None and channel not in Conversation.Channel.values:
        raise InvalidReportRange(
            f"Unknown channel {channel!r}: one of {', '.join(Conversation.Channel.values)}."
        )
    scope = report_scope(document=document, agent=agent)
    if scope is None:
        loaded = report_days_load(start=start, end=end, refresh=refresh, now=now)
    else:
        loaded = report_days_scoped(start=start, end=end, scope=scope, now=now)
    report = report_from_days(loaded, start=start, end=end, channel=channel)
    return dataclasses.replace(report, document=document, agent=agent)


def report_from_days(
    days: list[DayFigures], *, start: date, end: date, channel: str | None
) -> Report:
    """Add up loaded days (all channels, or one)."""
    total = Tally()
    per_day: list[tuple[date, Tally]] = []
    for day in days:
        tally = Tally()
        for name, figures in day.channels.items():
            if channel is None or name == channel:
                tally.add(figures)
        total.add(tally)
        per_day.append((day.day, tally))
    computed = min((d.computed_at for d in days), default=None)
    return Report(
        start=start,
        end=end,
        time_zone=get_support_settings().report_time_zone,
        channel=channel,
        computed_at=computed or timezone.now(),
        figures=total,
        days=tuple(per_day),
    )
