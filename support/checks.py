"""System checks: the model file, the data directory and the production channel layer."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import get_support_settings

GGUF_MAGIC = b"GGUF"


@register()
def check_support_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    try:
        get_support_settings()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="support.E000")]
    return []


@register()
def check_chat_model(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    try:
        conf = get_support_settings()
        path = conf.resolved_model_path()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="support.E001")]
    hint = "Set SUPPORT_MODEL_PATH to a readable GGUF chat model file."
    if not path.is_file():
        return [Error(f"Chat model file not found: {path}", hint=hint, id="support.E001")]
    if not os.access(path, os.R_OK):
        return [Error(f"Chat model file is not readable: {path}", hint=hint, id="support.E002")]
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != GGUF_MAGIC:
        return [
            Error(
                f"Chat model file is not a GGUF model (bad header {magic!r}): {path}",
                hint=hint,
                id="support.E003",
            )
        ]
    return []


@register()
def check_data_dir(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    data_dir = get_support_settings().data_dir
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return [Error(f"SUPPORT_DATA_DIR {data_dir} cannot be created: {exc}", id="support.E010")]
    if not os.access(data_dir, os.W_OK):
        return [Error(f"SUPPORT_DATA_DIR {data_dir} is not writable", id="support.E011")]
    return []


@register(deploy=True)
def check_production_services(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    errors: list[Any] = []
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    if "InMemory" in backend:
        errors.append(
            Error(
                "Production uses an in-memory channel layer: workers on other processes "
                "cannot reach the chat sockets.",
                hint="Set REDIS_URL.",
                id="support.E020",
            )
        )
    if str(settings.CELERY_BROKER_URL).startswith("memory://"):
        errors.append(
            Error(
                "Production uses the in-memory Celery broker.",
                hint="Set REDIS_URL.",
                id="support.E021",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        errors.append(
            Warning(
                "Production uses SQLite; use PostgreSQL for several processes or machines.",
                hint="Set DATABASE_URL=postgres://...",
                id="support.W022",
            )
        )
    return errors
