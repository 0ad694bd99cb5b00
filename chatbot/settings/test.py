"""Test settings: real PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set, embedded otherwise."""

import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-used-anywhere-else-0123456789")
# Each test process gets its own data directory unless the caller chose one.
os.environ.setdefault("SUPPORT_DATA_DIR", tempfile.mkdtemp(prefix="support-test-"))

from .base import *
from .base import CACHES, CHANNEL_LAYERS, DATABASES

# Test runs that share one Redis (two checkouts, CI beside other jobs) must not see each other's
# groups (the agents' group is one name for everybody), rate-limit counters or locks: each run
# gets its own key prefix. Set in the environment so the processes a test starts share it.
_RUN = os.environ.setdefault("SUPPORT_TEST_RUN_ID", f"t{os.getpid()}")
if "CONFIG" in CHANNEL_LAYERS["default"]:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"asgi-{_RUN}"
if "KEY_PREFIX" in CACHES["default"]:
    CACHES["default"]["KEY_PREFIX"] = f"support-{_RUN}"

CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["*"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].get("OPTIONS", {}).pop("init_command", None)
# No background index checks: tests rebuild indexes explicitly (knowledge.index_sync is
# tested directly).
SUPPORT_INDEX_SYNC_INTERVAL_S = 0.0
# No model warm-up at worker start: tests install fakes or load models themselves (a test of
# the warm-up turns it on).
SUPPORT_WARMUP = False
# Eager tasks run inside the request: a thumbs up or a resolve would ground an example with the
# real embedder and republish the index inside a websocket handler of a test that is about
# something else. tests/learning turns it on.
SUPPORT_LEARN_FROM_CONVERSATIONS = False
# Eager training tasks run in the test process: nicing it (irreversibly) would slow every later
# test against the database and Redis beside it. tests/learning/test_nightly.py tests the nicing
# in a child process.
SUPPORT_SPECIALISE_NICENESS = 0
