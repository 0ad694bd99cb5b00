"""A real Celery worker killed (SIGKILL) in the middle of a delivery: after a second worker
takes over, every event reaches the receiver, and the idempotent receiver takes each
Webhook-Id exactly once although one was sent twice.

Processes: a private redis-server (broker) on a free port, an SQLite database in a temporary
data directory, `celery worker` subprocesses in their own process groups; the receiver is an
HTTP server in this test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, RedisServer
from tests.webhooks.conftest import Receiver, Step

pytestmark = pytest.mark.fault
CLEAN = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "CELERY_TASK_ALWAYS_EAGER")


def _env(data_dir: Path, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN}
    env.update(
        DJANGO_SETTINGS_MODULE="chatbot.settings.local",
        SUPPORT_DATA_DIR=str(data_dir),
        REDIS_URL=redis_url,
        SUPPORT_WEBHOOK_ALLOW_PRIVATE="true",
        SUPPORT_WEBHOOK_TIMEOUT_S="1",
        SUPPORT_WEBHOOK_BACKOFF_BASE_S="0.5",
        SUPPORT_WEBHOOK_BACKOFF_MAX_S="1",
        SUPPORT_WEBHOOK_SWEEP_INTERVAL_S="1",
        SUPPORT_INDEX_SYNC_INTERVAL_S="0",
        SUPPORT_EMBEDDER_BACKEND="tests.fakes.HashingEmbedder",
        SUPPORT_GENERATOR_BACKEND="tests.fakes.SlowEchoChatModel",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def _manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _worker(env: dict[str, str], tmp: Path, name: str, beat: bool) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "chatbot",
        "worker",
        "-Q",
        "support.webhooks,support.default",
        "--pool",
        "solo",
        "-n",
        f"{name}@%h",
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]
    if beat:
        args += ["-B", "-s", str(tmp / "beat-schedule")]
    log = (tmp / f"{name}.log").open("wb")
    return subprocess.Popen(
        args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


SETUP = """
from django.contrib.auth import get_user_model
from support import conversations
from support.webhooks import subscriptions
owner = get_user_model().objects.create_superuser("owner", "o@example.com", "pw-unused-1")
subscriptions.subscription_create(owner=owner, url={url!r}, events=["conversation.created"])
for i in range(3):
    conversations.conversation_start(customer_name=f"customer {{i}}")
"""

REPORT = """
import json
from support.models import WebhookDelivery
rows = WebhookDelivery.objects.order_by("pk")
print(json.dumps([[d.event_id, d.state, d.attempts] for d in rows]))
"""


def test_killed_worker_mid_delivery_exactly_once_per_webhook_id(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    receiver = Receiver()
    held = threading.Event()
    release = threading.Event()

    def hold_first(req: Any) -> Step | None:
        # Called under the receiver's lock; the held request waits outside it.
        if held.is_set():
            return None
        held.set()
        receiver.processed.setdefault(req.webhook_id, req.json)  # taken in...
        receiver.lock.release()
        try:
            release.wait(30)  # ...but the answer is only sent once its sender is dead
        finally:
            receiver.lock.acquire()
        return Step(200)

    receiver.decide = hold_first
    receiver.start()
    workers: list[subprocess.Popen[bytes]] = []
    try:
        (tmp_path / "var").mkdir()
        env = _env(tmp_path / "var", redis.url)
        _manage(env, "migrate", "--noinput")
        _manage(env, "shell", "-c", SETUP.format(url=receiver.url))
        workers.append(_worker(env, tmp_path, "w1", beat=False))
        assert held.wait(60), (tmp_path / "w1.log").read_text()
        _kill(workers[0])  # mid-delivery: the receiver has the request, the worker is gone
        release.set()
        workers.append(_worker(env, tmp_path, "w2", beat=True))
        deadline = time.monotonic() + 90

        def settled() -> bool:
            ids = [r.webhook_id for r in receiver.requests]
            return len(receiver.processed) == 3 and bool(ids) and ids.count(ids[0]) >= 2

        while time.monotonic() < deadline and not settled():
            time.sleep(0.2)
        for _ in range(5):  # the states are stored just after the receiver answered
            time.sleep(1)  # (and a duplicate still in flight would arrive meanwhile)
            report = json.loads(_manage(env, "shell", "-c", REPORT).strip().splitlines()[-1])
            if all(state == "delivered" for _, state, _ in report):
                break
    finally:
        for w in workers:
            _kill(w)
        receiver.stop()
        redis.stop()
    ids = [r.webhook_id for r in receiver.requests]
    assert all(state == "delivered" for _, state, _ in report), (report, ids)
    assert set(receiver.processed) == {event_id for event_id, _, _ in report}
    assert len(receiver.processed) == 3  # each Webhook-Id taken exactly once
    killed = ids[0]
    assert ids.count(killed) >= 2, ids  # sent again after the kill, with the same Webhook-Id
    attempts = {event_id: n for event_id, _, n in report}
    assert attempts[killed] >= 2
    # Every payload sent under one id is the same event.
    for event_id in set(ids):
        bodies = {
            json.dumps(r.json, sort_keys=True)
            for r in receiver.requests
            if r.webhook_id == event_id
        }
        assert len(bodies) == 1
