"""Fixtures for the security tests: a private data directory, and a local socket that records
every connection made to it (the proof that parsing never fetches anything)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from support import backends
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)
from tests.widget.conftest import (  # noqa: F401  (the widget's page fixtures)
    new_page,
    page,
    server,
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """Uploads and indexes below a private directory; backends rebuilt afterwards."""
    with override_settings(SUPPORT_DATA_DIR=tmp_path, MEDIA_ROOT=tmp_path / "media"):
        yield tmp_path
    backends.reset_backends()


class Listener:
    """A TCP server on 127.0.0.1 that accepts and records connections, and answers nothing."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, addr = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(addr)
            conn.close()

    def settle(self, seconds: float = 0.5) -> list[tuple[str, int]]:
        """Connections seen after waiting a moment for stragglers."""
        time.sleep(seconds)
        return list(self.connections)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    recorder = Listener()
    try:
        yield recorder
    finally:
        recorder.close()
