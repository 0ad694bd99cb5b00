"""`manage.py report`: the same measures as the service, as JSON or text."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from support.reports import report_build
from tests.reports.scenario import D, build_day

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("report", *args, stdout=out)
    return out.getvalue()


def test_json_matches_the_service(settings: Any) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    build_day()
    data = json.loads(run("--from", D.isoformat(), "--to", D.isoformat(), "--json"))
    assert data["volume"]["conversations"] == 7
    assert data["resolution"]["bot_resolutions"] == 4
    assert data["handoffs"]["reasons"]["customer_request"]["count"] == 1
    assert data["agents"][0]["name"] == "Sam"
    # Read from the rows the command stored: the same figures as the service now.
    expected = report_build(start=D, end=D, now=timezone.now()).as_dict()
    for section in ("volume", "resolution", "handoffs", "declines", "speed", "satisfaction"):
        assert data[section] == expected[section], section


def test_text_names_every_section(settings: Any) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    build_day()
    text = run("--from", D.isoformat(), "--to", D.isoformat(), "--channel", "widget")
    for heading in ("Volume", "Resolution", "Hand-overs", "Declines", "Speed", "Satisfaction"):
        assert f"\n{heading}\n" in text
    assert "channel widget" in text
    assert "Sam" in text
    assert "customer_request" in text


@pytest.mark.parametrize(
    "args",
    [
        ("--from", "2026-13-01", "--to", "2026-03-01"),
        ("--from", "2026-03-02", "--to", "2026-03-01"),
    ],
)
def test_bad_dates_are_an_error_not_a_traceback(args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError):
        run(*args)


def test_the_agent_filter_of_the_command(settings: Any) -> None:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    built = build_day()
    day = D.isoformat()
    data = json.loads(run("--from", day, "--to", day, "--agent", str(built["agent"].pk), "--json"))
    assert data["range"]["agent"] == built["agent"].pk
    assert data["volume"]["conversations"] == 1  # c3, the one Sam claimed
    assert data["handoffs"]["handed_over"] == 1
