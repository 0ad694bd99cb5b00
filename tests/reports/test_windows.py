"""Time zones, the 24-hour window (awaiting) and the rollup's reuse and refresh."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from support.exceptions import SupportError
from support.models import Conversation, Message, ReportDay
from support.reports import report_build, report_rollup_run
from tests.reports.scenario import NOW, Builder, D, at, build_day

pytestmark = pytest.mark.django_db


def test_a_conversation_across_midnight_in_berlin(settings: Any) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "Europe/Berlin"
    build_day()
    first = report_build(start=D, end=D, now=NOW).as_dict()
    second = report_build(start=D + timedelta(days=1), end=D + timedelta(days=1), now=NOW)
    # c8 was asked at 23:50 local on day D: a conversation of day D...
    assert first["volume"]["conversations"] == 7
    assert first["series"]["hours"]["conversations"][23] == 1
    # ...whose answer came at 00:10 local: an answer of the next day, with c5's second one.
    assert first["declines"]["bot_replies"] == 5
    assert second.as_dict()["declines"]["bot_replies"] == 2
    assert first["range"]["time_zone"] == "Europe/Berlin"


def test_the_same_conversation_in_utc_is_one_day(settings: Any) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    build_day()
    first = report_build(start=D, end=D, now=NOW).as_dict()
    assert first["declines"]["bot_replies"] == 6
    assert first["series"]["hours"]["conversations"][22] == 1


def test_a_recent_answer_is_awaiting_until_the_customer_had_24_hours(settings: Any) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    b = Builder()
    conv = b.conversation("c", at(10, 10, 0))
    q = b.customer(conv, at(10, 10, 0))
    b.answer(conv, q, at(10, 10, 0, 5))
    soon = report_build(start=D, end=D, now=at(11, 9, 0), refresh=True).as_dict()
    assert (soon["resolution"]["awaiting"], soon["resolution"]["assumed"]) == (1, 0)
    assert soon["resolution"]["durable"]["bot"]["known"] == 0
    later = report_build(start=D, end=D, now=at(11, 10, 1), refresh=True).as_dict()
    assert (later["resolution"]["awaiting"], later["resolution"]["assumed"]) == (0, 1)
    assert later["resolution"]["durable"]["bot"]["known"] == 0
    week = report_build(start=D, end=D, now=at(17, 10, 1), refresh=True).as_dict()
    assert week["resolution"]["durable"]["bot"] == {"durable": 1, "known": 1, "rate": 1.0}


def test_a_customer_message_alone_is_a_conversation_and_an_empty_one_is_not(
    settings: Any,
) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    b = Builder()
    b.conversation("empty", at(10, 8, 0))
    b.conversation("empty2", at(10, 8, 5), channel=Conversation.Channel.EMAIL)
    internal_only = b.conversation("internal", at(10, 8, 10))
    b.message(internal_only, Message.Role.CUSTOMER, at(10, 8, 10), internal=True)
    asked = b.conversation("asked", at(10, 8, 20))
    b.customer(asked, at(10, 8, 21))
    data = report_build(start=D, end=D, now=NOW).as_dict()
    assert data["volume"]["conversations"] == 1
    assert data["volume"]["opened_without_message"] == 3
    assert data["volume"]["bot_involvement"] == {"count": 0, "rate": 0.0}
    assert data["resolution"]["bot_resolution_rate"] is None  # nothing to divide by
    assert data["speed"]["bot_first_response"]["p50_s"] is None


def test_stored_days_are_reused_while_fresh_and_recomputed_on_refresh(settings: Any) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    build_day()
    report_build(start=D, end=D, now=NOW)
    assert ReportDay.objects.filter(day=D).count() == len(Conversation.Channel.values)
    b = Builder()
    extra = b.conversation("extra", at(10, 18, 0))
    b.customer(extra, at(10, 18, 0))
    # Within the rollup interval the stored row is used...
    cached = report_build(start=D, end=D, now=NOW + timedelta(seconds=60)).as_dict()
    assert cached["volume"]["conversations"] == 7
    # ...and an hour later too: the row is no longer fresh, but it was computed 15 days after
    # the day ended, so it is final; late activity reaches it through beat or a refresh.
    stale = report_build(start=D, end=D, now=NOW + timedelta(hours=1)).as_dict()
    assert stale["volume"]["conversations"] == 7
    fresh = report_build(start=D, end=D, now=NOW + timedelta(hours=1), refresh=True).as_dict()
    assert fresh["volume"]["conversations"] == 8


def test_a_recent_day_is_recomputed_once_its_row_is_older_than_the_interval(
    settings: Any,
) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    b = Builder()
    conv = b.conversation("one", at(10, 10, 0))
    b.customer(conv, at(10, 10, 0))
    now = at(10, 20, 0)
    assert report_build(start=D, end=D, now=now).as_dict()["volume"]["conversations"] == 1
    conv2 = b.conversation("two", at(10, 19, 0))
    b.customer(conv2, at(10, 19, 0))
    assert (
        report_build(start=D, end=D, now=now + timedelta(seconds=30)).as_dict()["volume"][
            "conversations"
        ]
        == 1
    )
    later = now + timedelta(seconds=settings.SUPPORT_REPORT_ROLLUP_INTERVAL_S + 1)
    assert report_build(start=D, end=D, now=later).as_dict()["volume"]["conversations"] == 2


def test_beat_refreshes_the_days_with_new_activity(settings: Any) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    build_day()
    report_build(start=D, end=D + timedelta(days=2), now=NOW)
    b = Builder()
    # A conversation of day D in which the customer writes again two weeks later, today.
    conv = b.conversation("late", at(10, 20, 0))
    b.customer(conv, at(10, 20, 0))
    b.customer(conv, NOW + timedelta(minutes=5))
    run = report_rollup_run(now=NOW + timedelta(minutes=6))
    assert D in run.days
    assert NOW.date() in run.days
    assert date(2026, 3, 11) not in run.days  # nothing changed there
    row = ReportDay.objects.get(day=D, channel="widget")
    assert row.figures["counts"]["conversations"] == 7  # c1 c2 c3 c4 c8 c9, and the late one


def test_bad_ranges_are_refused() -> None:
    with pytest.raises(SupportError):
        report_build(start=D, end=D - timedelta(days=1))
    with pytest.raises(SupportError):
        report_build(start=D, end=D + timedelta(days=400))
    with pytest.raises(SupportError):
        report_build(start=D, end=D, channel="fax")


def test_the_beat_task_is_scheduled_and_runs(settings: Any) -> None:
    from django.conf import settings as live

    from support import jobs, tasks

    entry = live.CELERY_BEAT_SCHEDULE["support.report_rollup"]
    assert entry["task"] == jobs.REPORT_ROLLUP
    assert entry["schedule"] == float(settings.SUPPORT_REPORT_ROLLUP_INTERVAL_S)
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    result = tasks.report_rollup_task.delay().get()
    assert result["days"]  # today at least
    assert ReportDay.objects.exists()
