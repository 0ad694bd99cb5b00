"""The reports over a month of 100,000 conversations (docs/reports.md), on SQLite and PostgreSQL.

Usage (from the repository root, with the project venv)::

    python bench/reports.py                       # 100,000 conversations over 30 days
    python bench/reports.py --quick               # 500 conversations over 7 days
    python bench/reports.py --conversations 20000 --backends sqlite
    python bench/reports.py --conversations 20000,100000        # both sizes on both databases
    python bench/reports.py --conversations 20000 --pg-conversations 20000,100000   # the suite's

For each database a child process migrates a fresh one (SQLite: a file under /tmp;
PostgreSQL: a new database on DATABASE_URL's server, dropped at the end; skipped when
DATABASE_URL is not a PostgreSQL URL), seeds it with `bulk_create` and measures:

- `fill`: the first report of the month with an empty rollup table: every day computed from the
  raw rows and stored (what beat and the on-demand path do, all at once);
- `day`: recomputing one day (what a beat run does per changed day);
- `report`: the month read from the rollup (`report_build`), the median of 5 (target: under a
  second on PostgreSQL for 100,000 conversations);
- `command`: `manage.py report --from --to --json` in a fresh process (Django's start included);
- `beat`: one `report_rollup_run` an hour after the last message;
- `metrics`: the first `/metrics` snapshot of a process (it reads the history) and the next one.

The seeded mix, per conversation: 7 % opened without a message; 1-4 questions, each answered
(75 % generated, 10 % quoted) or declined (15 %); thumbs on 15 % of answers (80 % up); 18 %
handed over (reasons weighted as in a real queue), 85 % of those claimed after a lognormal wait
(median 3 minutes), answered, and mostly resolved; a rating on 40 % of resolved ones; an e-mail
address on 30 % (from a pool, so returns exist); 3 % come back one to three days later.
Channels: widget 80 %, e-mail 10 %, API 8 %, CLI 2 %. Arrivals follow a daytime profile.

Writes bench/results/reports-<timestamp>.json (or --out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

REPO = common.REPO
START = date(2026, 3, 1)
TARGET_REPORT_S = 1.0
BATCH = 5000
CHANNELS = (("widget", 0.80), ("email", 0.10), ("api", 0.08), ("cli", 0.02))
REASONS = (
    ("customer_request", 0.40),
    ("low_confidence", 0.25),
    ("repeated_failure", 0.10),
    ("frustration", 0.10),
    ("sensitive_topic", 0.08),
    ("ungrounded", 0.04),
    ("no_answer", 0.02),
    ("busy", 0.01),
)
DECLINE_REASONS = (("low_confidence", 0.5), ("no_passages", 0.2), ("no_facts", 0.2),
                   ("unknown_term", 0.1))  # fmt: skip
# Share of the day's arrivals per hour (UTC): quiet nights, a daytime plateau.
HOURLY = [1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 7, 7, 8, 8, 7, 6, 5, 4, 3, 2, 2, 1]


def pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


# --- the child: one database ---------------------------------------------------------------------
def child(args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    migrate_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    seeded = seed(args.conversations, args.days, args.seed)
    seed_s = time.perf_counter() - t0
    analyze_s = None
    if connection.vendor == "postgresql":
        # The planner's statistics, as autovacuum keeps them on a live server (a server with
        # autovacuum off, such as a CI one, has none after a bulk load: PostgreSQL then walks
        # the message table once per conversation for the per-conversation subqueries).
        t0 = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        analyze_s = time.perf_counter() - t0

    from support.reports import report_build, report_days_refresh, report_rollup_run
    from support.reports.metrics import metrics_snapshot

    end = START + timedelta(days=args.days - 1)
    month_end = datetime.combine(end, datetime.min.time(), tzinfo=UTC) + timedelta(days=1)
    now = month_end + timedelta(days=10)  # every window of the month has closed
    t0 = time.perf_counter()
    filled = report_build(start=START, end=end, now=now).as_dict()
    fill_s = time.perf_counter() - t0
    warm = []
    for _ in range(5):
        t0 = time.perf_counter()
        report = report_build(start=START, end=end, now=now + timedelta(seconds=5)).as_dict()
        warm.append(time.perf_counter() - t0)
    assert report["volume"] == filled["volume"]
    # The admin report page of the month (support.reports_admin), as a manager opens it:
    # the rollup read, the tables and SVG charts built and the template rendered.
    from django.contrib.auth import get_user_model
    from django.test import Client

    manager = get_user_model().objects.create_superuser("bench-manager", "m@example.com", None)
    browser = Client()
    browser.force_login(manager)
    page_url = f"/admin/support/reportday/?start={START.isoformat()}&end={end.isoformat()}"
    pages = []
    for _ in range(5):
        t0 = time.perf_counter()
        response = browser.get(page_url)
        pages.append(time.perf_counter() - t0)
        assert response.status_code == 200, response.status_code
    # The command reads the rows just stored (final: computed ten days after the month).
    env = dict(os.environ)
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "manage.py", "report", "--from", START.isoformat(), "--to",
         end.isoformat(), "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    command_s = time.perf_counter() - t0
    from_command = json.loads(out.stdout)
    django_start_s = None
    if not args.quick:  # a bare Django start beside the command's time (not in --quick)
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True,
            timeout=600, check=True,
        )  # fmt: skip
        django_start_s = time.perf_counter() - t0
    day = START + timedelta(days=args.days // 2)
    days = []
    for _ in range(3):
        t0 = time.perf_counter()
        report_days_refresh(days=[day], now=now)
        days.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    run = report_rollup_run(now=month_end + timedelta(hours=1))
    beat_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics_snapshot()
    metrics_first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    snap = metrics_snapshot()
    metrics_next_s = time.perf_counter() - t0
    return {
        "database": connection.vendor,
        "conversations": args.conversations,
        "days": args.days,
        "seeded": seeded,
        "migrate_s": round(migrate_s, 2),
        "seed_s": round(seed_s, 2),
        "analyze_s": None if analyze_s is None else round(analyze_s, 2),
        "fill_s": round(fill_s, 3),
        "fill_per_day_s": round(fill_s / args.days, 3),
        "report_s": round(statistics.median(warm), 4),
        "report_runs_s": [round(x, 4) for x in warm],
        "page_s": round(statistics.median(pages), 4),
        "page_runs_s": [round(x, 4) for x in pages],
        "day_refresh_s": round(statistics.median(days), 3),
        "beat_run_s": round(beat_s, 3),
        "beat_days": len(run.days),
        "metrics_first_scrape_s": round(metrics_first_s, 3),
        "metrics_next_scrape_s": round(metrics_next_s, 4),
        "command_s": round(command_s, 3),
        "django_start_s": None if django_start_s is None else round(django_start_s, 3),
        "counted": {
            "conversations": report["volume"]["conversations"],
            "opened_without_message": report["volume"]["opened_without_message"],
            "command_conversations": from_command["volume"]["conversations"],
            "bot_replies_total": sum(snap.totals.answers.values()),
        },
        "report_sample": {
            k: report[k] for k in ("volume", "resolution", "handoffs", "satisfaction", "cost")
        },
    }


def seed(n: int, days: int, seed_value: int) -> dict[str, int]:
    """`n` conversations over `days` days from START, with their messages, thumbs, hand-overs,
    system lines and ratings (timestamps as given: auto_now is switched off while seeding)."""
    from django.contrib.auth import get_user_model

    from support.models import Conversation, Escalation, Feedback, Message

    for model in (Conversation, Message, Escalation, Feedback):
        for f in model._meta.concrete_fields:
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
                f.auto_now = f.auto_now_add = False  # type: ignore[attr-defined]
    rng = random.Random(seed_value)
    users = get_user_model()
    agents = [
        users.objects.create(username=f"agent{i}", first_name=f"Agent{i}", is_staff=True)
        for i in range(8)
    ]
    emails = [f"customer{i}@example.com" for i in range(max(50, n // 20))]
    counts = {"conversations": 0, "messages": 0, "feedback": 0, "escalations": 0}
    per_day = n // days
    hours = [h for h, w in enumerate(HOURLY) for _ in range(w)]
    for d in range(days):
        convs: list[Any] = []
        msgs: list[tuple[Any, dict[str, Any], str | None]] = []  # (conversation, fields, thumb)
        escs: list[Any] = []
        base = datetime.combine(START + timedelta(days=d), datetime.min.time(), tzinfo=UTC)
        for _ in range(per_day if d < days - 1 else n - per_day * (days - 1)):
            t = base + timedelta(hours=rng.choice(hours), seconds=rng.uniform(0, 3600))
            conv = Conversation(
                id=uuid.uuid4(),
                channel=pick(rng, CHANNELS),
                customer_email=rng.choice(emails) if rng.random() < 0.3 else "",
                created_at=t,
                updated_at=t,
            )
            convs.append(conv)
            if rng.random() < 0.07:
                continue
            questions = rng.choice((1, 1, 1, 2, 2, 3, 4))
            escalate_at = rng.randrange(questions) if rng.random() < 0.18 else None
            for i in range(questions):
                t += timedelta(seconds=rng.uniform(5, 90))
                msgs.append((conv, {"role": "customer", "created_at": t}, None))
                if i == escalate_at:
                    t = _handover(rng, conv, t, msgs, escs, agents)
                    break
                t += timedelta(seconds=rng.uniform(1.5, 4.0))
                r = rng.random()
                action = "answer" if r < 0.75 else "extractive" if r < 0.85 else "escalate"
                ttft = rng.lognormvariate(6.4, 0.4)  # about 600 ms
                fields: dict[str, Any] = {
                    "role": "bot",
                    "created_at": t,
                    "action": action,
                    "reason": pick(rng, DECLINE_REASONS) if action == "escalate" else "grounded",
                    "timings": {
                        **({"ttft_ms": round(ttft, 1)} if action == "answer" else {}),
                        "total_ms": round(ttft + rng.uniform(300, 2500), 1),
                    },
                    "trace": {"cpu_ms": round(rng.uniform(600, 2600), 1)},
                }
                thumb = None
                if action != "escalate" and rng.random() < 0.15:
                    thumb = "up" if rng.random() < 0.8 else "down"
                msgs.append((conv, fields, thumb))
                if i == questions - 1 and escalate_at is None and rng.random() < 0.03:
                    # The customer comes back to the conversation days later.
                    t += timedelta(days=rng.uniform(1, 3))
                    msgs.append((conv, {"role": "customer", "created_at": t}, None))
                    t += timedelta(seconds=3)
                    msgs.append((conv, {**fields, "created_at": t}, None))
            conv.last_message_at = t
        Conversation.objects.bulk_create(convs, batch_size=BATCH)
        msgs.sort(key=lambda m: m[1]["created_at"])
        rows = [Message(conversation=c, text="…", **f) for c, f, _ in msgs]
        created = Message.objects.bulk_create(rows, batch_size=BATCH)
        thumbs = [
            Feedback(message=m, value=thumb, created_at=m.created_at)
            for m, (_, _, thumb) in zip(created, msgs, strict=True)
            if thumb is not None
        ]
        Feedback.objects.bulk_create(thumbs, batch_size=BATCH)
        Escalation.objects.bulk_create(escs, batch_size=BATCH)
        counts["conversations"] += len(convs)
        counts["messages"] += len(rows)
        counts["feedback"] += len(thumbs)
        counts["escalations"] += len(escs)
    return counts


def _handover(
    rng: random.Random,
    conv: Any,
    t: datetime,
    msgs: list[tuple[Any, dict[str, Any], str | None]],
    escs: list[Any],
    agents: list[Any],
) -> datetime:
    from support.models import Escalation

    reasons = [pick(rng, REASONS)]
    if rng.random() < 0.2:
        reasons.append(pick(rng, REASONS))
    esc = Escalation(conversation=conv, reasons=sorted(set(reasons)), created_at=t)
    msgs.append((conv, {"role": "system", "reason": "queued", "created_at": t}, None))
    escs.append(esc)
    if rng.random() >= 0.85:
        conv.status = "queued"
        return t
    agent = rng.choice(agents)
    t += timedelta(seconds=rng.lognormvariate(5.2, 0.9))  # about 3 minutes
    esc.claimed_at, esc.claimed_by, esc.state = t, agent, "claimed"
    msgs.append(
        (conv, {"role": "system", "reason": "claimed", "author": agent, "created_at": t}, None)
    )
    for _ in range(rng.choice((1, 2, 3))):
        t += timedelta(seconds=rng.uniform(20, 240))
        msgs.append((conv, {"role": "agent", "author": agent, "created_at": t}, None))
    if rng.random() < 0.9:
        t += timedelta(seconds=rng.uniform(30, 900))
        msgs.append(
            (conv, {"role": "system", "reason": "ended", "author": agent, "created_at": t}, None)
        )
        esc.state, esc.resolved_at = "resolved", t
        conv.status, conv.resolved_at = "resolved", t
        if rng.random() < 0.4:
            conv.rating = rng.choices((1, 2, 3, 4, 5), weights=(5, 5, 10, 30, 50))[0]
            conv.rated_at = t + timedelta(seconds=20)
    else:
        conv.status = "agent"
    return t


# --- the parent ------------------------------------------------------------------------------------
def _pg_url() -> str | None:
    url = os.environ.get("DATABASE_URL", "")
    return url if urlsplit(url).scheme.startswith("postgres") else None


def run_backend(backend: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="chatbot.settings.test",
        SUPPORT_DATA_DIR=str(tmp / f"data-{backend}-{args.conversations}"),
        SUPPORT_REPORT_TIME_ZONE="UTC",
        PYTHONPATH=str(REPO),
    )
    drop: list[str] | None = None
    if backend == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{tmp / f'reports-{args.conversations}.sqlite3'}"
    else:
        base = _pg_url()
        assert base is not None
        parts = urlsplit(base)
        name = f"bench_reports_{os.getpid()}"
        admin = urlunsplit(parts._replace(path="/postgres"))
        subprocess.run(["psql", admin, "-qc", f"CREATE DATABASE {name}"], check=True, timeout=60)
        drop = ["psql", admin, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"]
        env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", "--conversations", str(args.conversations),
             "--days", str(args.days), "--seed", str(args.seed),
             *(["--quick"] if args.quick else [])],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        if proc.returncode != 0:
            return {"database": backend, "error": proc.stderr[-3000:]}
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        if drop is not None:
            subprocess.run(drop, check=False, timeout=60, capture_output=True)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Reports over {', '.join(f'{n:,}' for n in result.get('sizes') or [result['conversations']])}"
        f" conversations in {result['days']} days "
        "(median of 5 reads; `fill` computes every day from the raw rows):",
        "",
        "| database | conversations | seed | fill (per day) | one day | month from the rollup | "
        "report page | `report --json` (process) | beat run | first / next metrics scrape |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        if "skipped" in r:
            continue  # listed below the table
        if "error" in r:
            lines.append(f"| {r['database']} | failed: see the JSON |||||||||")
            continue
        lines.append(
            f"| {r['database']} | {r['conversations']:,} | {r['seed_s']:.0f} s | {r['fill_s']:.1f} s "
            f"({r['fill_per_day_s']:.2f} s) | {r['day_refresh_s']:.2f} s | "
            f"{r['report_s'] * 1000:.0f} ms | {common.fmt(_ms(r.get('page_s')), 0)} ms | "
            f"{r['command_s']:.2f} s "
            f"(Django start {common.fmt(r['django_start_s'], 2)} s) | {r['beat_run_s']:.2f} s "
            f"({r['beat_days']} days) | {r['metrics_first_scrape_s']:.2f} s / "
            f"{r['metrics_next_scrape_s'] * 1000:.0f} ms |"
        )
    for r in result["runs"]:
        if "skipped" in r:
            lines.append(f"\n{r['database']}: skipped ({r['skipped']}).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 conversations over 7 days")
    parser.add_argument(
        "--conversations", default=None, help="how many (a comma list: one run per size)"
    )
    parser.add_argument("--days", type=int, default=None)
    parser.add_argument(
        "--pg-conversations", default=None, help="PostgreSQL's sizes (default: --conversations)"
    )
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.conversations is None:
        args.conversations = "500" if args.quick else "100000"
    sizes = [int(x) for x in str(args.conversations).split(",") if x.strip()]
    pg_sizes = [int(x) for x in str(args.pg_conversations or "").split(",") if x.strip()] or sizes
    args.conversations = max(sizes)
    if args.days is None:
        args.days = 7 if args.quick else 30
    if args.child:
        print(json.dumps(child(args), default=str))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for backend in args.backends.split(","):
            if backend == "postgresql" and (_pg_url() is None or shutil.which("psql") is None):
                runs.append({"database": "postgresql", "skipped": "DATABASE_URL is not a "
                             "PostgreSQL URL (or psql is missing)"})  # fmt: skip
                continue
            for size in pg_sizes if backend == "postgresql" else sizes:
                runs.append(run_backend(backend, argparse.Namespace(**{**vars(args),
                            "conversations": size}), tmp))  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "script": "reports",
        "date": datetime.now(UTC).date().isoformat(),
        "conversations": args.conversations,
        "sizes": sorted({*sizes, *pg_sizes}),
        "days": args.days,
        "quick": args.quick,
        "target_report_s": TARGET_REPORT_S,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": common.machine_info(),
        "runs": runs,
    }
    path = common.write_results("reports", result, also=args.out)
    print(markdown(result))
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
