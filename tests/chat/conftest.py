from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from support import backends, knowledge
from tests.fakes import FakeChatModel
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)

ROUTER_MD = b"""# Router guide

## Reset

Hold the reset button on the back for 10 seconds until the light blinks orange.

## Error codes

Error ERR-4032 means the fibre line is down; we fix it remotely within 4 hours.
"""


@pytest.fixture
def chat_env(tmp_path: Path, real_embedder: Any) -> Iterator[FakeChatModel]:  # noqa: F811
    """A knowledge base with one real document, the real embedder and a scripted model."""
    fake = FakeChatModel()
    with override_settings(
        SUPPORT_DATA_DIR=tmp_path,
        MEDIA_ROOT=tmp_path / "media",
        SUPPORT_DEBOUNCE_S=0,
        # Plumbing tests with a scripted model: retrieval confidence is not under test here.
        SUPPORT_RETRIEVAL_MIN_CONFIDENCE=0.02,
    ):
        backends.set_backend("embedder", real_embedder)
        backends.set_backend("chat_model", fake)
        doc = knowledge.document_upload(filename="router.md", data=ROUTER_MD, queue=False)
        knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
        knowledge.index_rebuild()
        yield fake
    backends.reset_backends()
