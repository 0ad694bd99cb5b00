"""The first answer after a start, with the model warm-up off and on (support/warmup.py).

Usage (from the repository root, with the project venv)::

    python bench/warmup.py              # 3 starts per mode, 3 warm answers each, + "at once"
    python bench/warmup.py --quick      # 1 start per mode, 2 warm answers each

The parent builds the demo knowledge base (`make run`'s, support/demo_kb) in a temporary data
directory, then starts one fresh Python process per measurement with `make run`'s settings
(chatbot.settings.local, SQLite), which does what a serving worker process does at start:
`django.setup()`, `backends.serving_threads_configure()`, then `backends_warm_up_start()`
with SUPPORT_WARMUP off or on. Modes:

- off: the first question is asked right away; it loads the embedder, the index and the chat
  model (what a worker did before the warm-up).
- on: the first question is asked once the warm-up has finished (the worker is "ready"; in
  the embedded mode /readyz says so); `ready_s` is the process's start to that moment.
- at once (full run only): warm-up on, but the first question is asked the moment the warm-up
  thread starts: a customer who arrives during it must not wait longer than with it off.

Then the same process answers the warm questions (other questions, so no prompt is reused
whole). TTFT is `first_token_ms` of the answer's timings: from `answer_compose` being called
to the model's first token (retrieval, any backend loading, prompt evaluation); every question
is one the pipeline answers with the model (checked: a run whose answer is not generated
counts as failed). ratio = first TTFT / median warm TTFT of the same process; the target is
ratio <= 2 with the warm-up on. Starts alternate off/on so a change in the machine's load
hits both. The knowledge base is built once and cached (in /tmp, keyed like the eval KB); the
process that builds it also loads the models once (not measured), so the converted model copy
exists and the files are in the page cache for every mode alike: a restart on the same
machine (a new machine reads them from disk first). In the suite the scripts before this one
have just loaded the same model files.

Writes bench/results/warmup-<timestamp>.json (or --out) and prints a Markdown table.
"""

from __future__ import annotations

import time

_PROCESS_STARTED = time.perf_counter()  # a child's start: before Django and the models

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

REPO = common.REPO
TARGET_RATIO = 2.0
FIRST_QUESTION = "How do I reset my router to factory settings?"
WARM_QUESTIONS = (
    "What does error code ERR-4032 mean?",
    "When is my monthly bill paid?",
    "What happens if a payment fails?",
)
CHILD_TIMEOUT_S = 600
DEMO_KB_CACHE = common.KB_CACHE_ROOT.parent / "smallbot-bench-demo-kb"
_STRIPPED_PREFIXES = ("DJANGO_", "SUPPORT_", "CELERY_")
_STRIPPED = {"DATABASE_URL", "REDIS_URL", "PORT"}


# -- child: one fresh process -------------------------------------------------------------------
def _answer(question: str) -> dict[str, Any]:
    from support.answers.pipeline import answer_compose

    started = time.perf_counter()
    shown: list[float] = []

    def on_delta(_: str) -> None:
        if not shown:
            shown.append(time.perf_counter() - started)

    draft = answer_compose(question=question, on_delta=on_delta)
    t = draft.timings
    return {
        "question": question,
        "action": str(draft.action),
        "reason": str(draft.reason),
        "generated": "first_token_ms" in t,
        "ttft_s": t["first_token_ms"] / 1000 if "first_token_ms" in t else None,
        "model_ttft_s": t["ttft_ms"] / 1000 if "ttft_ms" in t else None,
        "retrieval_s": t.get("retrieval_ms", 0.0) / 1000,
        "first_text_s": shown[0] if shown else None,
        "total_s": t["total_ms"] / 1000,
        "prompt_tokens": t.get("prompt_tokens"),
        "cached_prompt_tokens": t.get("cached_prompt_tokens"),
    }


def child_main(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from support.backends import serving_threads_configure
    from support.warmup import backends_warm_up_start, backends_warm_up_wait

    serving_threads_configure()  # as the worker_init / worker_process_init hooks do
    setup_s = time.perf_counter() - _PROCESS_STARTED
    started = backends_warm_up_start()
    status = None
    if args.mode == "on":
        status = backends_warm_up_wait()
    ready_s = time.perf_counter() - _PROCESS_STARTED
    first = _answer(FIRST_QUESTION)
    if args.mode == "at_once":
        status = backends_warm_up_wait()
    warm = [_answer(q) for q in WARM_QUESTIONS[: args.warm]]
    result = status.result if status is not None else None
    out = {
        "mode": args.mode,
        "warm_up_started": started,
        "setup_s": setup_s,
        "ready_s": ready_s,
        "warm_up": None
        if result is None
        else {
            "ok": result.ok,
            "total_s": result.total_s,
            "parts": {
                p.name: {"s": p.seconds, "ok": p.ok, "detail": p.detail} for p in result.parts
            },
        },
        "first": first,
        "warm": warm,
        "loadavg_1m": os.getloadavg()[0],
    }
    Path(args.child_out).write_text(json.dumps(out, indent=1))
    return 0


# -- parent ---------------------------------------------------------------------------------------
def product_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """`make run`'s environment: the embedded defaults on a private data directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _STRIPPED and not k.startswith(_STRIPPED_PREFIXES)
    }
    env.update(
        DJANGO_SETTINGS_MODULE="chatbot.settings.local",
        SUPPORT_DATA_DIR=str(data_dir),
        SUPPORT_INDEX_SYNC_INTERVAL_S="0",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def _run(argv: Sequence[str], env: dict[str, str], log: Path) -> None:
    with log.open("ab") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.run(
            list(argv),
            cwd=REPO,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=CHILD_TIMEOUT_S,
            check=False,
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{tail}")


def _demo_kb_key() -> str:
    """What the cached demo KB depends on: its pages, the ingestion code and settings (as for
    the eval KB), the demo loader and the migrations."""
    h = hashlib.sha256()
    common.ingest_key_update(h)
    for folder in (REPO / "support" / "demo_kb", REPO / "support" / "migrations"):
        for f in sorted(folder.glob("*.*")):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    h.update((REPO / "support" / "demo.py").read_bytes())
    return h.hexdigest()[:16]


def demo_kb(log: Path) -> tuple[Path, bool, float]:
    """The demo KB's data directory, built once and cached in DEMO_KB_CACHE (reused read-only:
    answering writes nothing); (directory, reused, seconds spent building)."""
    DEMO_KB_CACHE.mkdir(parents=True, exist_ok=True)
    data_dir = DEMO_KB_CACHE / f"kb-{_demo_kb_key()}"
    with common._file_lock(DEMO_KB_CACHE / f"{data_dir.name}.lock"):
        if (data_dir / "bench-demo-kb.json").exists():
            return data_dir, True, 0.0
        shutil.rmtree(data_dir, ignore_errors=True)  # a build that died midway
        build_s = demo_kb_build(data_dir, log)
        (data_dir / "bench-demo-kb.json").write_text(json.dumps({"build_s": build_s}))
    return data_dir, False, build_s


def demo_kb_build(data_dir: Path, log: Path) -> float:
    """migrate + the demo knowledge base, as `make run` does, and one unmeasured warm-up;
    seconds taken."""
    started = time.perf_counter()
    env = product_env(data_dir, SUPPORT_WARMUP="false")
    # The same process then runs the warm-up once, unmeasured: the converted model copy exists
    # and the model files are in the page cache for every measured start alike.
    code = (
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('migrate', interactive=False, verbosity=0); "
        "from support.demo import demo_kb_ensure; from support.warmup import backends_warm_up; "
        "print('demo KB:', demo_kb_ensure()); print('priming:', backends_warm_up().summary())"
    )
    _run([sys.executable, "-c", code], env, log)
    return time.perf_counter() - started


def start_once(data_dir: Path, mode: str, warm: int, tmp: Path, log: Path) -> dict[str, Any]:
    out = tmp / f"child-{mode}-{time.monotonic_ns()}.json"
    env = product_env(data_dir, SUPPORT_WARMUP="false" if mode == "off" else "true")
    load_before = os.getloadavg()[0]
    argv = [sys.executable, __file__, "--child", "--mode", mode, "--warm", str(warm)]
    _run([*argv, "--child-out", str(out)], env, log)
    row: dict[str, Any] = json.loads(out.read_text())
    row["loadavg_1m_before"] = load_before
    return row


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per mode: medians over its starts of the first TTFT, the warm TTFT and their ratio."""
    per_start = []
    for r in rows:
        warm = _median([a["ttft_s"] for a in r["warm"]])
        first = r["first"]["ttft_s"]
        per_start.append(
            {
                "first_ttft_s": first,
                "warm_ttft_s": warm,
                "ratio": first / warm if first is not None and warm else None,
            }
        )
    parts: dict[str, list[float]] = {}
    for r in rows:
        for name, part in ((r.get("warm_up") or {}).get("parts") or {}).items():
            parts.setdefault(name, []).append(part["s"])
    return {
        "starts": len(rows),
        "first_ttft_s": _median([p["first_ttft_s"] for p in per_start]),
        "first_ttft_max_s": max((p["first_ttft_s"] or 0.0) for p in per_start) if rows else None,
        "warm_ttft_s": _median([p["warm_ttft_s"] for p in per_start]),
        "ratio": _median([p["ratio"] for p in per_start]),
        "ratio_max": max((p["ratio"] or 0.0) for p in per_start) if rows else None,
        "first_model_ttft_s": _median([r["first"]["model_ttft_s"] for r in rows]),
        "first_retrieval_s": _median([r["first"]["retrieval_s"] for r in rows]),
        "setup_s": _median([r["setup_s"] for r in rows]),
        "ready_s": _median([r["ready_s"] for r in rows]),
        "warm_up_s": _median([(r.get("warm_up") or {}).get("total_s") for r in rows]),
        "warm_up_parts_s": {name: statistics.median(v) for name, v in parts.items()},
        "all_generated": all(
            r["first"]["generated"] and all(a["generated"] for a in r["warm"]) for r in rows
        ),
        "warm_up_ok": all((r.get("warm_up") or {}).get("ok", True) for r in rows),
        "per_start": per_start,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 start per mode, 2 warm answers")
    ap.add_argument("--starts", type=int, default=3, help="fresh processes per mode")
    ap.add_argument("--warm", type=int, default=3, help="warm answers per process")
    ap.add_argument("--out", type=Path, help="also write the results JSON here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("off", "on", "at_once"), help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.quick:
        args.starts, args.warm = 1, 2
    args.warm = max(1, min(args.warm, len(WARM_QUESTIONS)))

    wall = time.perf_counter()
    machine = common.machine_info()  # its load average is the one at the start
    rows: dict[str, list[dict[str, Any]]] = {"off": [], "on": [], "at_once": []}
    with tempfile.TemporaryDirectory(prefix="bench-warmup-") as tmp_name:
        tmp = Path(tmp_name)
        log = tmp / "children.log"
        print("the demo knowledge base (built once and cached)...", file=sys.stderr, flush=True)
        data_dir, kb_cached, kb_s = demo_kb(log)
        modes = ["off", "on"] * args.starts + ([] if args.quick else ["at_once"])
        for i, mode in enumerate(modes, 1):
            print(
                f"  [{i}/{len(modes)}] warm-up {mode} (load {os.getloadavg()[0]:.1f})",
                file=sys.stderr,
                flush=True,
            )
            row = start_once(data_dir, mode, args.warm, tmp, log)
            rows[mode].append(row)
            print(
                f"    first TTFT {row['first']['ttft_s']:.2f} s, warm "
                f"{_median([a['ttft_s'] for a in row['warm']]) or 0:.2f} s",
                file=sys.stderr,
            )

    summary = {mode: summarize(r) for mode, r in rows.items() if r}
    on = summary["on"]
    payload = {
        "bench": "warmup",
        "machine": machine,
        "loadavg_end": list(os.getloadavg()),
        "profile": "quick" if args.quick else "full",
        "first_question": FIRST_QUESTION,
        "warm_questions": list(WARM_QUESTIONS[: args.warm]),
        "target_ratio": TARGET_RATIO,
        "target_met": on["ratio"] is not None and on["ratio"] <= TARGET_RATIO,
        "demo_kb": {"dir": str(data_dir), "cached": kb_cached, "build_s": kb_s},
        "summary": summary,
        "rows": rows,
        "wall_s": time.perf_counter() - wall,
    }
    path = common.write_results("warmup", payload, also=args.out)

    f = common.fmt
    table = [
        [
            mode,
            s["starts"],
            f(s["first_ttft_s"], 2),
            f(s["warm_ttft_s"], 2),
            f"{f(s['ratio'], 1)} (max {f(s['ratio_max'], 1)})",
            f(s["ready_s"], 1),
            f(s["warm_up_s"], 1),
            ", ".join(f"{k} {v:.1f}" for k, v in s["warm_up_parts_s"].items()) or "—",
        ]
        for mode, s in summary.items()
    ]
    m = payload["machine"]
    print(f"## First answer after a start ({m['cpus']} CPUs, load {m['loadavg_1m']})\n")
    print(
        common.markdown_table(
            [
                "warm-up",
                "starts",
                "first TTFT p50 (s)",
                "warm TTFT p50 (s)",
                "first / warm",
                "ready after (s)",
                "warm-up (s)",
                "parts (s)",
            ],
            table,
        )
    )
    print(
        f"\nTarget: with the warm-up on, the first answer's TTFT ≤ {TARGET_RATIO:g}× a warm "
        f"one: {'met' if payload['target_met'] else 'NOT met'}."
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
