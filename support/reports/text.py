"""The report as plain text (`manage.py report` without --json)."""

from __future__ import annotations

from typing import Any


def _pct(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f} %"


def _secs(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _duration(d: dict[str, Any]) -> str:
    return (
        f"n={d['count']}  mean {_secs(d['mean_s'])}  p50 {_secs(d['p50_s'])}  "
        f"p95 {_secs(d['p95_s'])}"
    )


def report_text(data: dict[str, Any]) -> str:
    """Every measure of `Report.as_dict()`, one per line, grouped as in docs/reports.md."""
    r, v, res = data["range"], data["volume"], data["resolution"]
    h, dec, sp, sat, cost = (
        data["handoffs"],
        data["declines"],
        data["speed"],
        data["satisfaction"],
        data["cost"],
    )
    lines = [
        f"Report {r['from']} .. {r['to']} ({r['time_zone']}"
        + (f", channel {r['channel']}" if r["channel"] else ", all channels")
        + f"; computed {r['computed_at']})",
        "",
        "Volume",
        f"  conversations              {v['conversations']}",
        f"  opened without a message   {v['opened_without_message']}",
        f"  bot involvement            {v['bot_involvement']['count']}"
        f"  ({_pct(v['bot_involvement']['rate'])})",
        f"  answered by the bot        {v['answered_by_bot']['count']}"
        f"  ({_pct(v['answered_by_bot']['rate'])})",
        "Resolution",
        f"  bot resolutions            {res['bot_resolutions']}  (confirmed {res['confirmed']},"
        f" assumed {res['assumed']}; awaiting {res['awaiting']}; reopened {res['reopened']})",
        f"  bot resolution rate        {_pct(res['bot_resolution_rate'])}",
        f"  automation rate            {_pct(res['automation_rate'])}",
        f"  resolved by a person       {res['resolved_by_person']}",
    ]
    for who in ("bot", "person"):
        d = res["durable"][who]
        lines.append(
            f"  durable ({who}){' ' * (17 - len(who))}{d['durable']} of {d['known']} known"
            f"  ({_pct(d['rate'])})"
        )
    lines += [
        "Hand-overs",
        f"  handed over                {h['handed_over']}  ({_pct(h['rate'])})",
    ]
    lines += [
        f"    {reason:<24} {x['count']}  ({_pct(x['share'])})"
        for reason, x in h["reasons"].items()
        if x["count"]
    ]
    lines += [
        "Declines",
        f"  declines                   {dec['declines']} of {dec['bot_replies']} bot replies"
        f"  ({_pct(dec['share'])}); in {dec['conversations']} conversations"
        f"  ({_pct(dec['conversation_rate'])})",
    ]
    lines += [f"    {reason:<24} {n}" for reason, n in dec["reasons"].items()]
    lines += [
        "Speed",
        f"  bot first response         {_duration(sp['bot_first_response'])}",
        f"  human first response       {_duration(sp['human_first_response'])}",
        f"  queue wait                 {_duration(sp['queue_wait'])}"
        f"  (unclaimed {sp['queue_wait']['unclaimed']})",
        f"  resolution time            {_duration(sp['resolution_time'])}",
        f"  bot resolution time        {_duration(sp['bot_resolution_time'])}",
        f"  answer time to first token {_duration(sp['answer_ttft'])}",
        f"  answer time, total         {_duration(sp['answer_total'])}",
        "Satisfaction",
        f"  thumbs                     up {sat['thumbs']['up']}, down {sat['thumbs']['down']}"
        f"  satisfaction {_pct(sat['thumbs']['satisfaction'])}"
        f"  response rate {_pct(sat['thumbs']['response_rate'])}",
        f"  end-of-chat rating         n={sat['rating']['count']}  mean "
        + ("—" if sat["rating"]["mean"] is None else f"{sat['rating']['mean']:.2f}")
        + f"  CSAT {_pct(sat['rating']['satisfaction'])}"
        f"  response rate {_pct(sat['rating']['response_rate'])}",
        "Cost",
        f"  CPU per answer             {_duration(cost['cpu_seconds_per_answer'])}",
        f"  CPU total                  {cost['cpu_seconds_total']:.1f} s",
        f"  compute cost               {cost['cost_total']:.4f} {cost['currency']}"
        f" at {cost['vcpu_hour_price']} {cost['currency']}/vCPU-hour"
        + (
            ""
            if cost["cost_per_answer"] is None
            else f"  ({cost['cost_per_answer']:.6f} per answer)"
        ),
        "Agents",
    ]
    if not data["agents"]:
        lines.append("  (none)")
    for a in data["agents"]:
        lines.append(
            f"  {a['name']:<26} claimed {a['claimed']}, replied in {a['replied']}"
            f" ({a['replies']} messages), resolved {a['resolved']},"
            f" median first reply {_secs(a['median_first_reply_s'])}"
        )
    return "\n".join(lines)
