"""The report page's content: headline tiles, the tables and their charts, from one `Report`.

The admin page and its CSV export both read `ReportPage.tables`: a table's cells are turned into
text by `cell_text` in both, so the CSV holds exactly the numbers the page shows.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from .report import Report
from .svg import Series, bar_chart, hbar_chart, line_chart

Cell = str | int | float | None


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the page: its key (the CSV's name), caption, columns and rows."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    chart: str = ""  # inline SVG, already escaped (svg.py)

    def text_rows(self) -> list[list[str]]:
        return [[cell_text(c) for c in row] for row in self.rows]


@dataclass(frozen=True, slots=True)
class Tile:
    label: str
    value: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ReportPage:
    report: Report
    tiles: tuple[Tile, ...]
    tables: tuple[Table, ...]

    def table(self, key: str) -> Table | None:
        return next((t for t in self.tables if t.key == key), None)


def cell_text(value: Cell) -> str:
    """How a cell reads, on the page and in the CSV: blank for "nothing to divide by"."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def table_csv(table: Table) -> str:
    """The CSV of one table: a header row, then the rows as the page shows them."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(table.columns)
    writer.writerows(table.text_rows())
    return buf.getvalue()


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 2)


def _pct_text(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f} %"


def _secs_text(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 60:
        return f"{value:.2f} s" if value < 10 else f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


SPEED_ROWS = (
    ("bot_first_response", "bot first response"),
    ("human_first_response", "human first response"),
    ("queue_wait", "queue wait"),
    ("resolution_time", "resolution time (person)"),
    ("bot_resolution_time", "bot resolution time"),
    ("answer_ttft", "answer time to first token"),
    ("answer_total", "answer time, total"),
)
DAY_SERIES = (
    ("conversations", "conversations"),
    ("bot_resolutions", "bot resolutions"),
    ("handed_over", "handed over"),
    ("answers", "answers"),
    ("declines", "declines"),
)
HOUR_SERIES = (
    ("conversations", "conversations"),
    ("bot_resolved", "bot resolutions"),
    ("handed_over", "handed over"),
    ("answers", "answers"),
    ("declines", "declines"),
)


def _tiles(d: dict[str, Any]) -> tuple[Tile, ...]:
    vol, res, hand, dec = d["volume"], d["resolution"], d["handoffs"], d["declines"]
    speed, sat, cost = d["speed"], d["satisfaction"], d["cost"]
    per_answer = cost["cost_per_answer"]
    return (
        Tile(
            "Conversations",
            str(vol["conversations"]),
            f"{vol['opened_without_message']} opened without a message",
        ),
        Tile(
            "Bot involvement",
            _pct_text(vol["bot_involvement"]["rate"]),
            f"{vol['bot_involvement']['count']} conversations",
        ),
        Tile(
            "Bot resolution rate",
            _pct_text(res["bot_resolution_rate"]),
            f"{res['confirmed']} confirmed, {res['assumed']} assumed",
        ),
        Tile("Automation rate", _pct_text(res["automation_rate"]), f"{res['reopened']} reopened"),
        Tile("Handoff rate", _pct_text(hand["rate"]), f"{hand['handed_over']} handed over"),
        Tile(
            "Declines",
            _pct_text(dec["share"]),
            f"{dec['declines']} of {dec['bot_replies']} bot replies",
        ),
        Tile(
            "CSAT (rating)",
            _pct_text(sat["rating"]["satisfaction"]),
            f"{sat['rating']['count']} ratings",
        ),
        Tile(
            "Thumbs satisfaction",
            _pct_text(sat["thumbs"]["satisfaction"]),
            f"{sat['thumbs']['up']} up, {sat['thumbs']['down']} down",
        ),
        Tile(
            "Bot first response p50",
            _secs_text(speed["bot_first_response"]["p50_s"]),
            f"p95 {_secs_text(speed['bot_first_response']['p95_s'])}",
        ),
        Tile(
            "Queue wait p50",
            _secs_text(speed["queue_wait"]["p50_s"]),
            f"{speed['queue_wait']['unclaimed']} unclaimed",
        ),
        Tile(
            "Answer TTFT p50",
            _secs_text(speed["answer_ttft"]["p50_s"]),
            f"p95 {_secs_text(speed['answer_ttft']['p95_s'])}",
        ),
        Tile(
            "Compute cost per answer",
            "–" if per_answer is None else f"{per_answer:.6f} {cost['currency']}",
            f"{cost['cpu_seconds_total']:.1f} CPU-s in all",
        ),
    )


def _summary(d: dict[str, Any]) -> Table:
    vol, res, hand, dec = d["volume"], d["resolution"], d["handoffs"], d["declines"]
    sat, cost = d["satisfaction"], d["cost"]
    rows: list[tuple[Cell, ...]] = [
        ("conversations", vol["conversations"], None),
        ("opened without a message", vol["opened_without_message"], None),
        ("bot involvement", vol["bot_involvement"]["count"], _pct(vol["bot_involvement"]["rate"])),
        (
            "answered by the bot",
            vol["answered_by_bot"]["count"],
            _pct(vol["answered_by_bot"]["rate"]),
        ),
        ("bot resolutions", res["bot_resolutions"], _pct(res["bot_resolution_rate"])),
        ("confirmed", res["confirmed"], None),
        ("assumed", res["assumed"], None),
        ("awaiting", res["awaiting"], None),
        ("reopened", res["reopened"], None),
        ("automation rate", res["bot_resolutions"], _pct(res["automation_rate"])),
        ("resolved by a person", res["resolved_by_person"], None),
        (
            "durable bot resolutions",
            res["durable"]["bot"]["durable"],
            _pct(res["durable"]["bot"]["rate"]),
        ),
        (
            "durable person resolutions",
            res["durable"]["person"]["durable"],
            _pct(res["durable"]["person"]["rate"]),
        ),
        ("handed over", hand["handed_over"], _pct(hand["rate"])),
        ("declines (of bot replies)", dec["declines"], _pct(dec["share"])),
        ("conversations with a decline", dec["conversations"], _pct(dec["conversation_rate"])),
        ("thumbs up", sat["thumbs"]["up"], _pct(sat["thumbs"]["satisfaction"])),
        ("thumbs down", sat["thumbs"]["down"], None),
        (
            "thumbs response rate",
            sat["thumbs"]["up"] + sat["thumbs"]["down"],
            _pct(sat["thumbs"]["response_rate"]),
        ),
        ("ratings (CSAT: 4 or 5)", sat["rating"]["count"], _pct(sat["rating"]["satisfaction"])),
        ("rating response rate", sat["rating"]["count"], _pct(sat["rating"]["response_rate"])),
        ("mean rating", sat["rating"]["mean"], None),
        ("bot replies with CPU time", cost["bot_replies_with_cpu"], None),
        ("CPU-seconds, total", cost["cpu_seconds_total"], None),
        (f"compute cost, total ({cost['currency']})", cost["cost_total"], None),
        (f"compute cost per answer ({cost['currency']})", cost["cost_per_answer"], None),
    ]
    return Table("summary", "Measures", ("measure", "count / value", "rate %"), tuple(rows))


def _speed(d: dict[str, Any]) -> Table:
    speed = d["speed"]
    rows = tuple(
        (label, speed[key]["count"], speed[key]["mean_s"], speed[key]["p50_s"], speed[key]["p95_s"])
        for key, label in SPEED_ROWS
    )
    chart = hbar_chart(
        "Median durations (seconds)",
        [str(r[0]) for r in rows],
        [r[3] if isinstance(r[3], float | int) else None for r in rows],
        unit="s",
    )
    return Table("speed", "Speed", ("measure", "count", "mean s", "p50 s", "p95 s"), rows, chart)


def _days(d: dict[str, Any]) -> Table:
    days = d["series"]["days"]
    rows = tuple((day["day"], *(day[k] for k, _ in DAY_SERIES)) for day in days)
    labels = [day["day"][5:] for day in days]
    series = [Series(label, [day[k] for day in days]) for k, label in DAY_SERIES]
    chart = (line_chart if len(days) > 1 else bar_chart)("Per day", labels, series)
    return Table("days", "Per day", ("day", *(label for _, label in DAY_SERIES)), rows, chart)


def _hours(d: dict[str, Any]) -> Table:
    hours = d["series"]["hours"]
    rows = tuple(
        (f"{h:02d}:00", *(hours.get(k, [0] * 24)[h] for k, _ in HOUR_SERIES)) for h in range(24)
    )
    series = [Series(label, list(hours.get(k, [0] * 24))) for k, label in HOUR_SERIES]
    chart = line_chart(
        f"Per hour of the day ({d['range']['time_zone']}), the range added up",
        [f"{h:02d}" for h in range(24)],
        series,
    )
    return Table(
        "hours", "Per hour of the day", ("hour", *(lb for _, lb in HOUR_SERIES)), rows, chart
    )


def _reasons(d: dict[str, Any]) -> Table:
    reasons = d["handoffs"]["reasons"]
    rows = tuple((r, v["count"], _pct(v["share"])) for r, v in reasons.items())
    chart = hbar_chart(
        "Handed-over conversations per reason", [str(r[0]) for r in rows], [r[1] for r in rows]
    )
    return Table("reasons", "Handoff reasons", ("reason", "conversations", "share %"), rows, chart)


def _actions(d: dict[str, Any]) -> Table:
    actions = d["actions"]
    rows = tuple((a, n) for a, n in actions.items())
    chart = hbar_chart("Bot replies per action", [a for a, _ in rows], [n for _, n in rows])
    return Table("actions", "Bot replies per action", ("action", "bot replies"), rows, chart)


def _declines(d: dict[str, Any]) -> Table:
    reasons = d["declines"]["reasons"]
    rows = tuple((r, n) for r, n in reasons.items())
    chart = hbar_chart("Declines per reason", [r for r, _ in rows], [n for _, n in rows])
    return Table("declines", "Decline reasons", ("reason", "declines"), rows, chart)


def _ratings(d: dict[str, Any]) -> Table:
    dist = d["satisfaction"]["rating"]["distribution"]
    rows = tuple((int(v), n) for v, n in dist.items())
    chart = bar_chart(
        "End-of-chat ratings", [str(v) for v, _ in rows], [Series("ratings", [n for _, n in rows])]
    )
    return Table("ratings", "End-of-chat ratings", ("rating", "conversations"), rows, chart)


def _agents(d: dict[str, Any]) -> Table:
    rows = tuple(
        (
            a["name"],
            a["claimed"],
            a["replied"],
            a["replies"],
            a["resolved"],
            a["median_first_reply_s"],
        )
        for a in d["agents"]
    )
    chart = (
        bar_chart(
            "Per agent",
            [str(r[0]) for r in rows],
            [
                Series("claimed", [int(r[1] or 0) for r in rows]),
                Series("resolved", [int(r[4] or 0) for r in rows]),
            ],
        )
        if rows
        else ""
    )
    columns = ("agent", "claimed", "replied in", "replies", "resolved", "median first reply s")
    return Table("agents", "Per agent", columns, rows, chart)


def report_page_build(report: Report) -> ReportPage:
    """The tiles and tables of the report page (and of its CSV export) for one report."""
    d = report.as_dict()
    tables = (
        _days(d),
        _hours(d),
        _reasons(d),
        _actions(d),
        _declines(d),
        _speed(d),
        _ratings(d),
        _agents(d),
        _summary(d),
    )
    return ReportPage(report=report, tiles=_tiles(d), tables=tables)
