"""Health endpoints against real services, including services that are down."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.test import Client, override_settings

from chatbot.celery import app as celery_app
from tests.conftest import REPO_ROOT, RedisServer, free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _readyz() -> tuple[int, dict]:  # type: ignore[type-arg]
    response = Client().get("/readyz")
    return response.status_code, json.loads(response.content)


def test_healthz_is_up() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_service_ready() -> None:
    status, body = _readyz()
    assert status == 200, body
    assert body["failing"] == []
    assert set(body["checks"]) == {"database", "channel_layer", "broker"}


def _redis_settings(url: str) -> dict:  # type: ignore[type-arg]
    return {
        "CHANNEL_LAYERS": {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [url]},
            }
        }
    }


def test_readyz_names_channel_layer_and_broker_when_redis_goes_down(
    private_redis: RedisServer,
) -> None:
    old_broker = celery_app.conf.broker_url
    celery_app.conf.broker_url = private_redis.url
    try:
        with override_settings(**_redis_settings(private_redis.url)):
            status, body = _readyz()
            assert status == 200, body
            private_redis.stop()
            status, body = _readyz()
    finally:
        celery_app.conf.broker_url = old_broker
    assert status == 503
    assert body["status"] == "unavailable"
    assert set(body["failing"]) == {"channel_layer", "broker"}
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.parametrize("database_url", ["sqlite:////nonexistent-dir/readyz/db.sqlite3", "pg"])
def test_readyz_names_the_database_when_it_is_unreachable(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    # A separate process, so the suite's own test database is never touched.
    if database_url == "pg":
        database_url = f"postgres://postgres@127.0.0.1:{free_port()}/nothing"
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz'); print(r.status_code); print(r.content.decode())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="chatbot.settings.test",
        DATABASE_URL=database_url,
        SUPPORT_DATA_DIR=str(tmp_path),
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    status, body_text = proc.stdout.strip().split("\n", 1)
    body = json.loads(body_text)
    assert status == "503"
    assert body["failing"] == ["database"]
    assert body["checks"]["channel_layer"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
