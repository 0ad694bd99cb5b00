"""Real processes on loopback for the fault and load tests (issue #8, items 9 and 10).

`Stack` starts, in processes it owns: a private redis-server and a private PostgreSQL cluster
(`initdb` + `pg_ctl`, as user postgres when the tests run as root) on free ports, `migrate` and
`demo_setup` into a temporary SUPPORT_DATA_DIR, one uvicorn process serving
`chatbot.asgi:application`, one Celery worker process and Celery beat, all with the production
settings module. The shared services on 6379/5432 are never touched. Every server runs in its
own session (process group), so it can be paused, killed or stopped together with its
children, and `Stack.close()` (called from fixture finalizers, also after failures, and at
exit) kills whatever is left.

The worker answers with `tests.fakes.SlowEchoChatModel` (copies the prompt's facts, one word every
FAKE_CHAT_DELAY_S seconds) and embeds with `tests.fakes.HashingEmbedder`: answers are grounded,
deterministic and take seconds, so a fault can be injected mid-answer. The real models are
exercised by the other suites.

`Customer` is a websocket client that behaves like the widget (static/support/widget.js): it
keeps its resume token, resends unconfirmed messages with the same `client_id` after every
`welcome`, and reconnects (bounded, with backoff) when the socket drops.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import pwd
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

REPO = Path(__file__).resolve().parents[2]
QUEUES = "support.default,support.generation,support.ingest,support.webhooks"
PG_VERSIONS_DIR = Path("/usr/lib/postgresql")

# Demo knowledge-base questions whose (fake) answers are long: 3-7 s at 0.15 s a word.
LONG_QUESTIONS = (
    "How do I reset my router to factory settings?",
    "What does error ERR-4032 mean?",
    "How do I get a refund?",
    "I am moving house, can I take my Brightwave internet with me?",
    "How can I change my payment method?",
)
SHORT_QUESTIONS = (
    "My Wi-Fi is slow, what can I do?",
    "How long is the minimum term?",
    "How do I turn on two-step verification?",
    "What does error ERR-1101 mean?",
    "Is there a data limit?",
)


class StackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl: from PATH, else Debian's newest version."""
    found = shutil.which("pg_ctl")
    candidates = [Path(found).resolve().parent] if found else []
    if PG_VERSIONS_DIR.is_dir():
        versions = sorted(
            (p for p in PG_VERSIONS_DIR.iterdir() if p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
        candidates += [v / "bin" for v in versions]
    for bindir in candidates:
        if (bindir / "pg_ctl").is_file() and (bindir / "initdb").is_file():
            return bindir
    return None


def missing_services() -> str | None:
    """Why the stack cannot start here (None: it can)."""
    missing = []
    if shutil.which("redis-server") is None:
        missing.append("redis-server (apt-get install redis-server)")
    if pg_bindir() is None:
        missing.append("initdb/pg_ctl (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        missing.append("runuser (util-linux), to run PostgreSQL as user postgres")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            missing.append("the user postgres (created by the postgresql package)")
    if not missing:
        return None
    return "the fault/load tests start their own services; missing: " + ", ".join(missing)


def raise_open_files(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


# ------------------------------------------------------------------------------------ processes
class Child:
    """A subprocess in its own session, logging to a file; signals go to its whole group."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], logdir: Path) -> None:
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self._log.write(f"\n--- {time.strftime('%H:%M:%S')} $ {' '.join(args)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            list(args),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # No PR_SET_PDEATHSIG: it fires when the forking *thread* exits, and children are
            # also started from asyncio's executor threads. Stack.close() and atexit clean up.
            start_new_session=True,
        )
        self.paused = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def kill(self) -> None:
        """SIGKILL to the whole group, and reap."""
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(15)
        self._log.close()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (after SIGCONT, in case it is paused), then SIGKILL after `timeout`."""
        try:
            if self.alive():
                self.signal(signal.SIGCONT)
                self.signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.signal(signal.SIGKILL)
                    self.proc.wait(15)
            # Whatever the leader left behind in its group goes too.
            self.signal(signal.SIGKILL)
        finally:
            self._log.close()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise StackError(f"{what}: not within {timeout:.0f} s")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Redis:
    """A private redis-server without persistence, like docker/compose.yaml's: a restart loses
    every queued task, unacknowledged delivery and channel-layer message."""

    def __init__(self, root: Path, logdir: Path) -> None:
        self.port = free_port()
        self.dir = root
        self.logdir = logdir
        self.child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise StackError("redis-server is not installed")
        args = [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.dir), "--maxclients", "10000"]
        self.child = Child("redis", args, dict(os.environ), self.logdir)
        child = self.child
        wait_until(lambda: port_open(self.port) or not child.alive(), 20, "redis-server listening")
        if not child.alive():
            raise StackError(f"redis-server exited:\n{child.log_tail()}")

    def up(self) -> bool:
        return self.child is not None and self.child.alive() and not self.child.paused

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(10)
            self.child = None


class Postgres:
    """A private PostgreSQL cluster in a temporary directory, started and stopped with pg_ctl.

    Run as user postgres when the tests run as root (initdb refuses root). Durability is off
    (fsync, synchronous_commit): a crash of this throwaway cluster loses nothing we need.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="fault-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        self.dbname = "support"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def conninfo(self, dbname: str | None = None) -> str:
        db = dbname or self.dbname
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={db} connect_timeout=5"

    def _run(self, tool: str, *args: str, timeout: float = 90) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(
            cmd, cwd=self.dir, capture_output=True, timeout=timeout, check=False, text=True
        )
        if result.returncode != 0:
            raise StackError(
                f"{tool} {' '.join(args[-1:])} failed ({result.returncode}): "
                f"{result.stdout[-1500:]}{result.stderr[-1500:]}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def init(self) -> None:
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        self.start()
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.dbname}")

    def start(self) -> None:
        opts = (
            f"-p {self.port} -h 127.0.0.1 -k {self.dir} -c max_connections=200 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "-o",
            opts,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split()[0])
        return None

    def up(self) -> bool:
        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return port_open(self.port)

    def destroy(self) -> None:
        """Stop (immediately, or SIGKILL) and remove the cluster; never raises."""
        if self.data.exists() and self.postmaster_pid() is not None:
            try:
                self.stop("immediate")
            except Exception:
                pid = self.postmaster_pid()
                if pid is not None:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------ the stack
@dataclass
class StackSettings:
    """What the tests tune; everything else is the product's default."""

    fake_delay_s: float = 0.15  # per word of a (fake) answer
    # The watchdog (support.outcomes): a question without an outcome this long after it was
    # sent is answered again; this long after that, the customer gets an apology and a person.
    # The re-queue wait is long enough for a re-queued answer to be stored first.
    outcome_deadline_s: int = 8
    requeue_deadline_s: int = 20
    check_interval_s: int = 2
    debounce_s: float = 0.3
    worker_concurrency: int = 1
    pool: str = "threads"
    extra_env: dict[str, str] = field(default_factory=dict)


_open_stacks: list[Stack] = []


@atexit.register
def _close_open_stacks() -> None:
    """A run that ends without the fixture finalizers still stops its servers."""
    for stack in list(_open_stacks):
        stack.close()


class Stack:
    """The services of one test session; `close()` stops everything it started."""

    def __init__(self, settings: StackSettings | None = None) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise StackError("initdb/pg_ctl not found")
        self.settings = settings or StackSettings()
        self.tmp = Path(tempfile.mkdtemp(prefix="fault-stack-"))
        self.logdir = self.tmp / "logs"
        self.logdir.mkdir()
        self.redis = Redis(self.tmp, self.logdir)
        self.pg = Postgres(bindir)
        self.web: Child | None = None
        self.worker: Child | None = None
        self.beat: Child | None = None
        self.web_port = 0
        self.worker_generation = 0
        self.worker_concurrency = self.settings.worker_concurrency
        self.worker_env: dict[str, str] = {}
        self.restarts: list[str] = []  # by `supervise`
        _open_stacks.append(self)
        self.secret = secrets.token_urlsafe(50)

    # -- addresses ----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.web_port}/ws/chat/"

    # -- environment --------------------------------------------------------------------------
    def env(self, **overrides: str) -> dict[str, str]:
        s = self.settings
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "SUPPORT_", "CELERY_", "FAKE_CHAT_"))
            and k not in ("DATABASE_URL", "REDIS_URL", "PORT")
        }
        env.update(
            DJANGO_SETTINGS_MODULE="chatbot.settings.production",
            DJANGO_SECRET_KEY=self.secret,
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="false",
            SUPPORT_DATA_DIR=str(self.tmp / "var"),
            DATABASE_URL=self.pg.url,
            REDIS_URL=self.redis.url,
            SUPPORT_GENERATOR_BACKEND="tests.fakes.SlowEchoChatModel",
            SUPPORT_EMBEDDER_BACKEND="tests.fakes.HashingEmbedder",
            FAKE_CHAT_DELAY_S=str(s.fake_delay_s),
            SUPPORT_DEBOUNCE_S=str(s.debounce_s),
            # Retrieval confidence is not under test: the hashing embedder scores low.
            SUPPORT_RETRIEVAL_MIN_CONFIDENCE="0.02",
            # Every simulated customer shares 127.0.0.1: lift the per-IP limits.
            SUPPORT_RATE_PER_IP="1000000",
            SUPPORT_RATE_PER_CONNECTION="1000000",
            SUPPORT_MAX_CONNECTIONS_PER_IP="100000",
            # The load test measures delivery, not the overload hand-over (reason "busy").
            SUPPORT_MAX_PENDING_ANSWERS="1000",
            SUPPORT_OUTCOME_DEADLINE_S=str(s.outcome_deadline_s),
            SUPPORT_OUTCOME_REQUEUE_DEADLINE_S=str(s.requeue_deadline_s),
            SUPPORT_OUTCOME_CHECK_INTERVAL_S=str(s.check_interval_s),
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
        )
        env.update(s.extra_env)
        env.update(overrides)
        return env

    def manage(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None) -> str:
        """Run a management command against the stack; its stdout, or StackError."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        out = result.stdout + result.stderr
        with (self.logdir / "manage.log").open("a") as log:
            log.write(f"\n--- $ manage.py {' '.join(args)} ({result.returncode})\n{out}")
        if result.returncode != 0:
            raise StackError(f"manage.py {' '.join(args)} failed ({result.returncode}):\n{out}")
        return result.stdout

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        raise_open_files(8192)
        self.redis.start()
        self.pg.init()
        self.manage("migrate", "--noinput", timeout=300)
        self.manage("demo_setup", timeout=300)
        self.start_web()
        self.start_worker()
        self.start_beat()
        self.wait_worker_ready()
        self.wait_web_ready()

    def start_web(self) -> None:
        self.web_port = self.web_port or free_port()
        args = [sys.executable, "-m", "uvicorn", "chatbot.asgi:application"]
        args += ["--host", "127.0.0.1", "--port", str(self.web_port), "--log-level", "warning"]
        args += ["--timeout-graceful-shutdown", "5"]
        self.web = Child("uvicorn", args, self.env(), self.logdir)

    def wait_web_ready(self, timeout: float = 120) -> None:
        web = self.web
        assert web is not None
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not web.alive():
                raise StackError(f"uvicorn exited:\n{web.log_tail()}")
            try:
                with urllib.request.urlopen(self.base_url + "/readyz", timeout=5) as resp:
                    if json.loads(resp.read()).get("status") == "ready":
                        return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")
            except (OSError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.3)
        raise StackError(f"/readyz not ready within {timeout:.0f} s: {last}\n{web.log_tail()}")

    def readyz(self) -> tuple[int, str]:
        """GET /readyz: (status, body)."""
        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=10) as resp:
                return resp.status, resp.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    def start_beat(self) -> None:
        """Celery beat, which sends the watchdog's periodic task (CELERY_BEAT_SCHEDULE)."""
        args = [sys.executable, "-m", "celery", "-A", "chatbot", "beat", "--loglevel", "INFO"]
        args += ["-s", str(self.tmp / "celerybeat-schedule"), "--pidfile="]
        self.beat = Child("beat", args, self.env(), self.logdir)

    def start_worker(
        self, *, concurrency: int | None = None, env: dict[str, str] | None = None
    ) -> Child:
        """A new Celery worker process (the old one must be gone). `concurrency` and `env`
        (overrides of the stack's environment) hold until the next call that passes them."""
        if concurrency is not None:
            self.worker_concurrency = concurrency
        if env is not None:
            self.worker_env = dict(env)
        self.worker_generation += 1
        args = [sys.executable, "-m", "celery", "-A", "chatbot", "worker", "-Q", QUEUES]
        args += ["--pool", self.settings.pool, "--concurrency", str(self.worker_concurrency)]
        args += ["--loglevel", "INFO", "-n", f"fault{self.worker_generation}-{os.getpid()}@%h"]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        self.worker = Child("worker", args, self.env(**self.worker_env), self.logdir)
        return self.worker

    def wait_worker_ready(self, timeout: float = 120) -> None:
        worker = self.worker
        assert worker is not None
        marker = f"fault{self.worker_generation}-{os.getpid()}@"

        def ready() -> bool:
            if not worker.alive():
                raise StackError(f"worker exited:\n{worker.log_tail()}")
            text = worker.log_text()
            return any(marker in line and " ready." in line for line in text.splitlines())

        wait_until(ready, timeout, "celery worker ready", interval=0.3)

    def restart_worker(
        self, *, concurrency: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        if self.worker is not None:
            self.worker.stop(20)
        self.start_worker(concurrency=concurrency, env=env)
        self.wait_worker_ready()

    def supervise(self) -> list[str]:
        """Restart a web, worker or beat process that exited, as the deployment's restart
        policy does (docker/compose.yaml: `restart: unless-stopped`); the names restarted."""
        restarted = []
        if self.web is not None and not self.web.alive():
            self.start_web()
            restarted.append("web")
        if self.beat is not None and not self.beat.alive():
            self.start_beat()
            restarted.append("beat")
        if self.worker is not None and not self.worker.alive():
            exit_code = self.worker.proc.returncode
            self.start_worker()
            restarted.append(f"worker (exit {exit_code})")
        self.restarts += restarted
        return restarted

    def heal(self) -> None:
        """Every service up, the worker with the default configuration: after a test that
        failed mid-fault, or one that reconfigured the worker."""
        if self.worker is not None and self.worker.paused:
            self.worker.resume()
        if not self.redis.up():
            self.redis.stop()
            self.redis.start()
        if not self.pg.up():
            with contextlib.suppress(StackError):
                self.pg.stop("immediate")
            self.pg.start()
        restarted_web = self.web is None or not self.web.alive()
        if restarted_web:
            self.start_web()
        if self.beat is None or not self.beat.alive():
            self.start_beat()
        default = self.settings.worker_concurrency
        if self.worker_env or self.worker_concurrency != default:
            self.restart_worker(concurrency=default, env={})
        elif self.worker is None or not self.worker.alive():
            self.start_worker()
            self.wait_worker_ready()
        if restarted_web:
            self.wait_web_ready()

    def close(self) -> None:
        if self in _open_stacks:
            _open_stacks.remove(self)
        for child in (self.web, self.worker, self.beat):
            if child is not None:
                with contextlib.suppress(Exception):
                    child.stop(15)
        with contextlib.suppress(Exception):
            self.redis.stop()
        self.pg.destroy()
        if os.environ.get("FAULT_KEEP_TMP"):
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def logs(self, lines: int = 30) -> str:
        """The tails of the server logs, for assertion messages."""
        parts = []
        for child in (self.web, self.worker, self.beat):
            if child is not None:
                parts.append(f"--- {child.name} ---\n{child.log_tail(lines)}")
        manage_log = self.logdir / "manage.log"
        if manage_log.exists():
            tail = manage_log.read_text(errors="replace").splitlines()[-lines:]
            parts.append("--- manage.py ---\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- the stored truth ---------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg.conninfo(), autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ customers
@dataclass
class Question:
    text: str
    client_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    sent_at: float | None = None  # monotonic time of the first send
    message_id: int | None = None  # from the echo (or the welcome history)
    first_delta_at: float | None = None
    outcome: dict[str, Any] | None = None  # the message object that answers it
    outcome_at: float | None = None
    outcome_ids: set[int] = field(default_factory=set)  # >1 is a duplicate
    sends: int = 0
    resend_at: float | None = None  # after a retryable server_error
    late_deltas: int = 0  # reply.delta frames received after its outcome

    @property
    def ttfd_s(self) -> float | None:
        if self.first_delta_at is None or self.sent_at is None:
            return None
        return self.first_delta_at - self.sent_at


class Customer:
    """One widget: a token, a socket that comes back, questions matched by client_id."""

    def __init__(self, stack: Stack, name: str = "customer") -> None:
        self.stack = stack
        self.name = name
        self.ws: ClientConnection | None = None
        self.token: str | None = None
        self.conversation_id: str | None = None
        self.status = "bot"
        self.questions: list[Question] = []
        self.welcomes: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.connects = 0
        self.failed_connects = 0
        self.pongs = 0

    # -- socket -------------------------------------------------------------------------------
    async def connect(self, wait_s: float = 30) -> None:
        """Open a socket and say hello (with the token once there is one)."""
        await self.drop()
        ws = await asyncio.wait_for(
            connect(
                self.stack.ws_url,
                origin=self.stack.base_url,  # type: ignore[arg-type]
                open_timeout=wait_s,
                ping_interval=None,  # like a browser: the server pings
                close_timeout=2,
                proxy=None,
                max_queue=None,
            ),
            wait_s,
        )
        self.ws = ws
        hello: dict[str, Any] = {"type": "hello", "language": "en"}
        if self.token:
            hello["token"] = self.token
        await ws.send(json.dumps(hello))
        deadline = time.monotonic() + wait_s
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
            self.handle(frame)
            if frame.get("type") == "welcome":
                break
        self.connects += 1
        # Like the widget: unconfirmed messages are sent again, with the same client_id.
        for q in self.questions:
            if q.message_id is None:
                await self._send(q)

    async def drop(self) -> None:
        """Lose the socket abruptly (no close handshake), as a network failure would."""
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                ws.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)

    async def ensure_connected(self, deadline: float) -> bool:
        """Reconnect with backoff until `deadline`; False if it never worked."""
        delay = 0.2
        while self.ws is None:
            if time.monotonic() + 0.5 > deadline:
                return False
            try:
                await self.connect(wait_s=min(30, max(1.0, deadline - time.monotonic())))
            except (OSError, WebSocketException, TimeoutError, ValueError):
                self.failed_connects += 1
                await self.drop()
                await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 3.0)
        return True

    async def _resend_due(self) -> None:
        now = time.monotonic()
        for q in self.questions:
            if q.resend_at is not None and q.resend_at <= now and q.message_id is None:
                q.resend_at = None
                await self._send(q)

    async def _send(self, q: Question) -> None:
        assert self.ws is not None
        await self.ws.send(
            json.dumps({"type": "message", "text": q.text, "client_id": q.client_id})
        )
        q.sends += 1
        if q.sent_at is None:
            q.sent_at = time.monotonic()

    # -- frames -------------------------------------------------------------------------------
    def _question_for(self, message_id: Any) -> Question | None:
        for q in self.questions:
            if q.message_id is not None and q.message_id == message_id:
                return q
        return None

    def _settle(self, q: Question | None, message: dict[str, Any]) -> None:
        if q is None:
            return
        q.outcome_ids.add(int(message["id"]))
        if q.outcome is None:
            q.outcome = message
            q.outcome_at = time.monotonic()

    def _stored(self, message: dict[str, Any]) -> None:
        role = message.get("role")
        if role == "customer" and message.get("client_id"):
            for q in self.questions:
                if q.client_id == message["client_id"]:
                    q.message_id = int(message["id"])
        elif role == "bot":
            self._settle(self._question_for(message.get("reply_to")), message)
        elif role == "system" and message.get("kind") in (None, "notice"):
            # A notice (the watchdog's apology) settles the question just before it; the other
            # system lines (queued, acknowledged...) only say who has the conversation.
            before = [
                q
                for q in self.questions
                if q.message_id is not None and q.message_id < message["id"]
            ]
            if before:
                self._settle(max(before, key=lambda q: q.message_id or 0), message)

    def handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "welcome":
            self.welcomes.append(frame)
            self.token = frame.get("token") or self.token
            self.conversation_id = frame.get("conversation_id")
            self.status = frame.get("status") or self.status
            for message in frame.get("history") or []:
                self._stored(message)
        elif kind == "message":
            self._stored(frame.get("message") or {})
        elif kind == "reply.delta":
            q = self._question_for(frame.get("reply_to"))
            if q is not None and q.first_delta_at is None:
                q.first_delta_at = time.monotonic()
            if q is not None and q.outcome is not None:
                q.late_deltas += 1
        elif kind == "reply.done":
            self._stored(frame.get("message") or {})
        elif kind == "status":
            self.status = frame.get("status") or self.status
        elif kind == "error":
            self.errors.append(frame)
            # docs/protocol.md: a retryable server_error stored nothing; resend the same frame.
            if frame.get("retryable") and frame.get("client_id"):
                for q in self.questions:
                    if q.client_id == frame["client_id"] and q.message_id is None:
                        q.resend_at = time.monotonic() + float(frame.get("retry_after") or 1)
        elif kind == "pong":
            self.pongs += 1

    # -- driving ------------------------------------------------------------------------------
    async def ask(self, text: str) -> Question:
        q = Question(text)
        self.questions.append(q)
        if self.ws is not None:
            try:
                await self._send(q)
            except (OSError, WebSocketException):
                await self.drop()  # sent again after the next welcome
        return q

    async def pump(self, until: Callable[[], bool], wait_s: float, reconnect: bool = True) -> bool:
        """Read frames, reconnecting when the socket drops, until `until()` (at most `wait_s`
        seconds); whether it came true."""
        deadline = time.monotonic() + wait_s
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self.ws is None:
                if not reconnect or not await self.ensure_connected(deadline):
                    return until()
                continue
            try:
                await self._resend_due()
                raw = await asyncio.wait_for(self.ws.recv(), min(left, 0.5))
            except TimeoutError:
                continue
            except (OSError, WebSocketException):
                await self.drop()
                continue
            with contextlib.suppress(ValueError):
                self.handle(json.loads(raw))
        return True

    async def wait_first_delta(self, q: Question, wait_s: float) -> bool:
        return await self.pump(
            lambda: q.first_delta_at is not None or q.outcome is not None, wait_s
        )

    async def wait_outcomes(self, wait_s: float) -> bool:
        return await self.pump(lambda: all(q.outcome is not None for q in self.questions), wait_s)

    async def ping(self, wait_s: float = 30) -> bool:
        """An app-level ping through the consumer; whether the pong came back."""
        before = self.pongs
        if self.ws is None:
            return False
        try:
            await self.ws.send(json.dumps({"type": "ping"}))
        except (OSError, WebSocketException):
            return False
        return await self.pump(lambda: self.pongs > before, wait_s, reconnect=False)

    async def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)

    def unanswered(self) -> list[Question]:
        return [q for q in self.questions if q.outcome is None]


async def reconnected_view(customer: Customer, wait_s: float = 60) -> dict[str, Any]:
    """Drop the socket, come back with the token (as after a page reload) and return the
    welcome frame: its history must hold every question's outcome."""
    await customer.drop()
    seen = len(customer.welcomes)
    ok = await customer.pump(lambda: len(customer.welcomes) > seen, wait_s)
    if not ok:
        raise StackError(f"{customer.name}: no welcome within {wait_s:.0f} s of reconnecting")
    return customer.welcomes[-1]


async def gather_bounded(coros: Iterable[Any], wait_s: float) -> list[Any]:
    """Run coroutines together; cancel whatever is still running after `wait_s` s."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    _done, pending = await asyncio.wait(tasks, timeout=wait_s)
    for task in pending:
        task.cancel()
    return await asyncio.gather(*tasks, return_exceptions=True)


# ------------------------------------------------------------------------------------ checking
# A question's outcome (support.outcomes): the bot's answer to it, or the watchdog's hand-over
# (an escalation it triggered, reason no_answer or busy, told to the customer by one system
# notice, the apology). The tests ask one question at a time, so no answer covers a burst.


def stored_outcomes(stack: Stack, conversation_ids: Iterable[str]) -> dict[tuple[str, str], Any]:
    """(conversation hex, client_id) -> {"ids", "answers", "handovers", "notices"}."""
    rows = stack.query(
        """
        SELECT q.conversation_id, q.client_id, q.id,
          ARRAY(SELECT r.id FROM support_message r
                WHERE r.role = 'bot' AND r.in_reply_to_id = q.id ORDER BY r.id),
          ARRAY(SELECT e.id FROM support_escalation e
                WHERE e.trigger_message_id = q.id
                  AND (e.reasons @> '["no_answer"]' OR e.reasons @> '["busy"]') ORDER BY e.id),
          ARRAY(SELECT n.id FROM support_message n
                WHERE n.conversation_id = q.conversation_id AND n.role = 'system' AND n.id > q.id
                  AND n.reason = 'notice'
                  AND NOT EXISTS (
                    SELECT 1 FROM support_message c
                    WHERE c.conversation_id = q.conversation_id AND c.role = 'customer'
                      AND c.id > q.id AND c.id < n.id)
                ORDER BY n.id)
        FROM support_message q
        WHERE q.role = 'customer' AND q.conversation_id = ANY(%s)
        ORDER BY q.id
        """,
        [[uuid.UUID(hex=cid) for cid in conversation_ids]],
    )
    stored: dict[tuple[str, str], Any] = {}
    for conv_id, client_id, qid, answers, handovers, notices in rows:
        entry = stored.setdefault(
            (conv_id.hex, client_id), {"ids": [], "answers": [], "handovers": [], "notices": []}
        )
        entry["ids"].append(qid)
        entry["answers"] += answers
        entry["handovers"] += handovers
        entry["notices"] += notices
    return stored


def outcome_problems(stack: Stack, customers: Sequence[Customer]) -> list[str]:
    """Everything wrong with "every question has exactly one stored outcome, and its customer
    saw that one": messages stored twice or never, questions with no outcome or several
    (two answers, an answer and an apology, two apologies), and clients that saw another."""
    stored = stored_outcomes(stack, [c.conversation_id for c in customers if c.conversation_id])
    problems = []
    for customer in customers:
        if customer.conversation_id is None:
            problems.append(f"{customer.name}: never got a welcome")
            continue
        asked = {q.client_id for q in customer.questions}
        extra = {cid for conv, cid in stored if conv == customer.conversation_id} - asked
        if extra:
            problems.append(f"{customer.name}: stored messages it never sent: {sorted(extra)}")
        for q in customer.questions:
            entry = stored.get((customer.conversation_id, q.client_id))
            label = f"{customer.name} {q.text!r}"
            if entry is None:
                problems.append(f"{label}: the message was never stored (sent {q.sends}x)")
                continue
            if len(entry["ids"]) != 1:
                problems.append(f"{label}: stored {len(entry['ids'])} times")
            answers, handovers, notices = entry["answers"], entry["handovers"], entry["notices"]
            if len(answers) + len(handovers) != 1:
                problems.append(f"{label}: answers {answers}, watchdog hand-overs {handovers}")
            if len(notices) != len(handovers):
                problems.append(f"{label}: system notices {notices}, hand-overs {handovers}")
            if q.outcome is None:
                problems.append(f"{label}: its customer never saw an outcome")
            elif len(q.outcome_ids) != 1:
                problems.append(f"{label}: its customer saw outcomes {sorted(q.outcome_ids)}")
            elif q.outcome["id"] not in answers + notices:
                problems.append(f"{label}: saw {q.outcome['id']}, stored {answers + notices}")
    return problems


def outcome_kinds(customers: Sequence[Customer]) -> dict[str, int]:
    """How the questions ended, as the customers saw it: answer / apology / none."""
    kinds: dict[str, int] = {}
    for q in (q for c in customers for q in c.questions):
        kind = (
            "none"
            if q.outcome is None
            else {"bot": "answer", "system": "apology"}.get(q.outcome.get("role", ""), "other")
        )
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def history_problems(customer: Customer, welcome: dict[str, Any]) -> list[str]:
    """The welcome after a reconnect holds each question once, followed by its one outcome."""
    history = welcome.get("history") or []
    problems = []
    for q in customer.questions:
        at = [i for i, m in enumerate(history) if m.get("client_id") == q.client_id]
        if len(at) != 1:
            problems.append(f"{customer.name} {q.text!r}: {len(at)}x in the history")
            continue
        mine = history[at[0]]
        outcomes = [
            m["id"] for m in history if m.get("role") == "bot" and m.get("reply_to") == mine["id"]
        ]
        for m in history[at[0] + 1 :]:
            if m.get("role") == "customer":
                break
            if m.get("role") == "system" and m.get("kind") in (None, "notice"):
                outcomes.append(m["id"])
        if len(outcomes) != 1:
            problems.append(f"{customer.name} {q.text!r}: history holds outcomes {outcomes}")
    return problems
