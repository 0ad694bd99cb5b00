"""Settings validation, run in subprocesses so each sees a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from support.conf import get_support_settings
from tests.conftest import REPO_ROOT

CLEAN_KEYS = ("DJANGO_SECRET_KEY", "DJANGO_DEBUG", "DATABASE_URL", "REDIS_URL", "SUPPORT_DATA_DIR")


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in CLEAN_KEYS}
    base.update({"SUPPORT_DATA_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_without_secret_key_fails_clearly(tmp_path: Path) -> None:
    proc = _run(
        ["manage.py", "check"], tmp_path, DJANGO_SETTINGS_MODULE="chatbot.settings.production"
    )
    assert proc.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in proc.stderr
    assert "required when DJANGO_DEBUG is off" in proc.stderr


def test_debug_off_without_secret_key_fails_in_base_settings_too(tmp_path: Path) -> None:
    proc = _run(
        ["-c", "import django; django.setup()"],
        tmp_path,
        DJANGO_SETTINGS_MODULE="chatbot.settings.base",
        DJANGO_DEBUG="false",
    )
    assert proc.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in proc.stderr


def test_local_settings_generate_a_secret_key_in_the_data_dir(tmp_path: Path) -> None:
    code = (
        "from django.conf import settings; import django; django.setup(); "
        "print(settings.SECRET_KEY)"
    )
    first = _run(["-c", code], tmp_path, DJANGO_SETTINGS_MODULE="chatbot.settings.local")
    second = _run(["-c", code], tmp_path, DJANGO_SETTINGS_MODULE="chatbot.settings.local")
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip()
    assert len(key) >= 50 and key == second.stdout.strip()
    assert (tmp_path / "var" / "secret_key").read_text().strip() == key


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    proc = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        tmp_path,
        DJANGO_SETTINGS_MODULE="chatbot.settings.production",
        DJANGO_SECRET_KEY="k" * 20 + "-production-like-secret-value-for-the-check-0123456789",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ALLOWED_HOSTS="support.example.com",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no issues" in proc.stdout


def test_check_deploy_rejects_in_memory_services_in_production(tmp_path: Path) -> None:
    proc = _run(
        ["manage.py", "check", "--deploy"],
        tmp_path,
        DJANGO_SETTINGS_MODULE="chatbot.settings.production",
        DJANGO_SECRET_KEY="k" * 20 + "-production-like-secret-value-for-the-check-0123456789",
    )
    assert proc.returncode != 0
    assert "support.E020" in proc.stderr and "support.E021" in proc.stderr


def test_environment_configures_database_and_redis(tmp_path: Path) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['NAME'], "
        "s.DATABASES['default']['CONN_HEALTH_CHECKS'], "
        "s.CHANNEL_LAYERS['default']['BACKEND'], s.CELERY_BROKER_URL, s.MEDIA_ROOT)"
    )
    proc = _run(
        ["-c", code],
        tmp_path,
        DJANGO_SETTINGS_MODULE="chatbot.settings.local",
        DATABASE_URL="postgres://u@db.example:5432/support",
        REDIS_URL="redis://r:6379/2",
    )
    assert proc.returncode == 0, proc.stderr
    engine, name, health, layer, broker, media = proc.stdout.split()
    assert engine == "django.db.backends.postgresql" and name == "support"
    assert health == "True"
    assert layer == "support.channel_layers.RedisChannelLayer"
    assert broker == "redis://r:6379/2"
    assert media == str(tmp_path / "var" / "media")


def test_embedded_defaults_keep_all_state_in_the_data_dir(tmp_path: Path) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['NAME'], s.CHANNEL_LAYERS['default']['BACKEND'], "
        "s.CELERY_BROKER_URL)"
    )
    proc = _run(["-c", code], tmp_path, DJANGO_SETTINGS_MODULE="chatbot.settings.local")
    assert proc.returncode == 0, proc.stderr
    db, layer, broker = proc.stdout.split()
    assert db == str(tmp_path / "var" / "db.sqlite3")
    assert layer == "support.channel_layers.ThreadSafeInMemoryChannelLayer"
    assert broker == "memory://"


def test_support_settings_are_validated() -> None:
    with override_settings(SUPPORT_CHUNK_TOKENS=8), pytest.raises(ImproperlyConfigured):
        get_support_settings()
    with (
        override_settings(SUPPORT_RETRIEVAL_MIN_CONFIDENCE=1.5),
        pytest.raises(ImproperlyConfigured, match="RETRIEVAL_MIN_CONFIDENCE"),
    ):
        get_support_settings()
    assert get_support_settings().chunk_tokens > 8


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("SUPPORT_BRIDGE_THRESHOLD", 0.0, "BRIDGE_THRESHOLD"),
        ("SUPPORT_BRIDGE_WEIGHT", 1.5, "BRIDGE_WEIGHT"),
        ("SUPPORT_BRIDGE_NEIGHBOURS", 0, "BRIDGE_NEIGHBOURS"),
        ("SUPPORT_BRIDGE_VOCABULARY", -1, "BRIDGE_VOCABULARY"),
    ],
)
def test_bridge_settings_are_validated(setting: str, value: float, named: str) -> None:
    with override_settings(**{setting: value}), pytest.raises(ImproperlyConfigured, match=named):
        get_support_settings()


def test_the_searcher_takes_the_bridge_settings() -> None:
    from support import backends

    with override_settings(
        SUPPORT_BRIDGE=True, SUPPORT_BRIDGE_THRESHOLD=0.8, SUPPORT_BRIDGE_SUBSTITUTE=True
    ):
        config = backends.bridge_config()
    assert (config.enabled, config.threshold, config.substitute) == (True, 0.8, True)
    assert not backends.bridge_config().enabled  # off by default


def test_support_settings_follow_override_settings() -> None:
    before = get_support_settings().company_name
    with override_settings(SUPPORT_COMPANY_NAME="Other Co"):
        assert get_support_settings().company_name == "Other Co"
    assert get_support_settings().company_name == before


def test_missing_model_file_fails_check(tmp_path: Path) -> None:
    missing = _run(
        ["manage.py", "check"],
        tmp_path,
        DJANGO_SETTINGS_MODULE="chatbot.settings.local",
        SUPPORT_MODEL_PATH=str(tmp_path / "nope.gguf"),
    )
    assert missing.returncode != 0
    assert "Chat model file not found" in missing.stderr
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model at all")
    wrong = _run(
        ["manage.py", "check"],
        tmp_path,
        DJANGO_SETTINGS_MODULE="chatbot.settings.local",
        SUPPORT_MODEL_PATH=str(bogus),
    )
    assert wrong.returncode != 0
    assert "not a GGUF model" in wrong.stderr


def test_floats_in_the_environment_are_read_as_python_reads_them(tmp_path: Path) -> None:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SUPPORT_CHAT_TRAIN_LEARNING_RATE, s.SUPPORT_RETRIEVAL_MIN_CONFIDENCE)"
    )
    proc = _run(
        ["-c", code],
        tmp_path,
        DJANGO_SETTINGS_MODULE="chatbot.settings.local",
        SUPPORT_CHAT_TRAIN_LEARNING_RATE="5e-5",
        SUPPORT_RETRIEVAL_MIN_CONFIDENCE="0,35",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["5e-05", "0.35"]
    bad = _run(
        ["-c", "import django; django.setup()"],
        tmp_path,
        DJANGO_SETTINGS_MODULE="chatbot.settings.local",
        SUPPORT_RETRIEVAL_MIN_CONFIDENCE="lots",
    )
    assert bad.returncode != 0
    assert "SUPPORT_RETRIEVAL_MIN_CONFIDENCE: 'lots' is not valid" in bad.stderr
