"""The benchmark suite: run every script under bench/, merge their results, write the report.

Usage (from the repository root, with the project venv; `make bench` / `make bench-quick`)::

    python bench/run.py                  # full suite, under 60 min on 2 cores
    python bench/run.py --quick          # under 5 min; report in var/bench/quick/
    python bench/run.py --only retrieval,answers     # a subset (also --skip NAME,...)
    python bench/run.py --dry-run [--quick]          # the plan: arguments, budgets, skips
    python bench/run.py --render bench/results/2026-11-28.json [--publish]   # report only

Each script runs as a subprocess with its quick or full arguments and `--out <json>` (a script
that does not take `--out` yet is read from the newest `bench/results/<name>-*.json` it wrote).
The runner measures each one's wall time and CPU time (user + system of the script and every
process it started and waited for), stops one that runs past twice its time budget, and records
a skipped or failed script with the reason instead of aborting the suite.

Embedded defaults unless DATABASE_URL / REDIS_URL are set: then the live-chat benchmark runs the
production topology against PostgreSQL (a fresh database on DATABASE_URL's server, dropped at
the end) and Redis (a private redis-server, so a shared Redis is left alone). The retrieval,
answer and generation benchmarks always use their own SQLite knowledge base.

Outputs of a full run (or with --publish): bench/results/<date>.json (every script's JSON,
the machine, versions, memory bandwidth, derived cost figures), docs/benchmarks.md,
docs/img/*.png and the README's "Headline figures" section. A quick run writes the same into
var/bench/quick/ and leaves docs/ and the README alone. Every run keeps each script's raw JSON
and log in var/bench/<timestamp>/.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import _figures, _machine, _plots, _report  # noqa: E402

BENCH = REPO / "bench"
RESULTS_DIR = BENCH / "results"
DOCS_DIR = REPO / "docs"
README = REPO / "README.md"
VAR_DIR = REPO / "var" / "bench"
QUICK_DIR = VAR_DIR / "quick"

TARGET_S = {"quick": 300.0, "full": 3600.0}  # the whole suite on 2 cores
HARD_LIMIT_FACTOR = 2.0  # a script is stopped at this multiple of its budget
# Bulky text in answers.py's rows; the raw file in var/bench/<timestamp>/ keeps it.
ANSWER_ROW_TEXT = ("question", "reference", "answer", "generated", "baseline", "facts")
LLAMACPP_MISSING = (
    "llama-cpp-python is not installed (it is the optional extra: pip install -e '.[llamacpp]')"
)


@dataclass(frozen=True, slots=True)
class Script:
    """One benchmark script and its two argument sets; `quick=None`: full suite only."""

    name: str
    quick: tuple[str, ...] | None
    full: tuple[str, ...]
    budget_quick_s: float
    budget_full_s: float
    why_full_only: str = ""

    @property
    def path(self) -> Path:
        return BENCH / f"{self.name}.py"


# In running order. Budgets are the expected time on 2 idle cores with warm caches; the quick
# budgets add up to the 5-minute target and the full ones to the 60-minute one (the scripted
# conversations alone take 10).
SCRIPTS: tuple[Script, ...] = (
    # Full: 20,000 synthetic chunks here; retrieval_tune covers 100,000.
    Script("retrieval", ("--quick",), ("--synthetic", "20000"), 60, 300),
    # Full trimmed from 120 for training_load (its full runs took 56-88 s).
    Script("escalation", ("--quick",), (), 30, 100),
    Script("generation", ("--quick",), (), 60, 240),
    # Trimmed to make room for warmup: answers' and retrieval_tune's full budgets (their full
    # runs took 155-242 s and 128-210 s of 420 and 360, bench/results/2026-11-28*.json) and the
    # quick ones of answers and chat_load (whose full run, every level, took 81-94 s).
    # Its quick budget gave 15 s to reports' quick run.
    # Its full budget gave 40 s to learning (its full runs took 155-242 s).
    # And 30 s more of its full budget to training_load.
    Script("answers", ("--quick",), (), 55, 260),
    Script(
        "chat_load",
        ("--quick", "--levels", "1,4", "--idle", "100", "--idle-hold", "5"),
        (),
        45,
        # Trimmed from 300 to make room for reports, from 150 for training_load (its full runs
        # took 81-94 s).
        110,
    ),
    # Fresh processes with the warm-up off and on: the first answer after a start.
    Script("warmup", ("--quick",), (), 35, 150),
    Script(
        "conversations",
        None,
        (),
        0,
        600,
        why_full_only="full suite only (35 scripted conversations with the real models take about "
        "10 minutes)",
    ),
    # The reports of a month: 20,000 conversations on SQLite; with a PostgreSQL DATABASE_URL
    # also 20,000 and the 100,000 on PostgreSQL (a database of its own on that server,
    # dropped afterwards; plan() adds REPORTS_PG_BUDGET_S). SQLite at 100,000 runs by hand
    # (bench/results/reports-by-hand.json, shown in the same table).
    Script(
        "reports",
        ("--quick", "--backends", "sqlite"),
        ("--conversations", "20000", "--pg-conversations", "20000,100000"),
        15,
        150,
    ),
    # The question memory learnt from one half of the doc2dial dialogues, evaluated on the other.
    Script(
        "learning",
        None,
        # Answer memory's comparison with the model's own answers generates (about 10 s an
        # answer): by hand (`python bench/learning.py`, 8 a fold), not in the suite.
        ("--generated", "0"),
        0,
        # 100 s for the question memory, 30 for answer memory's answers and threshold
        # cross-validation (given by retrieval_tune).
        130,
        why_full_only="full suite only (importing the 981 agent replies of the dev dialogues, "
        "whose grounding searches the knowledge base once each, takes over a minute; `--quick`, "
        "40 dialogues a half, still takes half a minute, more than the quick suite has left)",
    ),
    Script(
        "retrieval_tune",
        None,
        ("--skip-throughput",),
        0,
        # Trimmed from 300 for learning (its full runs took 128-210 s), from 240 for
        # training_load, from 220 for learning's answer memory.
        190,
        why_full_only="full suite only (a 100,000-chunk HNSW index takes about 2 minutes to build)",
    ),
    # Time to first token idle and while a retriever specialisation trains beside the serving
    # process (niced, one torch thread, as the training worker); the demo KB is warmup's cache.
    Script(
        "training_load",
        None,
        (),
        0,
        110,
        why_full_only="full suite only (before its first loaded answer a real training run must "
        "start: examples imported, the trainer loaded, its pairs built and a first optimiser "
        "step done, about 40 s on idle cores, more than the quick suite has left; `--quick`, two "
        "questions, runs by hand)",
    ),
    # Specialising on one half of the doc2dial dev dialogues' agent replies, evaluated on the
    # other half: the retriever and the chat model, each in its quick form (one fold, capped
    # replies, questions and steps; the 2-fold runs take hours and run by hand).
    Script(
        "specialise_retrieval",
        None,
        ("--quick",),
        0,
        330,
        why_full_only="full suite only (fine-tuning the retriever on 120 replies and embedding "
        "the knowledge base with it takes about 5 minutes)",
    ),
    Script(
        "specialise",
        None,
        ("--quick",),
        0,
        840,
        why_full_only="full suite only (60 replies, 12 LoRA steps of the chat model, two GGUF "
        "exports checked, the gate and 40 questions answered by both models take over 10 "
        "minutes)",
    ),
)
# Scripts under bench/ that the suite leaves out on purpose, and why. Any other script that is
# not in SCRIPTS shows up in the plan and the report as "not registered", so none is forgotten.
NOT_IN_SUITE: dict[str, str] = {
    "retrieval_variants": "a tuning sweep of retrieval variants (chunking, fusion, BM25), run by "
    "hand while tuning; `retrieval` measures the settings it chose",
    "context_rule": "a sweep of candidate rules for when history may join retrieval (hours over "
    "the dev dialogues), run by hand while tuning; `answers` measures the rule it chose",
    "decline_fit": "a cross-validated fit of the decline thresholds over the dev dialogues, run by "
    "hand while tuning; `answers` measures the thresholds it chose",
    "grounding_fit": "a fit of the threshold that grounds an example's answer on a chunk (or "
    "makes it a knowledge gap) over the dev dialogues, run by hand while tuning; "
    "docs/learning.md records the choice",
    "chat_export": "a calibration of the chat-model export check (each GGUF type and runtime "
    "against torch on the demo prompts, and a corrupted export it must fail), run by hand; "
    "docs/learning.md records the tolerances",
    "bridge": "a sweep of the paraphrase bridge's threshold and weight over the dev dialogues "
    "(test half reported), run by hand while tuning; the bridge ships off and docs/generation.md "
    "records the choice",
    "fact_select": "the fact ranker learned from approved examples against the lexical "
    "ranking and an oracle, 2-fold over the dev dialogues (5-6 minutes: every turn searched and "
    "every candidate sentence embedded), and `--service`, `specialise --facts` itself; run by "
    "hand, docs/learning.md records both",
    "coverage_fit": "a measurement of retrieval confidence over the question's content words "
    "(re-fitted, dev folds by dialogue, test half reported), run by hand; the shipped coverage "
    "stays and docs/generation.md records why",
    "gaps_fit": "a fit of the distance threshold that clusters knowledge-gap questions into "
    "topics, on the doc2dial paraphrase groups (dev half, test half reported), run by hand while "
    "tuning; docs/reports.md records the choice",
}
# bench/reports.py on PostgreSQL (20,000 and 100,000 conversations), on top of its budget when
# DATABASE_URL names a PostgreSQL server. Measured 2026-12-03 at a load average of 12-16 on 2
# CPUs: 1,246 s for both sizes, where SQLite's 20,000 took 351 s (about 3.5x what the suite's
# 150 s budget allows it on quiet cores); scaled alike, about 360 s.
REPORTS_PG_BUDGET_S = 360.0
# The shared eval knowledge base (bench/_common.py), built before the scripts that use it so a
# cold build is not charged to one script's budget.
KB_USERS = {"retrieval": "quick", "generation": "both", "answers": "both"}
PREPARE_BUDGET_S = 240.0
PREPARE_CODE = (
    "import json, sys; sys.path.insert(0, 'bench'); import _common; "
    "kb = _common.eval_kb(); print(json.dumps({'cached': kb.cached, 'documents': kb.documents, "
    "'chunks': kb.chunks, 'build_s': kb.build_s}))"
)


@dataclass(slots=True)
class Step:
    """A script as this run will run it (or skip it)."""

    name: str
    args: list[str]
    budget_s: float
    skip: str | None = None
    skipped_parts: dict[str, str] = field(default_factory=dict)
    takes_out: bool = True


# -- planning -------------------------------------------------------------------------------------
def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def takes_out_flag(path: Path) -> bool:
    """Whether the script parses `--out` (else its default results file is read)."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        return False
    return '"--out"' in source or "'--out'" in source


def services(env: Mapping[str, str]) -> dict[str, Any]:
    """Which services the live-chat benchmark runs against, from DATABASE_URL / REDIS_URL."""
    db, redis = env.get("DATABASE_URL", ""), env.get("REDIS_URL", "")
    if not db and not redis:
        return {
            "topology": "embedded",
            "description": "embedded defaults: SQLite, in-memory channel layer and broker "
            "(DATABASE_URL and REDIS_URL unset); the eval benchmarks use their own SQLite "
            "knowledge base",
        }
    parts = urlsplit(db) if db else None
    return {
        "topology": "production",
        "database": "PostgreSQL" if db else "SQLite",
        "pg_host": (parts.hostname or "127.0.0.1") if parts else None,
        "pg_user": (parts.username or "postgres") if parts else None,
        "description": (
            "live chat: "
            + (
                f"PostgreSQL on {parts.hostname} (a fresh database, dropped afterwards)"
                if parts
                else "SQLite"
            )
            + " and Redis (a private redis-server, so a shared Redis is left alone), separate "
            "uvicorn and Celery worker processes; the eval benchmarks use their own SQLite "
            "knowledge base"
        ),
    }


def unregistered(scripts: Sequence[Script] = SCRIPTS, bench_dir: Path = BENCH) -> list[str]:
    """Scripts under bench/ that SCRIPTS does not run (helpers start with "_")."""
    known = {s.name for s in scripts} | {"run"}
    return sorted(
        p.stem for p in bench_dir.glob("*.py") if not p.name.startswith("_") and p.stem not in known
    )


def plan(
    profile: str,
    *,
    env: Mapping[str, str],
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    which: Callable[[str], str | None] = shutil.which,
    module_exists: Callable[[str], bool] = has_module,
    scripts: Sequence[Script] = SCRIPTS,
    bench_dir: Path = BENCH,
) -> list[Step]:
    """The steps of a run: arguments, budget, and why a script or part of one is skipped."""
    steps = []
    for s in scripts:
        quick = profile == "quick"
        base = s.quick if quick else s.full
        step = Step(
            s.name,
            list(base or ()),
            s.budget_quick_s if quick else s.budget_full_s,
            takes_out=takes_out_flag(s.path),
        )
        steps.append(step)
        if base is None:
            step.skip = s.why_full_only or "full suite only"
            continue
        if (only and s.name not in only) or s.name in skip:
            step.skip = "not selected (--only / --skip)"
            continue
        if s.name == "generation":
            backends = ["ctransformers"]
            if not module_exists("llama_cpp"):
                step.skipped_parts["llama.cpp backend"] = LLAMACPP_MISSING
            elif quick:  # it would double the script's time
                step.skipped_parts["llama.cpp backend"] = "quick profile: the default backend only"
            else:
                backends.append("llamacpp")
                step.budget_s *= 1.25
            step.args += ["--backends", ",".join(backends)]
        pg_url = urlsplit(env.get("DATABASE_URL", "")).scheme.startswith("postgres")
        if s.name == "reports" and not quick and pg_url:
            step.budget_s += REPORTS_PG_BUDGET_S
        if s.name == "chat_load":
            svc = services(env)
            if svc["topology"] == "embedded":
                step.args.append("--embedded")
            elif which("redis-server") is None:
                step.skip = "DATABASE_URL/REDIS_URL are set but redis-server is not installed"
            elif svc["database"] == "PostgreSQL":
                if which("createdb") is None:
                    step.skip = (
                        "DATABASE_URL is set but the PostgreSQL client (createdb) is missing"
                    )
                step.args += ["--pg-host", svc["pg_host"], "--pg-user", svc["pg_user"]]
            else:
                step.args.append("--sqlite")
    for name in unregistered(scripts, bench_dir):
        reason = NOT_IN_SUITE.get(name, "not registered in bench/run.py's SCRIPTS")
        steps.append(Step(name, [], 0, skip=reason, takes_out=False))
    return steps


def needs_eval_kb(steps: Sequence[Step], profile: str) -> bool:
    return any(not s.skip and KB_USERS.get(s.name) in ("both", profile) for s in steps)


# -- running --------------------------------------------------------------------------------------
def _tail(path: Path, limit: int = 70) -> str:
    """The last non-empty line of a log (progress bars end lines with \\r)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 4096))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [x.strip() for x in text.replace("\r", "\n").split("\n") if x.strip()]
    return lines[-1][:limit] if lines else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the script's process group (the scripts clean up on it), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 40.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _child_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Progress:
    """One bar for the whole run, in budget-seconds, so its ETA is the suite's."""

    def __init__(self, total: float, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=round(total),
            unit="s",
            disable=not enabled,
            bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} budget-s [{elapsed}<{remaining}] {postfix}",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        self.done = 0.0

    def write(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def tick(self, desc: str, elapsed: float, budget: float, postfix: str) -> None:
        self.bar.set_description_str(desc, refresh=False)
        self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.n = round(self.done + min(elapsed, budget))
        self.bar.refresh()

    def finish_step(self, budget: float) -> None:
        self.done += budget
        self.bar.n = round(self.done)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def run_process(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    budget_s: float,
    env: Mapping[str, str],
    progress: Progress,
    desc: str,
) -> dict[str, Any]:
    """Run one command to completion (or to twice its budget); wall, CPU, status."""
    cpu0, t0 = _child_cpu_s(), time.monotonic()
    status, reason = "ok", ""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            list(argv),
            cwd=REPO,
            env=dict(env),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        try:
            while True:
                try:
                    proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    pass
                elapsed = time.monotonic() - t0
                over = " (over budget)" if elapsed > budget_s else ""
                progress.tick(desc, elapsed, budget_s, _tail(log) + over)
                if elapsed > HARD_LIMIT_FACTOR * budget_s:
                    status = "timeout"
                    reason = f"stopped after {elapsed:.0f} s (budget {budget_s:.0f} s)"
                    _stop(proc)
                    break
        except KeyboardInterrupt:
            _stop(proc)
            raise
    wall = time.monotonic() - t0
    if status == "ok" and proc.returncode != 0:
        status = "failed"
        reason = f"exit code {proc.returncode}; the last line of its log: {_tail(log, 200)!r}"
    return {
        "status": status,
        "reason": reason,
        "returncode": proc.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(_child_cpu_s() - cpu0, 1),
        "budget_s": budget_s,
        "log": _rel(log),
    }


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def newest_result(name: str, since: float, directory: Path | None = None) -> Path | None:
    """The newest `<name>-*.json` a script wrote into bench/results/ since `since`."""
    directory = directory or RESULTS_DIR
    found = [
        p
        for p in directory.glob(f"{name}-*.json")
        if p.stat().st_mtime >= since - 1 and not p.name.endswith(".tmp")
    ]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def slim(name: str, result: dict[str, Any]) -> dict[str, Any]:
    """What the merged results file keeps of one script's JSON (answers' texts are dropped)."""
    if name == "answers" and isinstance(result.get("rows"), list):
        result = dict(result)
        result["rows"] = [
            {k: v for k, v in row.items() if k not in ANSWER_ROW_TEXT} for row in result["rows"]
        ]
    return result


def run_step(
    step: Step, *, workdir: Path, env: Mapping[str, str], progress: Progress, desc: str
) -> dict[str, Any]:
    script = BENCH / f"{step.name}.py"
    out = workdir / f"{step.name}.json"
    argv = [sys.executable, str(script), *step.args]
    if step.takes_out:
        argv += ["--out", str(out)]
    started = time.time()
    entry = run_process(
        step.name,
        argv,
        log=workdir / f"{step.name}.log",
        budget_s=step.budget_s,
        env=env,
        progress=progress,
        desc=desc,
    )
    entry["args"] = step.args
    if step.skipped_parts:
        entry["skipped_parts"] = step.skipped_parts
    source = out if out.exists() else newest_result(step.name, started)
    if source is not None:
        try:
            entry["result"] = slim(step.name, json.loads(source.read_text(encoding="utf-8")))
            entry["result_file"] = _rel(source)
            if source != out:
                shutil.copyfile(source, out)
        except (OSError, ValueError) as exc:
            entry["status"], entry["reason"] = "failed", f"unreadable results file {source}: {exc}"
    elif entry["status"] == "ok":
        entry["status"], entry["reason"] = "failed", "it wrote no results file"
    return entry


def prepare_eval_kb(
    *, workdir: Path, env: Mapping[str, str], progress: Progress, budget_s: float
) -> dict[str, Any]:
    entry = run_process(
        "eval_kb",
        [sys.executable, "-c", PREPARE_CODE],
        log=workdir / "eval_kb.log",
        budget_s=budget_s,
        env=env,
        progress=progress,
        desc="eval KB",
    )
    with contextlib.suppress(OSError, ValueError):
        lines = (workdir / "eval_kb.log").read_text().strip().splitlines()
        entry.update(json.loads(lines[-1]))
    return entry


def child_env() -> dict[str, str]:
    return os.environ | {
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def run_suite(
    profile: str,
    steps: Sequence[Step],
    *,
    progress_enabled: bool,
    budget_scale: float = 1.0,
    log: TextIO = sys.stderr,
) -> dict[str, Any]:
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ") + ("-quick" if profile == "quick" else "")
    workdir = VAR_DIR / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    env = child_env()
    t0 = time.monotonic()
    print(f"bench ({profile}): measuring the machine…", file=log, flush=True)
    results: dict[str, Any] = {
        "schema": 1,
        "profile": profile,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "started_at": started.isoformat(timespec="seconds"),
        "target_s": TARGET_S[profile],
        "budget_scale": budget_scale,
        "machine": _machine.machine_info(),
        "versions": _machine.versions(),
        "model": _machine.model_file(),
        "git": _machine.git_info(),
        "services": services(env),
        "bandwidth": _machine.memory_bandwidth(),
        "workdir": _rel(workdir),
        "scripts": {},
    }
    todo = [s for s in steps if not s.skip]
    prepare = needs_eval_kb(steps, profile)
    prepare_budget = PREPARE_BUDGET_S * budget_scale
    total = sum(s.budget_s for s in todo) + (prepare_budget if prepare else 0)
    progress = Progress(total, progress_enabled)
    try:
        if prepare:
            progress.write("eval KB: building or reusing the shared doc2dial knowledge base")
            kb = prepare_eval_kb(
                workdir=workdir, env=env, progress=progress, budget_s=prepare_budget
            )
            results["prepare"] = {"eval_kb": kb}
            progress.finish_step(prepare_budget)
            progress.write(f"  eval KB: {kb['status']}, {kb['wall_s']:.0f} s")
        for i, step in enumerate(steps, 1):
            if step.skip:
                results["scripts"][step.name] = {
                    "status": "skipped",
                    "reason": step.skip,
                    "args": [],
                    "budget_s": step.budget_s,
                }
                progress.write(f"[{i}/{len(steps)}] {step.name}: skipped ({step.skip})")
                continue
            progress.write(f"[{i}/{len(steps)}] {step.name} {' '.join(step.args)}")
            entry = run_step(
                step,
                workdir=workdir,
                env=env,
                progress=progress,
                desc=f"[{i}/{len(steps)}] {step.name}",
            )
            results["scripts"][step.name] = entry
            progress.finish_step(step.budget_s)
            over = " — over budget" if entry["wall_s"] > step.budget_s else ""
            progress.write(
                f"  {entry['status']}: {entry['wall_s']:.0f} s of a {step.budget_s:.0f} s budget, "
                f"{entry['cpu_s']:.0f} CPU-s{over}"
                + (f" ({entry['reason']})" if entry.get("reason") else "")
            )
    finally:
        progress.close()
        results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        results["wall_s"] = round(time.monotonic() - t0, 1)
        results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        results["derived"] = _figures.derive(results)
        (workdir / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    return results


# -- outputs --------------------------------------------------------------------------------------
def results_path(results: Mapping[str, Any], directory: Path | None = None) -> Path:
    """bench/results/<date>.json (<date>-quick.json), with -2, -3... when taken."""
    directory = directory or RESULTS_DIR
    date = str(results.get("started_at", ""))[:10] or dt.date.today().isoformat()
    stem = date + ("-quick" if results.get("profile") == "quick" else "")
    path = directory / f"{stem}.json"
    n = 2
    while path.exists():
        path = directory / f"{stem}-{n}.json"
        n += 1
    return path


def write_outputs(
    results: dict[str, Any], *, publish: bool, results_file: Path | None = None
) -> dict[str, Path]:
    """Write the results file (unless given), the report, its plots and (published) the
    README's headline section. Returns what was written."""
    results["derived"] = _figures.derive(results)
    if publish:
        docs, readme = DOCS_DIR, README
        if results_file is None or not results_file.is_relative_to(RESULTS_DIR):
            RESULTS_DIR.mkdir(parents=True, exist_ok=True)
            results_file = results_path(results)
    else:
        docs, readme = QUICK_DIR, None
        results_file = results_file or QUICK_DIR / "results.json"
    docs.mkdir(parents=True, exist_ok=True)
    results_file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=1, ensure_ascii=False, default=str) + "\n"
    if not results_file.exists() or results_file.read_text(encoding="utf-8") != text:
        results_file.write_text(text, encoding="utf-8")
    images = _plots.write_plots(results, docs / "img")
    page = docs / "benchmarks.md"
    page.write_text(
        _report.render_benchmarks(results, results_file=_rel(results_file), images=images),
        encoding="utf-8",
    )
    written = {"results": results_file, "report": page, "images": docs / "img"}
    if readme is not None:
        section = _report.readme_section(results, _rel(results_file))
        old = readme.read_text(encoding="utf-8")
        new = _report.update_readme(old, section)
        if new != old:
            readme.write_text(new, encoding="utf-8")
        written["readme"] = readme
    return written


def print_plan(profile: str, steps: Sequence[Step], out: TextIO = sys.stdout) -> None:
    total = 0.0
    print(f"{profile} profile (target {TARGET_S[profile] / 60:.0f} min on 2 cores):", file=out)
    for s in steps:
        if s.skip:
            print(f"  {s.name:15s} skipped: {s.skip}", file=out)
            continue
        total += s.budget_s
        extra = "" if s.takes_out else "  (no --out yet: reads bench/results/<name>-*.json)"
        print(f"  {s.name:15s} {s.budget_s:5.0f} s  {' '.join(s.args)}{extra}", file=out)
        for part, why in s.skipped_parts.items():
            print(f"  {'':15s} {part}: skipped, {why}", file=out)
    if needs_eval_kb(steps, profile):
        print("  (+ the shared eval KB: reused, or built once in about 2 min)", file=out)
    print(f"  budgets add up to {total:.0f} s", file=out)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    ap.add_argument("--quick", action="store_true", help="the quick profile (make bench-quick)")
    ap.add_argument("--only", default="", help="comma-separated scripts to run")
    ap.add_argument("--skip", default="", help="comma-separated scripts to leave out")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    ap.add_argument("--render", type=Path, help="re-render the report from this results file")
    ap.add_argument(
        "--publish",
        action="store_true",
        help="write docs/ and the README even for a quick run (a full run always does)",
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument(
        "--budget-scale",
        type=float,
        default=1.0,
        help="multiply every time budget (a slower or busy machine); default 1",
    )
    args = ap.parse_args(argv)

    if args.render:
        results = json.loads(args.render.read_text(encoding="utf-8"))
        publish = args.publish or results.get("profile") == "full"
        written = write_outputs(results, publish=publish, results_file=args.render.resolve())
        for what, path in written.items():
            print(f"{what}: {_rel(path)}")
        return 0

    profile = "quick" if args.quick else "full"
    names = {s.name for s in SCRIPTS}
    only = [x for x in args.only.split(",") if x]
    skip = [x for x in args.skip.split(",") if x]
    unknown = sorted(set(only + skip) - names)
    if unknown:
        ap.error(f"unknown script(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    steps = plan(profile, env=os.environ, only=only, skip=skip)
    for step in steps:
        step.budget_s *= args.budget_scale
    if args.dry_run:
        print_plan(profile, steps)
        return 0
    results = run_suite(
        profile,
        steps,
        progress_enabled=sys.stderr.isatty() and not args.no_progress,
        budget_scale=args.budget_scale,
    )
    written = write_outputs(results, publish=profile == "full" or args.publish)
    print()
    print(_report.headline_table(results))
    print()
    wall, target = results["wall_s"], TARGET_S[profile]
    print(
        f"{profile} suite: {wall / 60:.1f} min (target {target / 60:.0f} min"
        + (", OVER" if wall > target else "")
        + ")"
    )
    for what, path in written.items():
        print(f"{what}: {_rel(path)}")
    failed = [n for n, e in results["scripts"].items() if e["status"] not in ("ok", "skipped")]
    if failed:
        print(f"not ok: {', '.join(failed)} (see their logs in {results['workdir']})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
