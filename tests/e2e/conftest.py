"""The real product, started as `make run` starts it, for end-to-end tests.

One server per test session: `migrate`, `demo_setup` and `serve` on a free port, in a subprocess
with its own temporary SUPPORT_DATA_DIR and an environment stripped of DATABASE_URL, REDIS_URL
and the test settings, so it runs in the embedded one-process mode (SQLite, in-memory channel
layer and broker, Celery worker thread) with the real models. It is stopped with SIGTERM at the
end and must exit within 30 s, stopping its worker cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, free_port

ARTIFACTS = REPO_ROOT / "test-artifacts"
READY_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
# Variables that would steer the child away from the embedded defaults `make run` uses
# (pytest-django's settings module and the test settings' secret, debug flag and data dir).
_STRIPPED_PREFIXES = ("DJANGO_", "SUPPORT_", "CELERY_")
_STRIPPED = {"DATABASE_URL", "REDIS_URL", "PORT"}


def product_env(data_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _STRIPPED and not k.startswith(_STRIPPED_PREFIXES)
    }
    env["SUPPORT_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class LiveProduct:
    url: str
    port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes]

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def manage_step(args: list[str], env: dict[str, str], log: Path, timeout: float = 180) -> None:
    """Run `manage.py ARGS` in the product's environment, its output appended to `log`."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(args)}\n".encode())
        out.flush()
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        pytest.fail(f"manage.py {args[0]} failed ({result.returncode}):\n{tail}")


def wait_ready(product: LiveProduct) -> dict[str, Any]:
    """Poll /readyz until it answers; fail with the log's tail if serve exits or times out."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if product.proc.poll() is not None:
            pytest.fail(f"serve exited early ({product.proc.returncode}):\n{product.log_tail()}")
        try:
            with urllib.request.urlopen(product.url + "/readyz", timeout=3) as resp:
                body: dict[str, Any] = json.loads(resp.read())
                return body
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.5)
    pytest.fail(f"/readyz not ready after {READY_TIMEOUT_S} s ({last}):\n{product.log_tail()}")


def serve_start(data_dir: Path, env: dict[str, str], log_path: Path) -> LiveProduct:
    """`manage.py serve` on a free 127.0.0.1 port, in its own process group, logging to
    `log_path`; wait_ready() before use, serve_stop() after."""
    port = free_port()
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return LiveProduct(f"http://127.0.0.1:{port}", port, data_dir, log_path, proc)


def serve_stop(product: LiveProduct) -> float | None:
    """SIGTERM the server; seconds it took to exit, or None if it had to be killed."""
    if product.proc.poll() is not None:
        return 0.0
    started = time.monotonic()
    product.proc.send_signal(signal.SIGTERM)
    try:
        product.proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # Only our own process group (started with start_new_session=True).
        os.killpg(product.proc.pid, signal.SIGKILL)
        product.proc.wait(10)
        return None
    return time.monotonic() - started


@pytest.fixture(scope="session")
def live_product() -> Iterator[LiveProduct]:
    """The product on embedded defaults, on a free 127.0.0.1 port, with its own data dir."""
    tmp = Path(tempfile.mkdtemp(prefix="support-e2e-"))
    data_dir = tmp / "var"
    env = product_env(data_dir)
    log_path = tmp / "server.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        manage_step(["migrate", "--noinput"], env, log_path, timeout=180)
        manage_step(["demo_setup"], env, log_path, timeout=300)
        product = serve_start(data_dir, env, log_path)
        proc = product.proc
        ready = wait_ready(product)
        assert ready["status"] == "ready", ready
        yield product

        took = serve_stop(product)
        log = product.log_tail(400)
        assert took is not None, f"serve did not exit within {STOP_TIMEOUT_S} s of SIGTERM"
        # uvicorn re-raises the signal it handled once it has shut down: -SIGTERM is a clean exit.
        assert proc.returncode in (0, -signal.SIGTERM), f"serve exited {proc.returncode}:\n{log}"
        assert "Embedded Celery worker stopped" in log, log
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if log_path.exists():
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copyfile(log_path, ARTIFACTS / "e2e-server.log")
        shutil.rmtree(tmp, ignore_errors=True)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"e2e-{name}.png"
    page.screenshot(path=str(path))
    return path
