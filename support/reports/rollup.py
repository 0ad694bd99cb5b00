"""The daily rollup (`ReportDay`): computed by beat for the days that can still change, and on
demand for a day a report needs that has no usable row (docs/reports.md, "Rollups")."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Min, QuerySet
from django.utils import timezone

from ..conf import get_support_settings
from ..models import Conversation, Feedback, Message, ReportDay
from .compute import CHANNELS, Windows, day_compute, local_date
from .tally import Tally

logger = logging.getLogger(__name__)

# Raise when what a row holds changes: rows of another version are recomputed when read.
FIGURES_VERSION = 2
# A beat run looks back this many intervals for activity, so a late or skipped run loses none.
LOOKBACK_INTERVALS = 3
# Conversation ids per query (SQLite limits the parameters of one statement).
ID_BATCH = 500


@dataclass(frozen=True, slots=True)
class DayFigures:
    day: date
    channels: dict[str, Tally]
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class RollupRun:
    """What one beat run refreshed."""

    days: tuple[date, ...]

    def as_dict(self) -> dict[str, object]:
        return {"days": [d.isoformat() for d in self.days]}


def report_windows(*, now: datetime | None = None) -> Windows:
    conf = get_support_settings()
    return Windows(
        zone=ZoneInfo(conf.report_time_zone),
        assumed_after=timedelta(seconds=conf.report_assumed_after_s),
        durable=timedelta(days=conf.report_durable_days),
        now=now or timezone.now(),
    )


def _basis() -> str:
    conf = get_support_settings()
    return (
        f"{conf.report_time_zone}|assumed={conf.report_assumed_after_s}"
        f"|durable={conf.report_durable_days}|v{FIGURES_VERSION}"
    )


def _final_after(day: date, windows: Windows) -> datetime:
    """When nothing in the rules can change a day's figures any more (only late activity)."""
    _, end = windows.bounds(day)
    return end + windows.assumed_after + windows.durable + timedelta(days=1)


def report_days_refresh(*, days: Iterable[date], now: datetime | None = None) -> list[DayFigures]:
    """Compute the given local days and store them (replacing their rows); days after today
    are computed (empty) but not stored."""
    windows = report_windows(now=now)
    today = local_date(windows.now, windows.zone)
    basis = _basis()
    done: list[DayFigures] = []
    for day in sorted(set(days)):
        channels = day_compute(day=day, windows=windows)
        if day <= today:
            ReportDay.objects.bulk_create(
                [
                    ReportDay(
                        day=day,
                        channel=channel,
                        basis=basis,
                        figures=tally.as_json(),
                        computed_at=windows.now,
                    )
                    for channel, tally in channels.items()
                ],
                update_conflicts=True,
                unique_fields=["day", "channel"],
                update_fields=["basis", "figures", "computed_at"],
            )
        done.append(DayFigures(day, channels, windows.now))
    return done


def report_days_scoped(
    *, start: date, end: date, scope: QuerySet[Conversation], now: datetime | None = None
) -> list[DayFigures]:
    """Every local day from `start` to `end`, computed now for the conversations of `scope`
    only (a document or agent filter): the rollup holds all conversations, so these days are
    aggregated from the tables and never stored."""
    windows = report_windows(now=now)
    days: list[DayFigures] = []
    day = start
    while day <= end:
        days.append(
            DayFigures(day, day_compute(day=day, windows=windows, scope=scope), windows.now)
        )
        day += timedelta(days=1)
    return days


def report_days_load(
    *, start: date, end: date, refresh: bool = False, now: datetime | None = None
) -> list[DayFigures]:
    """Every local day from `start` to `end` (inclusive): its stored rows when they are still
    good (fresh, or final), else computed now and stored."""
    windows = report_windows(now=now)
    interval = timedelta(seconds=get_support_settings().report_rollup_interval_s)
    basis = _basis()
    stored: dict[date, list[ReportDay]] = {}
    if not refresh:
        for row in ReportDay.objects.filter(day__gte=start, day__lte=end, basis=basis):
            stored.setdefault(row.day, []).append(row)
    days: list[DayFigures] = []
    missing: list[date] = []
    day = start
    while day <= end:
        rows = stored.get(day, [])
        oldest = min((r.computed_at for r in rows), default=None)
        usable = (
            oldest is not None
            and {r.channel for r in rows} >= set(CHANNELS)
            and (oldest >= windows.now - interval or oldest >= _final_after(day, windows))
        )
        if usable and oldest is not None:
            days.append(
                DayFigures(day, {r.channel: Tally.from_json(r.figures) for r in rows}, oldest)
            )
        else:
            missing.append(day)
        day += timedelta(days=1)
    days.extend(report_days_refresh(days=missing, now=windows.now))
    return sorted(days, key=lambda d: d.day)


def report_rollup_run(*, now: datetime | None = None) -> RollupRun:
    """Beat's run: refresh today, yesterday and every day whose figures changed since shortly
    before the previous run (new messages, thumbs, ratings; a 24-hour or 7-day window that
    closed)."""
    windows = report_windows(now=now)
    interval = timedelta(seconds=get_support_settings().report_rollup_interval_s)
    since = windows.now - interval * LOOKBACK_INTERVALS
    today = local_date(windows.now, windows.zone)
    days = {today, today - timedelta(days=1), local_date(since, windows.zone)}
    answer = {"role": Message.Role.BOT}
    touched = set(
        Message.objects.filter(created_at__gte=since).values_list("conversation_id", flat=True)
    )
    for window in (windows.assumed_after, windows.durable):
        closing = {"created_at__gte": since - window, "created_at__lt": windows.now - window}
        touched.update(
            Message.objects.filter(**answer, **closing).values_list("conversation_id", flat=True)
        )
    touched.update(
        Conversation.objects.filter(
            resolved_at__gte=since - windows.durable, resolved_at__lt=windows.now - windows.durable
        ).values_list("pk", flat=True)
    )
    touched.update(Conversation.objects.filter(rated_at__gte=since).values_list("pk", flat=True))
    rated = Feedback.objects.filter(created_at__gte=since)
    touched.update(rated.values_list("message__conversation_id", flat=True))
    days.update(
        local_date(m, windows.zone)
        for m in rated.values_list("message__created_at", flat=True)
        if m is not None
    )
    ids = list(touched)
    for i in range(0, len(ids), ID_BATCH):
        firsts = (
            Message.objects.filter(
                conversation_id__in=ids[i : i + ID_BATCH],
                role=Message.Role.CUSTOMER,
                internal=False,
            )
            .values("conversation_id")
            .annotate(first=Min("created_at"))
            .order_by()
        )
        days.update(local_date(row["first"], windows.zone) for row in firsts)
    refreshed = report_days_refresh(days=days, now=windows.now)
    logger.info("Report rollup: refreshed %s", [d.day.isoformat() for d in refreshed])
    return RollupRun(tuple(d.day for d in refreshed))
