"""The embedded one-process mode: a Celery worker thread beside the ASGI server.

Same task code as production; the broker is kombu's in-memory transport (or Redis when set),
consumed by a real Celery `WorkController` running in a daemon thread. A plain thread runs the
outcome watchdog and the integrations' sweeps (beat's frequent jobs) itself, so they never wait
behind answers in the worker's queue; Celery beat runs in another thread (its threaded service:
the forking one would queue into a forked copy of the in-memory broker) for the rest of
CELERY_BEAT_SCHEDULE: the reports' rollup and the nightly jobs. The worker also consumes the
`training` queue: a specialisation run trains in a child process (support/learning/
training_process.py), never in this one. The worker's start hooks (chatbot/celery.py) run in this
process, the model warm-up included, so the first answer after `make run` finds the models loaded
(and /readyz waits for them).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.beat import EmbeddedService, PersistentScheduler
from celery.worker import WorkController
from celery.worker import state as worker_state
from django.db import close_old_connections, connections

from .conf import get_support_settings
from .integrations import integrations_sweep
from .outcomes import outcomes_check

logger = logging.getLogger(__name__)

QUEUES = ("support.default", "support.generation", "support.ingest", "support.webhooks", "training")
# Beat's jobs the watchdog thread runs itself (OutcomeWatchdog.run_once); beat runs the others.
WATCHDOG_JOBS = frozenset(
    {
        "support.outcomes_check",
        "support.webhooks_sweep",
        "support.mail_outbox_sweep",
        "support.imap_poll",
    }
)
# One worker thread more than the answers need: a specialisation run's task waits in one while
# its child process trains.
CONCURRENCY = 3

_serving = threading.Event()


def serving_here() -> bool:
    """True while the embedded worker runs in this process (it serves the chat too)."""
    return _serving.is_set()


class EmbeddedScheduler(PersistentScheduler):  # type: ignore[misc]
    """Beat's schedule without the jobs the watchdog thread already runs."""

    def merge_inplace(self, b: dict[str, Any]) -> None:
        super().merge_inplace({k: v for k, v in b.items() if k not in WATCHDOG_JOBS})


class _ReadyWorkController(WorkController):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.ready.set()


class OutcomeWatchdog:
    """Runs `outcomes_check` every `interval_s` seconds in a daemon thread (beat's job in the
    multi-process deployment)."""

    def __init__(self, *, interval_s: float | None = None) -> None:
        self.interval_s = interval_s
        self.runs = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="embedded-watchdog", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 5.0) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        self._thread = None

    def _interval(self) -> float:
        if self.interval_s is not None:
            return self.interval_s
        return float(get_support_settings().outcome_check_interval_s)

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self._interval()):
                self.run_once()
        finally:
            connections.close_all()  # this thread's own connection

    def run_once(self) -> None:
        try:
            outcomes_check()
        except Exception:
            # The next run tries again (the database may be restarting); never kill the thread.
            logger.exception("Outcome watchdog run failed")
        try:
            integrations_sweep()  # webhook retries, queued e-mail, IMAP (beat's other jobs)
        except Exception:
            logger.exception("Integrations sweep failed")
        finally:
            close_old_connections()
            self.runs += 1


class EmbeddedWorker:
    """Start/stop a Celery worker in a thread of this process, and the outcome watchdog."""

    def __init__(
        self,
        app: Celery,
        *,
        concurrency: int = CONCURRENCY,
        watchdog_interval_s: float | None = None,
        beat: bool = True,
    ) -> None:
        self.app = app
        self.concurrency = concurrency
        self.watchdog = OutcomeWatchdog(interval_s=watchdog_interval_s)
        self.beat_enabled = beat
        self._beat: Any = None
        self._thread: threading.Thread | None = None
        self._controller: _ReadyWorkController | None = None

    def start(self, *, timeout: float = 30.0) -> None:
        controller = self.controller_build()
        thread = threading.Thread(target=controller.start, name="embedded-celery", daemon=True)
        thread.start()
        if not controller.ready.wait(timeout):
            raise RuntimeError(f"The embedded Celery worker did not start within {timeout:.0f} s")
        self._controller, self._thread = controller, thread
        _serving.set()
        self.watchdog.start()
        if self.beat_enabled:
            self._beat = self.beat_build()
            self._beat.start()
            logger.info("Embedded beat started (%s)", ", ".join(self.beat_jobs()))
        logger.info("Embedded Celery worker started (%d threads)", self.concurrency)

    def beat_jobs(self) -> list[str]:
        """The CELERY_BEAT_SCHEDULE entries the embedded beat runs."""
        return sorted(k for k in self.app.conf.beat_schedule or {} if k not in WATCHDOG_JOBS)

    def beat_build(self) -> Any:
        """Beat's threaded service, its schedule file in the data directory."""
        path = get_support_settings().data_dir / "celerybeat-schedule"
        path.parent.mkdir(parents=True, exist_ok=True)
        return EmbeddedService(
            self.app, thread=True, scheduler_cls=EmbeddedScheduler, schedule_filename=str(path)
        )

    def controller_build(self) -> _ReadyWorkController:
        """The worker, not started yet. Building it sends Celery's `worker_init`, so this
        process runs the serving hooks of chatbot/celery.py as a solo worker does: the thread
        settings, the index sync loop and the model warm-up (in a background thread)."""
        self.app.finalize()
        self.app.set_current()
        self.app.set_default()
        return _ReadyWorkController(
            app=self.app,
            hostname="embedded@localhost",
            pool="threads",
            concurrency=self.concurrency,
            queues=list(QUEUES),
            loglevel="INFO",
            ready_callback=None,
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        )

    def stop(self, *, timeout: float = 15.0) -> None:
        if self._beat is not None:
            self._beat.stop()
            self._beat = None
            logger.info("Embedded beat stopped")
        self.watchdog.stop()
        _serving.clear()
        if self._thread is None:
            return
        # The documented way to ask a WorkController to finish: it drains and returns.
        worker_state.should_terminate = 0  # type: ignore[assignment]
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("Embedded worker still busy after %.0f s; leaving it", timeout)
        worker_state.should_terminate = None
        self._thread = None
        self._controller = None
        logger.info("Embedded Celery worker stopped")
