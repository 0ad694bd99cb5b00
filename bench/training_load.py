"""Answering while a specialisation trains: time to first token idle and under training.

Usage (from the repository root, with the project venv)::

    python bench/training_load.py                    # 8 questions x 2 rounds, each idle and loaded
    python bench/training_load.py --quick            # 2 questions x 1 round
    python bench/training_load.py --niceness 0       # the trainer not niced (for comparison)
    python bench/training_load.py --trainer chat     # the chat model's training (issue 15), when
                                                     # `manage.py specialise --model` exists
    python bench/training_load.py --train-cmd "python my_trainer.py"   # any other command

Issue 14 item 9 says answering continues while a specialisation runs; issue 15 item 4 sets
the target: TTFT while training <= 1.5x idle. The parent copies the demo knowledge base
(`make run`'s, built once and cached as for bench/warmup.py) into a temporary data directory
and imports approved examples made from its sections (`examples_import --approve`: one
question per section heading, the section's opening sentences as the answer, its file as the
document), so a run has pairs to train on. Then one serving process (`make run`'s settings,
`serving_threads_configure()` as a worker process, models warmed up) answers a fixed set of
demo questions through the real pipeline (`answer_compose`: retrieval, the decision, the chat
model), while it runs the trainer beside it as the training worker is configured
(docker/compose.yaml's training-worker: `nice -n 10`, SUPPORT_SPECIALISE_THREADS=1; the task
also nices itself to SUPPORT_SPECIALISE_NICENESS, 10): by default `manage.py specialise
--retrieval`, the same run_execute as the Celery task, with many epochs so it never ends
during the measurement (it is stopped at the end; nothing it would promote matters here).

Each question is asked once idle and once loaded per round, phases in ABBA order and never
the same question twice in a row (the chat model reuses the previous prompt's common prefix),
with the trainer paused (SIGSTOP) for the idle answers and running for the loaded ones: both
halves see the same machine, which other jobs load too, and the same trainer state. The loaded answers start
once the trainer is training (its run's stage is `training`; a custom command: after
`--settle` seconds). TTFT is the pipeline's `first_token_ms` (question to the model's first
token: retrieval and prompt evaluation included). The answers are cut to
`--max-answer-tokens` (TTFT does not depend on the answer's length; the cut keeps the run
short). Reported: p50/p95 idle and loaded, the ratio of the medians (target <= 1.5), the
median of the per-question ratios, the trainer's CPU use while it ran (cores), the load
average (1 minute) before each answer.

Writes bench/results/training_load-<timestamp>.json (or --out) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import warmup

REPO = common.REPO
TARGET_RATIO = 1.5
QUESTIONS = (
    "How do I reset my router to factory settings?",
    "What does error code ERR-4032 mean?",
    "When is my monthly bill paid?",
    "What happens if a payment fails?",
    "How do I turn on two-step verification?",
    "My Wi-Fi is slow in the bedroom, what can I do?",
    "Can I take my Brightwave plan with me when I move house?",
    "How do I get a refund?",
)
# The training worker's configuration (docker/compose.yaml, training-worker; support.tasks).
TRAINER_NICENESS = 10
TRAINER_THREADS = 1
# Commands of the built-in trainers (run in the copied data directory's environment); the
# retriever's epochs are many so that training outlasts the measurement.
TRAINERS: dict[str, list[str]] = {
    "retrieval": [sys.executable, "manage.py", "specialise", "--retrieval", "--json"],
    "chat": [sys.executable, "manage.py", "specialise", "--model", "--json"],
}
TRAINER_ENV: dict[str, dict[str, str]] = {
    "retrieval": {"SUPPORT_SPECIALISE_EPOCHS": "1000"},
    # Enough passes that the run never ends during the measurement (it is stopped at the end).
    "chat": {"SUPPORT_CHAT_TRAIN_EPOCHS": "1000", "SUPPORT_CHAT_TRAIN_MAX_STEPS": "100000"},
}
STAGE_PROBED = ("retrieval", "chat")
CHILD_TIMEOUT_S = 1800
TRAINING_STAGE_TIMEOUT_S = 600
_CLK = os.sysconf("SC_CLK_TCK")


# -- the examples a run trains on -------------------------------------------------------------------
def demo_examples() -> list[dict[str, str]]:
    """One import line per section of the demo pages: the heading as a question, the section's
    first two sentences as the answer, the page as the document."""
    lines = []
    for page in sorted((REPO / "support" / "demo_kb").glob("*.md")):
        sections = re.split(r"^## +", page.read_text(), flags=re.M)[1:]
        for i, section in enumerate(sections):
            heading, _, body = section.partition("\n")
            text = " ".join(body.split())
            sentences = re.split(r"(?<=[.!?])\s+", text)
            answer = " ".join(sentences[:2]).strip()
            if not answer:
                continue
            for j, form in enumerate(("How does {h} work?", "I need help with {h}")):
                lines.append(
                    {
                        "id": f"{page.stem}-{i}-{j}",
                        "question": form.format(h=heading.strip().lower()),
                        "answer": answer,
                        "document": page.name,
                    }
                )
    return lines


# -- the serving process --------------------------------------------------------------------------
def _answer(question: str) -> dict[str, Any]:
    from support.answers.pipeline import answer_compose

    load = os.getloadavg()[0]
    draft = answer_compose(question=question)
    t = draft.timings
    return {
        "question": question,
        "action": str(draft.action),
        "generated": "first_token_ms" in t,
        "ttft_s": t["first_token_ms"] / 1000 if "first_token_ms" in t else None,
        "retrieval_s": t.get("retrieval_ms", 0.0) / 1000,
        "total_s": t["total_ms"] / 1000,
        "prompt_tokens": t.get("prompt_tokens"),
        "cached_prompt_tokens": t.get("cached_prompt_tokens"),
        "loadavg_1m": load,
    }


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its waited-for children (/proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime are fields 14-17 (1-based); after the ")" they start at 11.
    return sum(int(x) for x in fields[11:15]) / _CLK


class Trainer:
    """The training command (one process: `nice` execs it). In the caller's process group, so
    the suite's stop (SIGTERM, then SIGKILL, to the group) reaches it too, paused or not."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path) -> None:
        self.argv = list(argv)
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.started = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def cpu_s(self) -> float:
        return _cpu_s(self.proc.pid)

    def stop(self) -> int | None:
        self.resume()
        self._signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.proc.wait(30)
        self.log.close()
        return self.proc.returncode


def _wait_until_training(trainer: Trainer, kind: str | None, settle_s: float) -> dict[str, Any]:
    """Until the trainer's run is in its training stage (built-in trainers: the run row in the
    shared database), else `settle_s` seconds."""
    started = time.monotonic()
    if kind is None:
        while trainer.alive and time.monotonic() - started < settle_s:
            time.sleep(0.5)
        return {"waited_s": time.monotonic() - started, "stage": None}
    from support.models_learning import SpecialiseRun

    stage = None
    while trainer.alive and time.monotonic() - started < TRAINING_STAGE_TIMEOUT_S:
        run = SpecialiseRun.objects.order_by("-id").first()
        stage = run.stage if run is not None else None
        if stage == "training":
            break
        time.sleep(1.0)
    return {"waited_s": time.monotonic() - started, "stage": stage}


def _stage() -> str | None:
    from support.models_learning import SpecialiseRun

    run = SpecialiseRun.objects.order_by("-id").first()
    return run.stage if run is not None else None


def schedule(questions: Sequence[str], rounds: int) -> list[tuple[int, str, str]]:
    """(round, question, phase): every question once idle and once loaded per round, phases in
    ABBA order, and never the same question twice in a row (the chat model reuses the previous
    prompt's common prefix: a repeated question would skip its whole prompt evaluation)."""
    out = []
    for r in range(rounds):
        for half in (0, 1):
            for i, question in enumerate(questions):
                first = ("idle", "loaded")[(i // 2 + i + r + half) % 2]
                out.append((r, question, first))
    return out


def child_main(args: argparse.Namespace) -> int:
    import django

    # A stop (SIGTERM) runs the `finally` below, which ends the trainer.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    django.setup()
    from support.backends import serving_threads_configure
    from support.warmup import backends_warm_up

    serving_threads_configure()  # as a worker process does
    trainer_env = dict(os.environ, SUPPORT_SPECIALISE_THREADS=str(TRAINER_THREADS))
    trainer_env.update(json.loads(args.trainer_env))
    argv = ["nice", "-n", str(args.niceness), *json.loads(args.trainer_argv)]
    # Started first: its start and this process's warm-up overlap (neither is measured).
    trainer = Trainer(argv, trainer_env, Path(args.trainer_log))
    rows: list[dict[str, Any]] = []
    try:
        warm_up = backends_warm_up()
        _answer(QUESTIONS[-1])  # the first answer after loading is not measured (as warmup.py)
        ready = _wait_until_training(trainer, args.kind, args.settle)
        if not trainer.alive:
            Path(args.child_out).write_text(
                json.dumps({"trainer_failed": trainer.proc.returncode, "trainer_ready": ready})
            )
            return 0
        for r, question, phase in schedule(QUESTIONS[: args.questions], args.rounds):
            if phase == "idle":
                trainer.pause()
                time.sleep(args.pause)  # its threads are off the CPU
            else:
                trainer.resume()
            cpu0, t0 = trainer.cpu_s(), time.monotonic()
            row = _answer(question)
            row.update(
                phase=phase,
                round=r,
                trainer_alive=trainer.alive,
                trainer_cores=(trainer.cpu_s() - cpu0) / (time.monotonic() - t0),
            )
            rows.append(row)
        trainer.resume()
        stage_end = _stage() if args.kind else None
        alive_end = trainer.alive
    finally:
        code = trainer.stop()
    out = {
        "warm_up_s": warm_up.total_s,
        "trainer_argv": argv,
        "trainer_ready": ready,
        "trainer_stage_end": stage_end,
        "trainer_alive_end": alive_end,
        "trainer_exit": code,
        "rows": rows,
    }
    Path(args.child_out).write_text(json.dumps(out, indent=1))
    return 0


# -- parent ---------------------------------------------------------------------------------------
def _pct(values: Sequence[float], p: float) -> float | None:
    return common.percentile(values, p) if values else None


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r["generated"] and (r["phase"] == "idle" or r["trainer_alive"])]
    idle = [r["ttft_s"] for r in ok if r["phase"] == "idle"]
    loaded = [r["ttft_s"] for r in ok if r["phase"] == "loaded"]
    pairs: dict[tuple[int, str], dict[str, float]] = {}
    for r in ok:
        pairs.setdefault((r["round"], r["question"]), {})[r["phase"]] = r["ttft_s"]
    ratios = [p["loaded"] / p["idle"] for p in pairs.values() if len(p) == 2 and p["idle"]]
    idle_p50, loaded_p50 = _pct(idle, 50), _pct(loaded, 50)
    cores = [r["trainer_cores"] for r in ok if r["phase"] == "loaded"]
    loads = [r["loadavg_1m"] for r in rows]
    return {
        "answers": len(rows),
        "counted": len(ok),
        "idle": {"n": len(idle), "p50_s": idle_p50, "p95_s": _pct(idle, 95)},
        "loaded": {"n": len(loaded), "p50_s": loaded_p50, "p95_s": _pct(loaded, 95)},
        "ratio_p50": loaded_p50 / idle_p50 if idle_p50 and loaded_p50 else None,
        "ratio_p95": (
            _pct(loaded, 95) / _pct(idle, 95)  # type: ignore[operator]
            if idle and loaded and _pct(idle, 95)
            else None
        ),
        "pair_ratio_median": statistics.median(ratios) if ratios else None,
        "trainer_cores_loaded": statistics.median(cores) if cores else None,
        "trainer_cores_idle": statistics.median(
            [r["trainer_cores"] for r in ok if r["phase"] == "idle"] or [0.0]
        ),
        "loadavg_1m": {"min": min(loads), "median": statistics.median(loads), "max": max(loads)}
        if loads
        else None,
    }


def _run(argv: Sequence[str], env: dict[str, str], log: Path, timeout: float) -> None:
    with log.open("ab") as fh:
        fh.write(f"\n$ {' '.join(argv)}\n".encode())
        fh.flush()
        proc = subprocess.run(
            list(argv), cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n{tail}")


def _trainer_available(argv: Sequence[str], env: dict[str, str]) -> str | None:
    """Why a built-in trainer cannot run here (its command lacks the option), else None."""
    if argv[1:3] != ["manage.py", "specialise"]:
        return None
    out = subprocess.run(
        [argv[0], "manage.py", "specialise", "--help"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    ).stdout
    missing = [a for a in argv[3:] if a.startswith("--") and a not in out]
    return f"`manage.py specialise` has no {', '.join(missing)} here" if missing else None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 questions, 1 round")
    ap.add_argument("--trainer", choices=sorted(TRAINERS), default="retrieval")
    ap.add_argument("--train-cmd", help="any other training command (shell words), run niced")
    ap.add_argument("--questions", type=int, default=len(QUESTIONS))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--settle", type=float, default=30.0, help="--train-cmd: seconds to wait")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds after pausing the trainer")
    ap.add_argument("--max-answer-tokens", type=int, default=48)
    ap.add_argument(
        "--niceness",
        type=int,
        default=TRAINER_NICENESS,
        help=f"the trainer's niceness ({TRAINER_NICENESS}: the training worker's; 0: not niced)",
    )
    ap.add_argument("--out", type=Path, help="also write the results JSON here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--trainer-argv", help=argparse.SUPPRESS)
    ap.add_argument("--trainer-env", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--trainer-log", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        # Both kinds of run report a `training` stage (SpecialiseRun.stage); a custom command
        # gets --settle seconds.
        if args.kind not in STAGE_PROBED:
            args.kind = None
        return child_main(args)
    if args.quick:
        args.questions, args.rounds = 2, 1
    args.questions = max(1, min(args.questions, len(QUESTIONS)))

    # The suite stops a script with SIGTERM to its process group: the serving child then stops
    # the trainer (which it may have paused) and exits, and this process follows it.
    signal.signal(signal.SIGTERM, lambda *_: None)
    wall = time.perf_counter()
    machine = common.machine_info()
    if args.train_cmd:
        trainer_name, kind = "custom", None
        trainer_argv = shlex.split(args.train_cmd)
        extra_env: dict[str, str] = {}
    else:
        trainer_name, kind = args.trainer, args.trainer
        trainer_argv, extra_env = TRAINERS[args.trainer], TRAINER_ENV[args.trainer]
    payload: dict[str, Any] = {
        "bench": "training_load",
        "machine": machine,
        "profile": "quick" if args.quick else "full",
        "trainer": trainer_name,
        "questions": list(QUESTIONS[: args.questions]),
        "rounds": args.rounds,
        "max_answer_tokens": args.max_answer_tokens,
        "trainer_niceness": args.niceness,
        "trainer_threads": TRAINER_THREADS,
        "target_ratio": TARGET_RATIO,
    }
    with tempfile.TemporaryDirectory(prefix="bench-training-load-") as tmp_name:
        tmp = Path(tmp_name)
        log = tmp / "children.log"
        try:
            print("the demo knowledge base (built once and cached)...", file=sys.stderr)
            cached, reused, _ = warmup.demo_kb(log)
            data_dir = tmp / "data"
            # A copy: the run writes its rows, model folders and index versions.
            shutil.copytree(cached, data_dir, symlinks=True)
            env = warmup.product_env(
                data_dir,
                SUPPORT_WARMUP="true",
                SUPPORT_MAX_ANSWER_TOKENS=str(args.max_answer_tokens),
            )
            why_not = _trainer_available(trainer_argv, env)
            if why_not:
                raise LookupError(why_not)
            examples = tmp / "examples.jsonl"
            lines = demo_examples()
            examples.write_text("".join(json.dumps(x) + "\n" for x in lines))
            print(f"importing {len(lines)} approved examples...", file=sys.stderr)
            _run(
                [sys.executable, "manage.py", "examples_import", str(examples), "--approve"],
                env,
                log,
                600,
            )
            child_out = tmp / "child.json"
            print(
                f"answering idle and beside `{' '.join(trainer_argv[1:])}` "
                f"(load {os.getloadavg()[0]:.1f})...",
                file=sys.stderr,
            )
            _run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    "--kind",
                    kind or "",
                    "--trainer-argv",
                    json.dumps(trainer_argv),
                    "--trainer-env",
                    json.dumps(extra_env),
                    "--trainer-log",
                    str(tmp / "trainer.log"),
                    "--questions",
                    str(args.questions),
                    "--rounds",
                    str(args.rounds),
                    "--settle",
                    str(args.settle),
                    "--pause",
                    str(args.pause),
                    "--niceness",
                    str(args.niceness),
                    "--child-out",
                    str(child_out),
                ],
                env,
                log,
                CHILD_TIMEOUT_S,
            )
            child = json.loads(child_out.read_text())
            if "trainer_failed" in child:
                tail = (tmp / "trainer.log").read_text(errors="replace").strip().splitlines()
                raise LookupError(
                    f"the trainer exited ({child['trainer_failed']}) before it trained: "
                    + " | ".join(tail[-3:])[-600:]
                )
        except LookupError as exc:
            payload.update(skipped=str(exc), wall_s=time.perf_counter() - wall)
            path = common.write_results("training_load", payload, also=args.out)
            print(f"skipped: {exc}\nresults: {path}")
            return 0
        trainer_log = (tmp / "trainer.log").read_text(errors="replace").splitlines()[-5:]
    summary = summarize(child["rows"])
    payload.update(
        demo_kb={"dir": str(cached), "cached": reused},
        examples=len(lines),
        summary=summary,
        target_met=summary["ratio_p50"] is not None and summary["ratio_p50"] <= TARGET_RATIO,
        trainer_ready=child["trainer_ready"],
        trainer_stage_end=child["trainer_stage_end"],
        trainer_alive_end=child["trainer_alive_end"],
        trainer_log_tail=trainer_log,
        warm_up_s=child["warm_up_s"],
        rows=child["rows"],
        loadavg_end=list(os.getloadavg()),
        wall_s=time.perf_counter() - wall,
    )
    path = common.write_results("training_load", payload, also=args.out)
    print(markdown(payload))
    print(f"results: {path}")
    return 0


def markdown(p: dict[str, Any]) -> str:
    s, f = p["summary"], common.fmt
    loads = s.get("loadavg_1m") or {}
    return "\n".join(
        [
            f"## TTFT while `{p['trainer']}` trains ({p['machine']['cpus']} CPUs, load "
            f"{f(loads.get('min'), 1)}-{f(loads.get('max'), 1)})",
            "",
            common.markdown_table(
                ["phase", "answers", "TTFT p50 (s)", "TTFT p95 (s)", "trainer cores"],
                [
                    [
                        "idle (trainer paused)",
                        s["idle"]["n"],
                        f(s["idle"]["p50_s"], 2),
                        f(s["idle"]["p95_s"], 2),
                        f(s["trainer_cores_idle"], 2),
                    ],
                    [
                        "while training",
                        s["loaded"]["n"],
                        f(s["loaded"]["p50_s"], 2),
                        f(s["loaded"]["p95_s"], 2),
                        f(s["trainer_cores_loaded"], 2),
                    ],
                ],
            ),
            "",
            f"Ratio of the medians {f(s['ratio_p50'], 2)} (p95 {f(s['ratio_p95'], 2)}, median "
            f"per question {f(s['pair_ratio_median'], 2)}); target <= {p['target_ratio']}: "
            f"{'met' if p['target_met'] else 'NOT met'}.",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
