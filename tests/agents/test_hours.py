"""Business hours (schedule, holidays, time zone), the out-of-hours notice and email follow-up."""

from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.core.mail.backends.base import BaseEmailBackend
from django.test import override_settings

from support import conversations, events
from support.conf import OpeningHours, get_support_settings, parse_weekly_schedule
from support.handoff import agents
from support.handoff.hours import business_hours_status
from support.models import Conversation, Holiday, ReplyEmail
from tests.agents.conftest import QueuedFactory, SentEvents

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = {
    "SUPPORT_BUSINESS_HOURS": "mon-fri 09:00-17:00; sat 10:00-12:00",
    "SUPPORT_BUSINESS_TIME_ZONE": "Europe/Berlin",
}
# A Wednesday.
WED = datetime(2026, 11, 25, tzinfo=BERLIN)


def at(day: datetime, hh: int, mm: int = 0) -> datetime:
    return day.replace(hour=hh, minute=mm)


def test_schedule_parsing_and_errors() -> None:
    assert parse_weekly_schedule("") == ()
    parsed = parse_weekly_schedule("Mon-Wed 09:00-12:00 13:00-17:30; sun 10:00-24:00")
    assert OpeningHours(0, 540, 720) in parsed and OpeningHours(2, 780, 1050) in parsed
    assert OpeningHours(6, 600, 1440) in parsed and len(parsed) == 7
    for bad in (
        "mon 9-17",
        "funday 09:00-10:00",
        "fri-mon 09:00-10:00",
        "mon 17:00-09:00",
        "mon",
        "tue 09:00-25:00",
    ):
        with pytest.raises(ImproperlyConfigured, match="SUPPORT_BUSINESS_HOURS"):
            parse_weekly_schedule(bad)
    with (
        override_settings(SUPPORT_BUSINESS_TIME_ZONE="Mars/Olympus"),
        pytest.raises(ImproperlyConfigured, match="time zone"),
    ):
        get_support_settings()
    with override_settings(SUPPORT_HOLIDAYS=["2026-13-01"]), pytest.raises(ImproperlyConfigured):
        get_support_settings()


def test_no_schedule_means_always_staffed() -> None:
    assert business_hours_status(at=at(WED, 3)).open


@override_settings(**OFFICE)
def test_open_and_closed_in_the_business_time_zone() -> None:
    assert business_hours_status(at=at(WED, 9)).open
    assert business_hours_status(at=at(WED, 16, 59)).open
    # 08:30 UTC is 09:30 in Berlin (winter): open.
    assert business_hours_status(at=datetime(2026, 11, 25, 8, 30, tzinfo=ZoneInfo("UTC"))).open
    evening = business_hours_status(at=at(WED, 17))
    assert not evening.open
    assert evening.next_open == at(WED.replace(day=26), 9)
    assert evening.back_text == "tomorrow at 09:00 CET"
    early = business_hours_status(at=at(WED, 7, 15))
    assert early.back_text == "today at 09:00 CET"
    # Saturday afternoon -> Monday morning.
    saturday = business_hours_status(at=at(WED.replace(day=28), 13))
    assert saturday.next_open == at(WED.replace(day=30), 9)
    assert saturday.back_text == "on Monday at 09:00 CET"


@override_settings(**OFFICE, SUPPORT_HOLIDAYS=["2026-11-26"])
def test_holidays_from_settings_and_admin_close_whole_days() -> None:
    Holiday.objects.create(date=date(2026, 11, 27), name="Staff day")
    Holiday.objects.create(date=date(2026, 11, 30), name="Another")
    thursday = business_hours_status(at=at(WED.replace(day=26), 10))
    assert not thursday.open
    # Thu and Fri are holidays, Sat is open 10-12.
    assert thursday.next_open == at(WED.replace(day=28), 10)
    # Saturday after 12: Mon is a holiday -> Tuesday 1 December.
    late = business_hours_status(at=at(WED.replace(day=28), 12))
    assert late.next_open == datetime(2026, 12, 1, 9, tzinfo=BERLIN)
    assert late.back_text == "on Tuesday at 09:00 CET"


def _sunday_night(monkeypatch: pytest.MonkeyPatch) -> None:
    from support.handoff import hours

    sunday_night = datetime(2026, 11, 29, 22, tzinfo=BERLIN)
    monkeypatch.setattr(hours, "timezone", SimpleNamespace(now=lambda: sunday_night))


@override_settings(**OFFICE)
def test_out_of_hours_customer_is_told_when_people_are_back_and_asked_for_email(
    queued: QueuedFactory, sent: SentEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sunday_night(monkeypatch)
    conv = queued()
    status = sent.frames(events.conversation_group(conv.pk), "status")[-1]
    assert status["status"] == "queued" and status["out_of_hours"] is True
    assert status["ask_email"] is True
    assert status["back_at"] == "2026-11-30T09:00:00+01:00"
    assert "back tomorrow at 09:00 CET" in status["text"]
    assert "email" in status["text"] and "queue" in status["text"]
    # The same words when the widget reconnects.
    welcome = conversations.welcome_frame(conv, "t", resumed=True)
    assert welcome["status_text"] == status["text"]


def test_in_hours_status_is_the_usual_queue_text(queued: QueuedFactory, sent: SentEvents) -> None:
    conv = queued()
    status = sent.frames(events.conversation_group(conv.pk), "status")[-1]
    assert status["out_of_hours"] is False and status["ask_email"] is False
    assert status["text"].startswith("A person will join shortly — you are number 1")


class _FailingBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise ConnectionRefusedError("smtp.example.com refused the connection")


@override_settings(**OFFICE)
def test_email_left_out_of_hours_keeps_the_conversation_queued_for_an_email_follow_up(
    queued: QueuedFactory, agent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _sunday_night(monkeypatch)
    question = 'My invoice <script>alert("x")</script> & "total" is wrong'
    conv = queued(question=question, name="<b>Jo</b>")
    conversations.customer_email_set(conversation_id=conv.pk, email=" jo@example.com ")
    conv.refresh_from_db()
    assert conv.status == Conversation.Status.QUEUED and conv.customer_email == "jo@example.com"
    snapshot = agents.escalation_queue_list()
    assert snapshot.waiting[0].customer_email == "jo@example.com"

    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    msg = agents.agent_reply_post(
        conversation_id=conv.pk, agent=agent, text="We corrected it <3", send_email=True
    )
    assert len(mail.outbox) == 1
    sent_mail = mail.outbox[0]
    assert sent_mail.to == ["jo@example.com"]
    assert "We corrected it <3" in sent_mail.body and question in sent_mail.body
    html = sent_mail.alternatives[0][0]
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "&lt;b&gt;Jo&lt;/b&gt;" in html and "We corrected it &lt;3" in html
    assert ReplyEmail.objects.get(message=msg).to == "jo@example.com"


def test_email_failure_is_reported_not_swallowed(queued: QueuedFactory, agent: Any) -> None:
    conv = queued(email="jo@example.com")
    agents.escalation_claim(conversation_id=conv.pk, agent=agent)
    with (
        override_settings(EMAIL_BACKEND=f"{__name__}._FailingBackend"),
        pytest.raises(agents.EmailNotSent, match=r"could not be sent: smtp\.example\.com refused"),
    ):
        agents.agent_reply_post(conversation_id=conv.pk, agent=agent, text="Hi", send_email=True)
    # The reply itself is stored (and was shown in the widget); only the email failed.
    assert conv.messages.filter(role="agent", text="Hi").exists()
    assert not ReplyEmail.objects.exists()
    with pytest.raises(agents.InvalidMessage, match="no email"):
        other = queued()
        agents.escalation_claim(conversation_id=other.pk, agent=agent)
        agents.agent_reply_post(conversation_id=other.pk, agent=agent, text="x", send_email=True)
