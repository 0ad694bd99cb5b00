"""Business hours: when people answer escalations (weekly schedule, holidays, one time zone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from ..conf import get_support_settings
from ..models import Holiday

# How far ahead to look for the next staffed hour (a long holiday season is still found).
_LOOKAHEAD_DAYS = 370


@dataclass(frozen=True, slots=True)
class BusinessHours:
    open: bool
    next_open: datetime | None  # aware, in the business time zone; None while open
    time_zone: str
    back_text: str  # "tomorrow at 09:00 CET"; "" while open or when unknown


def _holidays(start: date) -> set[date]:
    conf = get_support_settings()
    end = start + timedelta(days=_LOOKAHEAD_DAYS)
    stored = Holiday.objects.filter(date__gte=start, date__lte=end).values_list("date", flat=True)
    return {*conf.holidays, *stored}


def _intervals(weekday: int) -> list[tuple[int, int]]:
    schedule = get_support_settings().business_hours
    if not schedule:  # no schedule: always staffed (holidays still close whole days)
        return [(0, 1440)]
    return [(h.opens, h.closes) for h in schedule if h.weekday == weekday]


def _at(day: date, minute: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=tz)


def _when(moment: datetime, now: datetime) -> str:
    clock = f"{moment:%H:%M} {moment.tzname()}"
    days = (moment.date() - now.date()).days
    if days == 0:
        return f"today at {clock}"
    if days == 1:
        return f"tomorrow at {clock}"
    if days < 7:
        return f"on {moment:%A} at {clock}"
    return f"on {moment:%A} {moment.day} {moment:%B} at {clock}"


def business_hours_status(*, at: datetime | None = None) -> BusinessHours:
    """Whether people are working now and, if not, when they are back (pure read)."""
    conf = get_support_settings()
    tz = ZoneInfo(conf.business_time_zone)
    now = (at or timezone.now()).astimezone(tz)
    holidays = _holidays(now.date())
    minute = now.hour * 60 + now.minute
    if now.date() not in holidays and any(
        opens <= minute < closes for opens, closes in _intervals(now.weekday())
    ):
        return BusinessHours(True, None, conf.business_time_zone, "")
    for offset in range(_LOOKAHEAD_DAYS + 1):
        day = now.date() + timedelta(days=offset)
        if day in holidays:
            continue
        for opens, _closes in sorted(_intervals(day.weekday())):
            start = _at(day, opens, tz)
            if start > now:
                return BusinessHours(False, start, conf.business_time_zone, _when(start, now))
    return BusinessHours(False, None, conf.business_time_zone, "")


def out_of_hours_overlay(payload: dict[str, Any], *, at: datetime | None = None) -> dict[str, Any]:
    """A queued status payload, reworded outside business hours: when people are back, and a
    request for an email address (`ask_email`). Unchanged while people are working."""
    hours = business_hours_status(at=at)
    if hours.open:
        return {**payload, "out_of_hours": False, "back_at": None, "ask_email": False}
    back = f"back {hours.back_text}" if hours.back_text else "away for now"
    text = (
        f"Our team is {back}. Leave your email address and we will answer by email; "
        f"your conversation stays in the queue (you are number {payload.get('queue_position')})."
    )
    return {
        **payload,
        "text": text,
        "out_of_hours": True,
        "back_at": hours.next_open.isoformat() if hours.next_open else None,
        "ask_email": True,
    }
