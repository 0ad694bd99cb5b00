"""Demo data for `make run`: a demo admin (only when no superuser exists) and the demo KB."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from .conf import get_support_settings

DEMO_ADMIN_USERNAME = "demo-admin"
DEMO_KB_DIR = Path(__file__).resolve().parent / "demo_kb"


@dataclass(frozen=True, slots=True)
class DemoKbResult:
    loaded: int
    skipped: bool
    index_version: int | None


def demo_kb_ensure() -> DemoKbResult:
    """Load the demo knowledge base into an empty knowledge base (never over real documents)."""
    from . import knowledge
    from .models import KnowledgeDocument

    if KnowledgeDocument.objects.exists():
        return DemoKbResult(0, True, None)
    ids = [
        knowledge.document_upload(
            filename=path.name, data=path.read_bytes(), queue=False, source_url=""
        ).pk
        for path in sorted(DEMO_KB_DIR.iterdir())
    ]
    outcomes = knowledge.documents_ingest(document_ids=ids, rebuild_index=False)
    loaded = sum(o.status == "ready" for o in outcomes)
    return DemoKbResult(loaded, False, knowledge.index_rebuild().version)


@dataclass(frozen=True, slots=True)
class DemoSetupResult:
    admin_username: str | None
    admin_password: str | None  # only known when this run created the admin
    admin_created: bool


def _password_file() -> Path:
    return get_support_settings().data_dir / "demo-admin-password"


@transaction.atomic
def demo_admin_ensure() -> DemoSetupResult:
    """Create the demo superuser with a random password unless a superuser already exists."""
    user_model = get_user_model()
    existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        password = None
        pw_file = _password_file()
        if existing.get_username() == DEMO_ADMIN_USERNAME and pw_file.exists():
            candidate = pw_file.read_text().strip()
            password = candidate if existing.check_password(candidate) else None
        return DemoSetupResult(existing.get_username(), password, admin_created=False)
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser(
        username=DEMO_ADMIN_USERNAME, email="admin@example.com", password=password
    )
    pw_file = _password_file()
    pw_file.parent.mkdir(parents=True, exist_ok=True)
    pw_file.write_text(password)
    pw_file.chmod(0o600)
    return DemoSetupResult(DEMO_ADMIN_USERNAME, password, admin_created=True)
