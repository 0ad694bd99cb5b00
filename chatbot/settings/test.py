"""Test settings: real PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set, embedded otherwise."""

import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-used-anywhere-else-0123456789")
# Each test process gets its own data directory unless the caller chose one.
os.environ.setdefault("SUPPORT_DATA_DIR", tempfile.mkdtemp(prefix="support-test-"))

from .base import *
from .base import DATABASES

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
