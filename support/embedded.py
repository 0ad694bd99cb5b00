"""The embedded one-process mode: a Celery worker thread beside the ASGI server.

Same task code as production; the broker is kombu's in-memory transport (or Redis when set),
consumed by a real Celery `WorkController` running in a daemon thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import Celery
from celery.worker import WorkController
from celery.worker import state as worker_state

logger = logging.getLogger(__name__)

QUEUES = ("support.default", "support.generation", "support.ingest")


class _ReadyWorkController(WorkController):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: object) -> None:
        self.ready.set()


class EmbeddedWorker:
    """Start/stop a Celery worker in a thread of this process."""

    def __init__(self, app: Celery, *, concurrency: int = 2) -> None:
        self.app = app
        self.concurrency = concurrency
        self._thread: threading.Thread | None = None
        self._controller: _ReadyWorkController | None = None

    def start(self, *, timeout: float = 30.0) -> None:
        self.app.finalize()
        self.app.set_current()
        self.app.set_default()
        controller = _ReadyWorkController(
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
        thread = threading.Thread(target=controller.start, name="embedded-celery", daemon=True)
        thread.start()
        if not controller.ready.wait(timeout):
            raise RuntimeError(f"The embedded Celery worker did not start within {timeout:.0f} s")
        self._controller, self._thread = controller, thread
        logger.info("Embedded Celery worker started (%d threads)", self.concurrency)

    def stop(self, *, timeout: float = 15.0) -> None:
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
