"""Simulated customers over real websockets against the production-style setup.

Usage (from the repository root, with the project venv)::

    python bench/chat_load.py            # 1, 4 and 8 concurrent customers, then 1,000 idle sockets
    python bench/chat_load.py --quick    # a short run: 1 and 4 customers, 200 idle sockets
    python bench/chat_load.py --sqlite   # SQLite instead of a fresh PostgreSQL database
    python bench/chat_load.py --embedded # `make run`'s one process (SQLite, in-memory layer)
    python bench/chat_load.py --quick --out result.json   # also: where to write the JSON

Everything runs on 127.0.0.1, in processes this script owns and stops (also on Ctrl-C/SIGTERM):
a private redis-server on a free port, a fresh PostgreSQL database (created with `createdb` as
user postgres, dropped at the end) or SQLite, `migrate` + `demo_setup` in a temporary
SUPPORT_DATA_DIR, one uvicorn process (`chatbot.asgi:application`, production settings) and one
Celery worker process (`--pool threads --concurrency 1`, all three queues). With `--embedded`
the topology is `make run`'s instead: one `manage.py serve` process (debug settings, SQLite, the
in-memory channel layer and broker, the Celery worker as a thread), no Redis, no PostgreSQL.

1. Warm-up: one question, so the worker loads (and converts) the model; reported separately.
2. Chat levels: for each concurrency C, C customers each open a socket, send `hello` and ask
   `--questions` questions from the demo knowledge base one after the other (the next one once
   the previous answer is stored). Measured from sending the message: time to the first
   `reply.delta` and to `reply.done`. Every level stops at `--level-timeout`.
3. Idle: up to `--idle` sockets that only send `hello`, then stay quiet for `--idle-hold`
   seconds; all are checked with an app-level ping/pong (and a sample with a protocol ping);
   the uvicorn process's RSS (psutil) before, after, and per connection.

Each level also records the CPU time the whole stack spent (psutil: every process this script
started, user + system), so CPU-seconds per answer can be read off.

Writes bench/results/chat_load-<timestamp>.json (or `--out`) and prints Markdown tables, with the
unhandled exceptions found in the uvicorn and worker logs and how long each process took to
exit on SIGTERM. `--keep-tmp` keeps the data directory and the logs.

All simulated customers share one client IP, so the per-IP and per-connection message rate
limits and the per-IP connection cap are raised for the run (SUPPORT_RATE_PER_IP /
SUPPORT_RATE_PER_CONNECTION / SUPPORT_MAX_CONNECTIONS_PER_IP); every other
setting is the product's default, including the 1.2 s answer debounce, which is part of every
time-to-first-delta below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

# Questions the demo knowledge base (support/demo_kb/) answers, across its topics.
QUESTIONS = [
    "What does error ERR-4032 mean?",
    "How do I reset my router to factory settings?",
    "My Wi-Fi is slow, what can I do?",
    "How do I get a refund?",
    "How can I change my payment method?",
    "I am moving house, can I take my Brightwave internet with me?",
    "How do I turn on two-step verification?",
    "What does error ERR-1101 mean?",
    "Is there a data limit?",
    "How long is the minimum term?",
]

MB = 1024 * 1024
EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Full|Closed\w*)):?( |$)")
MAX_RECONNECTS = 3  # per simulated customer and level


# ------------------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Children get SIGTERM if this script dies without its finally (e.g. SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Child:
    """A subprocess in its own session, logging to a file, stopped with SIGTERM then SIGKILL."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            list(args),
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> float | None:
        """Seconds it took to exit after SIGTERM (None: it had to be killed)."""
        try:
            if not self.alive():
                return 0.0
            started = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                return time.monotonic() - started
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                return None
        finally:
            self._log.close()


def run_step(
    name: str, args: Sequence[str], env: dict[str, str], logdir: Path, timeout: float
) -> float:
    started = time.monotonic()
    log = logdir / f"{name}.log"
    with log.open("ab") as out:
        result = subprocess.run(
            list(args),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"{name} failed ({result.returncode}):\n{tail}")
    return time.monotonic() - started


def wait_port(port: int, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{child.name} did not listen on {port} within {timeout:.0f} s")


def wait_ready(url: str, timeout: float, child: Child) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=5) as resp:
                body: dict[str, Any] = json.loads(resp.read())
                return body
        except urllib.error.HTTPError as exc:
            last = exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"/readyz not ready within {timeout:.0f} s: {last}")


def wait_log(child: Child, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited early:\n{child.log_tail()}")
        with contextlib.suppress(OSError):
            if needle in child.log_path.read_text(errors="replace"):
                return
        time.sleep(0.3)
    raise RuntimeError(f"{child.name}: no {needle!r} in its log within {timeout:.0f} s")


def raise_open_files(want: int) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE (inherited by the children) towards `want`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_bytes(pid: int) -> int:
    """RSS of a process and its children (uvicorn with one process has none)."""
    proc = psutil.Process(pid)
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return int(total)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds so far of these processes and their live children."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    t = p.cpu_times()
                    total += t.user + t.system
    return total


def num_fds(pid: int) -> int | None:
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).num_fds())
    return None


def tcp_sockets(pid: int, port: int) -> dict[str, int]:
    """The server process's TCP sockets on its listening port, by state (LISTEN excluded)."""
    states: dict[str, int] = {}
    with contextlib.suppress(psutil.Error):
        for conn in psutil.Process(pid).net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status != psutil.CONN_LISTEN:
                states[conn.status] = states.get(conn.status, 0) + 1
    return states


def log_errors(path: Path) -> dict[str, int]:
    """Unhandled exceptions in a server log, by the type on the last line of each chain."""
    counts: dict[str, int] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return counts
    chained = ("The above exception was the direct cause", "During handling of the above")
    for i, line in enumerate(lines):
        match = EXC_LINE.match(line)
        if not match or i == 0 or not lines[i - 1].startswith(" "):
            continue  # an exception line ends a traceback, whose lines are indented
        following = [x for x in lines[i + 1 : i + 3] if x.strip()]
        if following and following[0].startswith(chained):
            continue  # not the last exception of its chain
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


class Stack:
    """The services of one run; `close()` stops everything it started, in order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="chat-load-"))
        self.logdir = self.tmp / "logs"
        self.logdir.mkdir()
        self.children: list[Child] = []
        self.db_name: str | None = None
        self.web: Child | None = None
        self.worker: Child | None = None
        self.web_port = 0
        self.timings: dict[str, float] = {}
        self.stop_seconds: dict[str, float | None] = {}
        self.log_exceptions: dict[str, dict[str, int]] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}/ws/chat/"

    def _pg(self, tool: str, *extra: str) -> None:
        exe = shutil.which(tool)
        if exe is None:
            raise RuntimeError(f"{tool} is not installed (or use --sqlite)")
        subprocess.run(
            [exe, "-h", self.args.pg_host, "-U", self.args.pg_user, *extra],
            check=True,
            timeout=60,
            capture_output=True,
        )

    def _start_redis(self) -> int:
        redis_exe = shutil.which("redis-server")
        if redis_exe is None:
            raise RuntimeError("redis-server is not installed")
        redis_port = free_port()
        redis = Child(
            "redis",
            [
                redis_exe,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.tmp),
                "--maxclients",
                "10000",
            ],
            dict(os.environ),
            self.logdir,
        )
        self.children.append(redis)
        wait_port(redis_port, 15, redis)
        return redis_port

    def start(self) -> None:
        a = self.args
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "SUPPORT_", "CELERY_"))
            and k not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            SUPPORT_DATA_DIR=str(self.tmp / "var"),
            # One client IP for every simulated customer: lift the per-IP/per-socket limits.
            SUPPORT_RATE_PER_IP="1000000",
            SUPPORT_RATE_PER_CONNECTION="1000000",
            SUPPORT_MAX_CONNECTIONS_PER_IP="1000000",
            PYTHONUNBUFFERED="1",
        )
        if a.embedded:
            # `make run`'s defaults: SQLite, in-memory channel layer and broker, debug settings.
            env["DJANGO_SETTINGS_MODULE"] = "chatbot.settings.local"
        else:
            redis_port = self._start_redis()
            env.update(
                DJANGO_SETTINGS_MODULE="chatbot.settings.production",
                DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
                ALLOWED_HOSTS="127.0.0.1,localhost",
                SECURE_SSL_REDIRECT="false",
                REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            )
            if not a.sqlite:
                self.db_name = f"chat_load_{int(time.time())}_{os.getpid()}"
                self._pg("createdb", self.db_name)
                env["DATABASE_URL"] = f"postgres://{a.pg_user}@{a.pg_host}:5432/{self.db_name}"
        py = sys.executable
        self.timings["migrate_s"] = run_step(
            "migrate", [py, "manage.py", "migrate", "--noinput"], env, self.logdir, 300
        )
        self.timings["demo_setup_s"] = run_step(
            "demo_setup", [py, "manage.py", "demo_setup"], env, self.logdir, 600
        )

        self.web_port = free_port()
        started = time.monotonic()
        if a.embedded:
            self.web = Child(
                "serve",
                [py, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.web_port)],
                env,
                self.logdir,
            )
            self.children.append(self.web)
            self.worker = self.web  # the worker is a thread of the same process
            ready = wait_ready(self.base_url, 180, self.web)
            if ready.get("status") != "ready":
                raise RuntimeError(f"/readyz: {ready}")
            self.timings["processes_ready_s"] = time.monotonic() - started
            return
        self.web = Child(
            "uvicorn",
            [
                py,
                "-m",
                "uvicorn",
                "chatbot.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.web_port),
                "--ws",
                a.ws,
                "--log-level",
                "warning",
                *(
                    ["--timeout-graceful-shutdown", str(a.graceful_timeout)]
                    if a.graceful_timeout
                    else []
                ),
            ],
            env,
            self.logdir,
        )
        self.children.append(self.web)
        self.worker = Child(
            "celery",
            [
                py,
                "-m",
                "celery",
                "-A",
                "chatbot",
                "worker",
                "-Q",
                "support.default,support.generation,support.ingest",
                "--pool",
                a.pool,
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                f"chatload-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            env,
            self.logdir,
        )
        self.children.append(self.worker)
        ready = wait_ready(self.base_url, 120, self.web)
        if ready.get("status") != "ready":
            raise RuntimeError(f"/readyz: {ready}")
        wait_log(self.worker, " ready.", 180)
        self.timings["processes_ready_s"] = time.monotonic() - started

    def close(self) -> None:
        # Web first (sockets close), then the worker (warm shutdown), then Redis.
        order = {"uvicorn": 0, "celery": 1}
        for child in sorted(self.children, key=lambda c: order.get(c.name, 2)):
            try:
                self.stop_seconds[child.name] = child.stop(
                    30 if child.name in ("celery", "serve") else 20
                )
            except Exception as exc:  # keep stopping the others
                print(f"warning: stopping {child.name}: {exc}", file=sys.stderr)
        if self.db_name:
            try:
                self._pg("dropdb", "--if-exists", "--force", self.db_name)
            except Exception as exc:
                print(f"warning: could not drop database {self.db_name}: {exc}", file=sys.stderr)
        for child in self.children:
            if child.name in ("uvicorn", "celery", "serve"):
                self.log_exceptions[child.name] = log_errors(child.log_path)
        if self.args.keep_tmp:
            print(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ------------------------------------------------------------------------------ customers


@dataclass
class Sample:
    """One question and what happened to it; times in seconds from sending the message."""

    level: int
    customer: int
    question: str
    sent_at: float = 0.0  # seconds since the level started
    first_delta_s: float | None = None
    done_s: float | None = None
    deltas: int = 0
    action: str | None = None
    citations: int = 0
    chars: int = 0
    error: str | None = None


def _ws_connect(url: str, origin: str, compression: bool) -> Any:
    return connect(
        url,
        origin=origin,  # type: ignore[arg-type]
        open_timeout=30,
        ping_interval=None,  # like a browser: no client pings (the server pings)
        close_timeout=5,
        proxy=None,
        compression="deflate" if compression else None,
        max_queue=None,
    )


async def _recv(ws: ClientConnection, wait_s: float) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), wait_s)
    frame: dict[str, Any] = json.loads(raw)
    return frame


async def _hello(ws: ClientConnection, wait_s: float, token: str | None = None) -> dict[str, Any]:
    frame = {"type": "hello", "language": "en"}
    if token:
        frame["token"] = token
    await ws.send(json.dumps(frame))
    deadline = time.monotonic() + wait_s
    while True:
        frame = await _recv(ws, max(0.01, deadline - time.monotonic()))
        if frame.get("type") == "welcome":
            return frame


async def ask(ws: ClientConnection, sample: Sample, question: str, wait_s: float) -> bool:
    """Send one question and wait for its stored answer; False if the conversation left the bot."""
    client_id = uuid.uuid4().hex
    t0 = time.monotonic()
    await ws.send(json.dumps({"type": "message", "text": question, "client_id": client_id}))
    message_id: int | None = None
    while True:
        remaining = t0 + wait_s - time.monotonic()
        if remaining <= 0:
            sample.error = "timeout"
            return True
        try:
            frame = await _recv(ws, remaining)
        except TimeoutError:
            sample.error = "timeout"
            return True
        now = time.monotonic() - t0
        kind = frame.get("type")
        if kind == "message":
            msg = frame.get("message") or {}
            if msg.get("role") == "customer" and msg.get("client_id") == client_id:
                message_id = msg.get("id")
        # Matched on the echoed id, so a late answer to an earlier (timed-out) question is ignored.
        elif kind == "reply.delta" and message_id is not None and frame["reply_to"] == message_id:
            sample.deltas += 1
            if sample.first_delta_s is None:
                sample.first_delta_s = now
        elif kind == "reply.done" and message_id is not None and frame["reply_to"] == message_id:
            msg = frame.get("message") or {}
            sample.done_s = now
            sample.action = msg.get("action")
            sample.citations = len(msg.get("citations") or [])
            sample.chars = len(msg.get("text") or "")
            if not sample.chars:
                sample.error = "empty answer"
            return True
        elif kind == "status" and frame.get("status") != "bot":
            sample.error = f"status {frame.get('status')}"
            return False
        elif kind == "error":
            sample.error = f"error {frame.get('code')}"
            return True


async def customer(
    idx: int,
    level: int,
    questions: list[str],
    url: str,
    origin: str,
    answer_timeout: float,
    level_start: float,
    deadline: float,
    compression: bool,
    samples: list[Sample],
) -> None:
    pending = list(questions)
    token: str | None = None
    for _attempt in range(MAX_RECONNECTS + 1):
        sample: Sample | None = None
        try:
            async with _ws_connect(url, origin, compression) as ws:
                # A dropped socket resumes its conversation with the token, like the widget.
                token = (await _hello(ws, 30, token))["token"]
                while pending:
                    left = deadline - time.monotonic()
                    if left <= 1:
                        return
                    sample = Sample(level, idx, pending[0], time.monotonic() - level_start)
                    samples.append(sample)
                    still_bot = await ask(ws, sample, pending.pop(0), min(answer_timeout, left))
                    sample = None
                    if not still_bot:  # escalated: the bot stays silent; start a new conversation
                        token = (await _hello(ws, 30))["token"]
                return
        except (OSError, WebSocketException, TimeoutError) as exc:
            reason = f"connection lost ({type(exc).__name__})"
            if sample is not None:
                sample.error = reason
            else:
                samples.append(Sample(level, idx, "<connection>", error=reason))
        if time.monotonic() > deadline - 1:
            return


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolated percentile (numpy's default), None for no values."""
    if not values:
        return None
    xs = sorted(values)
    rank = (len(xs) - 1) * p / 100
    lo = int(rank)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def summarise(level: int, samples: list[Sample], wall_s: float, questions: int) -> dict[str, Any]:
    answered = [s for s in samples if s.done_s is not None]
    streamed = [s for s in answered if s.first_delta_s is not None]
    ttfd = [s.first_delta_s for s in streamed if s.first_delta_s is not None]
    done = [s.done_s for s in answered if s.done_s is not None]
    errors: dict[str, int] = {}
    for s in samples:
        if s.error:
            errors[s.error] = errors.get(s.error, 0) + 1

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    return {
        "concurrency": level,
        "questions_per_customer": questions,
        "asked": sum(1 for s in samples if s.question != "<connection>"),
        "connections_lost": sum(1 for s in samples if (s.error or "").startswith("connection")),
        "answered": len(answered),
        "streamed": len(streamed),
        "declined": sum(1 for s in answered if s.action == "escalate"),
        "with_citations": sum(1 for s in answered if s.citations),
        "errors": errors,
        "wall_s": round(wall_s, 2),
        "ttfd_p50_s": r(percentile(ttfd, 50)),
        "ttfd_p95_s": r(percentile(ttfd, 95)),
        "done_p50_s": r(percentile(done, 50)),
        "done_p95_s": r(percentile(done, 95)),
        "done_max_s": r(max(done) if done else None),
        "answers_per_min": round(len(answered) / (wall_s / 60), 2) if wall_s > 0 else None,
    }


async def run_level(
    stack: Stack, level: int, args: argparse.Namespace, offset: int
) -> tuple[dict[str, Any], list[Sample]]:
    samples: list[Sample] = []
    stack_pids = [c.pid for c in stack.children]
    cpu_before = cpu_seconds(stack_pids)
    start = time.monotonic()
    deadline = start + args.level_timeout
    tasks = []
    for i in range(level):
        qs = [
            QUESTIONS[(offset + i * args.questions + j) % len(QUESTIONS)]
            for j in range(args.questions)
        ]
        tasks.append(
            asyncio.create_task(
                customer(
                    i,
                    level,
                    qs,
                    stack.ws_url,
                    stack.base_url,
                    args.answer_timeout,
                    start,
                    deadline,
                    not args.no_compression,
                    samples,
                )
            )
        )
    _done, pending = await asyncio.wait(tasks, timeout=args.level_timeout + 30)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    wall = time.monotonic() - start
    summary = summarise(level, samples, wall, args.questions)
    # The whole stack's CPU for this level (web, worker, Redis), idle time included.
    summary["cpu_s"] = round(cpu_seconds(stack_pids) - cpu_before, 2)
    summary["cpu_s_per_answer"] = (
        round(summary["cpu_s"] / summary["answered"], 3) if summary["answered"] else None
    )
    assert stack.web is not None and stack.worker is not None
    summary["web_rss_mb"] = round(rss_bytes(stack.web.pid) / MB, 1)
    summary["worker_rss_mb"] = round(rss_bytes(stack.worker.pid) / MB, 1)
    return summary, samples


# ------------------------------------------------------------------------------ idle sockets


async def run_idle(stack: Stack, args: argparse.Namespace) -> dict[str, Any]:
    assert stack.web is not None
    pid = stack.web.pid
    await asyncio.sleep(2)
    rss_before = rss_bytes(pid)
    fds_before = num_fds(pid)
    conns: list[ClientConnection] = []
    failures: dict[str, int] = {}
    sem = asyncio.Semaphore(args.idle_parallel)
    started = time.monotonic()
    deadline = started + args.idle_timeout

    async def open_one() -> None:
        async with sem:
            if time.monotonic() > deadline:
                failures["skipped (time limit)"] = failures.get("skipped (time limit)", 0) + 1
                return
            ws = None
            try:
                ws = await _ws_connect(stack.ws_url, stack.base_url, not args.no_compression)
                await _hello(ws, 30)
                conns.append(ws)
            except (OSError, WebSocketException, TimeoutError, ValueError) as exc:
                key = type(exc).__name__
                failures[key] = failures.get(key, 0) + 1
                if ws is not None:
                    with contextlib.suppress(Exception):
                        await ws.close()

    await asyncio.gather(*(open_one() for _ in range(args.idle)))
    open_s = time.monotonic() - started
    await asyncio.sleep(3)
    rss_open = rss_bytes(pid)
    # Idle means quiet: nothing is sent for a while (the server's own pings keep them open).
    await asyncio.sleep(max(0.0, args.idle_hold - 3))

    # Every socket answers an app-level ping (through the consumer) with a pong.
    async def check(ws: ClientConnection) -> bool:
        try:
            await ws.send(json.dumps({"type": "ping"}))
            end = time.monotonic() + 30
            while True:
                frame = await _recv(ws, max(0.01, end - time.monotonic()))
                if frame.get("type") == "pong":
                    return True
        except (OSError, WebSocketException, TimeoutError, ValueError):
            return False

    check_started = time.monotonic()
    alive = sum(await asyncio.gather(*(check(ws) for ws in conns)))
    check_s = time.monotonic() - check_started
    # And a protocol-level ping on a sample, answered by uvicorn itself.
    sample = conns[:: max(1, len(conns) // 50)]
    pongs = 0
    for ws in sample:
        with contextlib.suppress(Exception):
            waiter = await ws.ping()
            await asyncio.wait_for(waiter, 10)
            pongs += 1
    await asyncio.sleep(1)
    rss_after = rss_bytes(pid)
    fds_after = num_fds(pid)

    close_started = time.monotonic()
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    close_s = time.monotonic() - close_started
    await asyncio.sleep(3)
    rss_closed = rss_bytes(pid)
    sockets_left = tcp_sockets(pid, stack.web_port)
    per_conn = (rss_after - rss_before) / alive if alive else None
    return {
        "target": args.idle,
        "hold_s": args.idle_hold,
        "opened": len(conns),
        "alive": alive,
        "failures": failures,
        "ws_ping_sample": len(sample),
        "ws_ping_ok": pongs,
        "open_s": round(open_s, 2),
        "check_s": round(check_s, 2),
        "close_s": round(close_s, 2),
        "web_rss_before_mb": round(rss_before / MB, 1),
        "web_rss_open_mb": round(rss_open / MB, 1),
        "web_rss_after_mb": round(rss_after / MB, 1),
        "web_rss_after_close_mb": round(rss_closed / MB, 1),
        "rss_per_connection_kb": round(per_conn / 1024, 1) if per_conn is not None else None,
        "web_fds_before": fds_before,
        "web_fds_after": fds_after,
        "web_sockets_after_close": sockets_left,
    }


# ------------------------------------------------------------------------------ report


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.2f}{unit}"
    return f"{x}{unit}"


def markdown(result: dict[str, Any]) -> str:
    lines = []
    cfg = result["config"]
    if cfg.get("topology") == "embedded":
        stack = "embedded: one `manage.py serve` process (SQLite, in-memory layer, worker thread)"
    else:
        stack = (
            f"{cfg['database']}, Redis, uvicorn (1 process, ws={cfg['ws']}), "
            f"Celery worker ({cfg['pool']}, concurrency 1)"
        )
    lines.append(
        f"chat_load {result['started_at']} — {stack}; load average at start {cfg['loadavg_start']}"
    )
    warm = result.get("warmup")
    if warm:
        lines.append(
            f"\nCold first answer (model load/convert in the worker): first delta "
            f"{_fmt(warm.get('first_delta_s'), ' s')}, stored {_fmt(warm.get('done_s'), ' s')}"
            f" (action {warm.get('action')}, error {warm.get('error')})"
        )
    lines.append("")
    lines.append(
        "| concurrent | asked | answered | streamed | declined | errors | TTFD p50 | TTFD p95 "
        "| done p50 | done p95 | answers/min | CPU s/answer |"
    )
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for lv in result["levels"]:
        errs = sum(lv["errors"].values())
        lines.append(
            f"| {lv['concurrency']} | {lv['asked']} | {lv['answered']} | {lv['streamed']} "
            f"| {lv['declined']} | {errs} | {_fmt(lv['ttfd_p50_s'], ' s')} "
            f"| {_fmt(lv['ttfd_p95_s'], ' s')} | {_fmt(lv['done_p50_s'], ' s')} "
            f"| {_fmt(lv['done_p95_s'], ' s')} | {_fmt(lv['answers_per_min'])} "
            f"| {_fmt(lv.get('cpu_s_per_answer'))} |"
        )
    idle = result.get("idle")
    if idle:
        lines.append("")
        lines.append(
            "| idle target | opened | alive (ping/pong) | open time | uvicorn RSS before "
            "| RSS after | per connection |"
        )
        lines.append("|---:|---:|---:|---:|---:|---:|---:|")
        lines.append(
            f"| {idle['target']} | {idle['opened']} | {idle['alive']} | {idle['open_s']} s "
            f"| {idle['web_rss_before_mb']} MB | {idle['web_rss_after_mb']} MB "
            f"| {_fmt(idle['rss_per_connection_kb'], ' KB')} |"
        )
    for name, counts in (result.get("log_exceptions") or {}).items():
        if counts:
            found = ", ".join(f"{k} ×{v}" for k, v in sorted(counts.items()))
            lines.append(f"\nUnhandled exceptions in the {name} log: {found}")
    if result.get("stop_seconds"):
        stops = ", ".join(
            f"{k} {'killed' if v is None else f'{v:.1f} s'}"
            for k, v in result["stop_seconds"].items()
        )
        lines.append(f"SIGTERM to exit: {stops}")
    return "\n".join(lines)


def write_result(result: dict[str, Any], out_dir: Path, out: Path | None = None) -> Path:
    path = out or out_dir / f"chat_load-{result['started_at'].replace(':', '')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--quick",
        action="store_true",
        help="short run: levels 1,4, one question each, 200 idle sockets",
    )
    p.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    p.add_argument(
        "--embedded",
        action="store_true",
        help="make run's topology: one `manage.py serve` process, SQLite, in-memory layer",
    )
    p.add_argument("--levels", default=None, help="comma-separated concurrencies (1,4,8), or none")
    p.add_argument("--questions", type=int, default=None, help="questions per customer (2)")
    p.add_argument(
        "--level-timeout",
        type=float,
        default=None,
        help="seconds before a level is stopped (360; quick 180)",
    )
    p.add_argument(
        "--answer-timeout", type=float, default=240.0, help="seconds to wait for one stored answer"
    )
    p.add_argument("--warmup-timeout", type=float, default=300.0)
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--idle", type=int, default=None, help="idle sockets to open (1000; quick 200)")
    p.add_argument("--idle-parallel", type=int, default=50, help="handshakes in flight at once")
    p.add_argument(
        "--idle-timeout",
        type=float,
        default=240.0,
        help="seconds allowed for opening the idle sockets",
    )
    p.add_argument(
        "--idle-hold",
        type=float,
        default=None,
        help="seconds the idle sockets stay quiet before the check (30; quick 10)",
    )
    p.add_argument(
        "--no-compression",
        action="store_true",
        help="no permessage-deflate (browsers negotiate it, so it is on by default)",
    )
    p.add_argument("--ws", default="auto", help="uvicorn --ws implementation (auto)")
    p.add_argument(
        "--graceful-timeout",
        type=int,
        default=10,
        help="uvicorn --timeout-graceful-shutdown (0: uvicorn's default, wait for every task)",
    )
    p.add_argument("--pool", default="threads", choices=("threads", "solo"))
    p.add_argument("--pg-host", default="127.0.0.1")
    p.add_argument("--pg-user", default="postgres")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=None, help="write the JSON here (not --out-dir)")
    p.add_argument("--keep-tmp", action="store_true", help="keep the data dir and logs")
    args = p.parse_args(argv)
    levels = args.levels or ("1,4" if args.quick else "1,4,8")
    args.levels = [] if levels == "none" else [int(x) for x in levels.split(",")]
    args.questions = args.questions or (1 if args.quick else 2)
    args.level_timeout = args.level_timeout or (180.0 if args.quick else 360.0)
    args.idle = args.idle if args.idle is not None else (200 if args.quick else 1000)
    args.idle_hold = (
        args.idle_hold if args.idle_hold is not None else (10.0 if args.quick else 30.0)
    )
    if not all(1 <= lv <= 64 for lv in args.levels) or not 0 <= args.idle <= 5000:
        p.error("levels must be 1..64 and --idle 0..5000 (bounded load only)")
    return args


async def measure(stack: Stack, args: argparse.Namespace, result: dict[str, Any]) -> None:
    if not args.no_warmup:
        print("warm-up: one question (the worker loads the models)…", flush=True)
        warm = Sample(0, 0, QUESTIONS[0])
        try:
            async with _ws_connect(stack.ws_url, stack.base_url, not args.no_compression) as ws:
                await _hello(ws, 30)
                await ask(ws, warm, QUESTIONS[0], args.warmup_timeout)
        except (OSError, WebSocketException, TimeoutError) as exc:
            warm.error = f"{type(exc).__name__}: {exc}"
        result["warmup"] = asdict(warm)
        print(
            f"  first delta {_fmt(warm.first_delta_s, ' s')}, stored {_fmt(warm.done_s, ' s')}",
            flush=True,
        )
    offset = 1
    for level in args.levels:
        print(f"level {level}: {level} customers × {args.questions} questions…", flush=True)
        summary, samples = await run_level(stack, level, args, offset)
        offset += level * args.questions
        result["levels"].append(summary)
        result["samples"].extend(asdict(s) for s in samples)
        print(
            f"  answered {summary['answered']}/{summary['asked']} in {summary['wall_s']} s; "
            f"TTFD p50 {_fmt(summary['ttfd_p50_s'])} s, done p50 {_fmt(summary['done_p50_s'])} s",
            flush=True,
        )
    if args.idle:
        print(f"idle: opening {args.idle} sockets…", flush=True)
        result["idle"] = await run_idle(stack, args)
        print(f"  alive {result['idle']['alive']}/{args.idle}", flush=True)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    nofile = raise_open_files(max(4096, 4 * args.idle + 1024))
    started = datetime.now().strftime("%Y%m%d-%H%M%S")
    result: dict[str, Any] = {
        "started_at": started,
        "config": {
            "quick": args.quick,
            "topology": "embedded" if args.embedded else "production",
            "database": "SQLite" if args.sqlite or args.embedded else "PostgreSQL",
            "levels": args.levels,
            "questions_per_customer": args.questions,
            "level_timeout_s": args.level_timeout,
            "answer_timeout_s": args.answer_timeout,
            "idle_target": args.idle,
            "compression": not args.no_compression,
            "settings": "chatbot.settings.local"
            if args.embedded
            else "chatbot.settings.production",
            "idle_hold_s": args.idle_hold,
            "ws": args.ws,
            "pool": args.pool,
            "graceful_timeout_s": args.graceful_timeout,
            "nofile": list(nofile),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "questions": QUESTIONS,
        },
        "levels": [],
        "samples": [],
    }
    t0 = time.monotonic()
    stack = Stack(args)
    status = 0
    try:
        with sigterm_as_interrupt():
            print(f"starting services in {stack.tmp}…", flush=True)
            stack.start()
            result["setup"] = {k: round(v, 1) for k, v in stack.timings.items()}
            print(f"  ready ({result['setup']})", flush=True)
            asyncio.run(measure(stack, args, result))
    except KeyboardInterrupt:
        print("interrupted: stopping everything", file=sys.stderr)
        result["interrupted"] = True
        status = 130
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        for child in stack.children:
            if not child.alive() or child.name in ("uvicorn", "celery"):
                print(f"--- {child.name} log tail ---\n{child.log_tail(20)}", file=sys.stderr)
        result["error"] = f"{type(exc).__name__}: {exc}"
        status = 1
    finally:
        stack.close()
        result["stop_seconds"] = stack.stop_seconds
        result["log_exceptions"] = stack.log_exceptions
        result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        result["total_s"] = round(time.monotonic() - t0, 1)
        if result["levels"] or result.get("idle") or result.get("warmup"):
            path = write_result(result, args.out_dir, args.out)
            print()
            print(markdown(result))
            print(
                f"\nresults: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}"
                f" (total {result['total_s']} s)"
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
