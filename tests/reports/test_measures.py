"""Each measure of docs/reports.md on the hand-built day of scenario.py, with known answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from support.reports import report_build
from tests.reports.scenario import NOW, D, build_day

pytestmark = pytest.mark.django_db


def within(estimate: float | None, exact: float, tolerance: float = 0.045) -> bool:
    """A percentile read from the histogram: within 4.5 % of the exact value."""
    return estimate is not None and abs(estimate - exact) <= tolerance * exact


@pytest.fixture
def day(settings: Any) -> dict[str, Any]:
    settings.SUPPORT_REPORT_TIME_ZONE = "UTC"
    settings.SUPPORT_REPORT_VCPU_HOUR_PRICE = 0.036
    built = build_day()
    return {"built": built, "report": report_build(start=D, end=D, now=NOW).as_dict()}


def test_volume(day: dict[str, Any]) -> None:
    volume = day["report"]["volume"]
    # c1 c2 c3 c4 c5 c8 c9; c6 asked nothing, c7 asked on another day.
    assert volume["conversations"] == 7
    assert volume["opened_without_message"] == 1
    assert volume["bot_involvement"] == {"count": 6, "rate": round(6 / 7, 4)}
    assert volume["answered_by_bot"] == {"count": 5, "rate": round(5 / 7, 4)}


def test_resolution(day: dict[str, Any]) -> None:
    res = day["report"]["resolution"]
    # Confirmed: c1 (thumbs up). Assumed: c2, c5 (reopened, then answered again and left), c8.
    # Not resolved: c3 (handed over), c4 (thumbs down), c9 (no reply).
    assert (res["confirmed"], res["assumed"], res["awaiting"]) == (1, 3, 0)
    assert res["bot_resolutions"] == 4
    assert res["reopened"] == 1
    assert res["bot_resolution_rate"] == round(4 / 6, 4)
    assert res["automation_rate"] == round(4 / 7, 4)
    assert res["resolved_by_person"] == 1
    # c2's address started c7 two days later: that resolution did not last.
    assert res["durable"]["bot"] == {"durable": 3, "known": 4, "rate": 0.75}
    assert res["durable"]["person"] == {"durable": 1, "known": 1, "rate": 1.0}


def test_handoffs_and_declines(day: dict[str, Any]) -> None:
    handoffs = day["report"]["handoffs"]
    assert handoffs["handed_over"] == 1
    assert handoffs["rate"] == round(1 / 7, 4)
    assert handoffs["reasons"]["customer_request"] == {"count": 1, "share": 1.0}
    assert handoffs["reasons"]["low_confidence"] == {"count": 1, "share": 1.0}
    assert handoffs["reasons"]["frustration"] == {"count": 0, "share": 0.0}
    declines = day["report"]["declines"]
    # Bot replies of day D: c1 c2 c3(decline) c4 c5 c8; c5's second answer is on the 11th.
    assert (declines["declines"], declines["bot_replies"]) == (1, 6)
    assert declines["share"] == round(1 / 6, 4)
    assert declines["reasons"] == {"low_confidence": 1}
    assert (declines["conversations"], declines["conversation_rate"]) == (1, round(1 / 7, 4))


def test_speed(day: dict[str, Any]) -> None:
    speed = day["report"]["speed"]
    first = speed["bot_first_response"]
    # 5 s, 3 s, 2 s, 4 s, 2 s and c8's 20 minutes.
    assert first["count"] == 6
    assert first["mean_s"] == pytest.approx((5 + 3 + 2 + 4 + 2 + 1200) / 6, abs=0.01)
    assert within(first["p50_s"], 3.0)
    assert within(first["p95_s"], 1200.0)
    assert speed["human_first_response"]["count"] == 1
    assert speed["human_first_response"]["mean_s"] == pytest.approx(360.0, abs=0.01)
    assert within(speed["human_first_response"]["p50_s"], 360.0)
    wait = speed["queue_wait"]
    assert (wait["escalations"], wait["unclaimed"], wait["count"]) == (1, 0, 1)
    assert wait["mean_s"] == pytest.approx(240.0, abs=0.01)
    assert speed["resolution_time"]["mean_s"] == pytest.approx(1800.0, abs=0.01)
    bot = speed["bot_resolution_time"]
    assert bot["count"] == 4
    assert bot["mean_s"] == pytest.approx((5 + 3 + 25 * 3600 + 3 + 1200) / 4, abs=0.01)
    ttft = speed["answer_ttft"]
    assert ttft["count"] == 3
    assert ttft["mean_s"] == pytest.approx(0.6)
    assert within(ttft["p50_s"], 0.6)
    assert within(ttft["p95_s"], 0.8)
    total = speed["answer_total"]
    assert total["count"] == 4
    assert total["mean_s"] == pytest.approx((1.5 + 1.0 + 0.3 + 2.0) / 4)
    assert within(total["p95_s"], 2.0)


def test_satisfaction(day: dict[str, Any]) -> None:
    thumbs = day["report"]["satisfaction"]["thumbs"]
    assert thumbs == {"up": 1, "down": 1, "satisfaction": 0.5, "response_rate": round(2 / 5, 4)}
    rating = day["report"]["satisfaction"]["rating"]
    assert rating["count"] == 1
    assert rating["mean"] == 5.0
    assert rating["satisfaction"] == 1.0
    assert rating["response_rate"] == 1.0
    assert rating["distribution"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}


def test_cost(day: dict[str, Any]) -> None:
    cost = day["report"]["cost"]
    assert cost["bot_replies_with_cpu"] == 4
    assert cost["cpu_seconds_total"] == 6.5
    assert cost["cpu_seconds_per_answer"]["mean_s"] == pytest.approx(6.5 / 4)
    assert within(cost["cpu_seconds_per_answer"]["p50_s"], 1.0)
    assert cost["cost_total"] == pytest.approx(6.5 / 3600 * 0.036)
    assert cost["cost_per_answer"] == pytest.approx(6.5 / 4 / 3600 * 0.036)
    assert cost["currency"] == "USD"


def test_agents(day: dict[str, Any]) -> None:
    (sam,) = day["report"]["agents"]
    assert sam["agent_id"] == day["built"]["agent"].pk
    assert sam["name"] == "Sam"
    # The internal note is no reply.
    assert (sam["claimed"], sam["replied"], sam["replies"], sam["resolved"]) == (1, 1, 1, 1)
    assert within(sam["median_first_reply_s"], 120.0)


def test_series(day: dict[str, Any]) -> None:
    series = day["report"]["series"]
    assert series["days"] == [
        {
            "day": "2026-03-10",
            "conversations": 7,
            "bot_resolutions": 4,
            "handed_over": 1,
            "answers": 5,
            "declines": 1,
        }
    ]
    hours = series["hours"]["conversations"]
    assert [h for h, n in enumerate(hours) if n] == [10, 11, 12, 13, 14, 16, 22]
    assert series["hours"]["handed_over"][12] == 1


def test_the_next_days_hold_the_later_answer_and_the_other_conversation(
    day: dict[str, Any],
) -> None:
    later = report_build(start=D + timedelta(days=1), end=D + timedelta(days=2), now=NOW)
    data = later.as_dict()
    # c5's second answer (the 11th) and c7 (the 12th, never answered).
    assert data["volume"]["conversations"] == 1
    assert data["declines"]["bot_replies"] == 1
    assert [d["day"] for d in data["series"]["days"]] == ["2026-03-11", "2026-03-12"]
    # A range adds up its days.
    both = report_build(start=D, end=D + timedelta(days=2), now=NOW).as_dict()
    assert both["volume"]["conversations"] == 8
    assert both["declines"]["bot_replies"] == 7


def test_channel_filter(day: dict[str, Any]) -> None:
    api = report_build(start=D, end=D, channel="api", now=NOW).as_dict()
    assert api["volume"]["conversations"] == 1  # c5
    assert api["resolution"]["reopened"] == 1
    assert api["declines"]["bot_replies"] == 1
    widget = report_build(start=D, end=D, channel="widget", now=NOW).as_dict()
    assert widget["volume"]["conversations"] == 6
