"""A real HTTP receiver on loopback for the webhook tests: it answers from a script (status,
delay), records every request, and processes each Webhook-Id once (an idempotent receiver)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from tests.factories import UserFactory


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Step:
    status: int = 200
    delay_s: float = 0.0
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class Receiver:
    """`script` is consumed one step per request; when it is empty, `default` answers."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.processed: dict[str, Any] = {}  # Webhook-Id -> payload, taken once
        self.script: list[Step] = []
        self.default = Step()
        self.decide: Callable[[Received], Step | None] | None = None
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                req = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time()
                )
                with receiver.lock:
                    receiver.requests.append(req)
                    step = receiver.decide(req) if receiver.decide else None
                    if step is None:
                        step = receiver.script.pop(0) if receiver.script else receiver.default
                # An idempotent receiver: it takes each Webhook-Id once, then answers (maybe
                # too slowly for the sender, who then retries with the same id).
                if 200 <= step.status < 300:
                    with receiver.lock:
                        receiver.processed.setdefault(req.headers.get("webhook-id", ""), req.json)
                if step.delay_s:
                    time.sleep(step.delay_s)
                try:
                    self.send_response(step.status)
                    for k, v in step.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(step.body)))
                    self.end_headers()
                    self.wfile.write(step.body)
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def types(self) -> list[str]:
        return [r.json["type"] for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    try:
        yield r
    finally:
        r.stop()


FAST_RETRIES = {
    "SUPPORT_WEBHOOK_ALLOW_PRIVATE": True,
    "SUPPORT_WEBHOOK_TIMEOUT_S": 1.0,
    "SUPPORT_WEBHOOK_BACKOFF_BASE_S": 0.01,
    "SUPPORT_WEBHOOK_BACKOFF_MAX_S": 0.02,
}


@pytest.fixture
def fast_retries() -> Iterator[None]:
    """Loopback receivers allowed, 1 s timeouts, retries due almost at once."""
    with override_settings(**FAST_RETRIES):
        yield


@pytest.fixture
def owner() -> Any:
    return UserFactory(username="integrator", is_superuser=True)


from tests.chat.conftest import chat_env  # noqa: E402, F401  (fixture)
from tests.knowledge.conftest import kb_env, real_embedder  # noqa: E402, F401  (fixtures)
