"""The scripted conversations (tests/conversations/cases.py) as a benchmark: their pass rate.

Usage (from the repository root, with the project venv)::

    python bench/conversations.py [--out results.json] [--report-only FILE]

Every case is played through the real chat path by the same runner the CI test uses
(tests/conversations/runner.py): the customer's websocket, the services, the answer task with
the real embedder and chat model over `make run`'s demo knowledge base (support/demo_kb), and
the agent services for people (claim, reply, hand back, resolve). A case passes when every turn
has the expected outcome (answer, decline, handoff, ack) and its reply states each fact it must
and none it must not. The script runs that test under pytest in a subprocess (its own test
database, the embedded defaults unless DATABASE_URL / REDIS_URL are set) and reads the
per-turn report it writes; the test's own verdict (which also checks the list of cases known
to fail) does not decide the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/conversations/test_conversations.py"


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Pass rates of cases and of turns, and each failing case with its problems."""
    turns = [t for r in rows for t in r["turns"]]
    failing = [
        {
            "case": r["case"],
            "problems": [
                f"{t['customer'] or '(after the agent)'!r}: {'; '.join(t['problems'])}"
                for t in r["turns"]
                if t["problems"]
            ],
        }
        for r in rows
        if not r["passed"]
    ]
    passed = sum(bool(r["passed"]) for r in rows)
    turns_passed = sum(not t["problems"] for t in turns)
    return {
        "cases": len(rows),
        "passed": passed,
        "pass_rate": passed / len(rows) if rows else None,
        "turns": len(turns),
        "turns_passed": turns_passed,
        "turn_pass_rate": turns_passed / len(turns) if turns else None,
        "failing": failing,
    }


def run_cases(report: Path) -> tuple[int, float, str]:
    """Play every case under pytest; (exit code, seconds, the tail of its output)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", TEST, "-q", "--conversations-report", str(report)],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, time.perf_counter() - started, (proc.stdout + proc.stderr)[-4000:]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, help="also write the results JSON here")
    ap.add_argument(
        "--report-only",
        type=Path,
        help="summarise a report the test wrote (--conversations-report) instead of playing",
    )
    args = ap.parse_args(argv)

    if args.report_only:
        rows, code, seconds, tail = json.loads(args.report_only.read_text()), None, None, ""
    else:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "conversations.json"
            code, seconds, tail = run_cases(report)
            if not report.exists():
                print(tail, file=sys.stderr)
                print("the conversation test wrote no report: nothing was played", file=sys.stderr)
                return 1
            rows = json.loads(report.read_text())
    result = {
        "benchmark": "conversations",
        "summary": summarise(rows),
        "rows": rows,
        "seconds": seconds,
        # 0: every case passed or is listed as known to fail with its reason; 1: not so.
        "test_exit_code": code,
    }
    s = result["summary"]
    print(
        f"{s['passed']}/{s['cases']} conversations pass ({s['pass_rate']:.0%}); "
        f"turns {s['turns_passed']}/{s['turns']}"
    )
    for f in s["failing"]:
        print(f"  FAIL {f['case']}: {' | '.join(f['problems'])}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
