from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from support import backends


@pytest.fixture(scope="session")
def real_embedder() -> Any:
    from support.search.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.encode(["warm up"])
    return embedder


@pytest.fixture
def kb_env(tmp_path: Path, real_embedder: Any) -> Iterator[Path]:
    """A private data directory (index, uploads) per test, with the real embedding model."""
    with override_settings(SUPPORT_DATA_DIR=tmp_path, MEDIA_ROOT=tmp_path / "media"):
        backends.set_backend("embedder", real_embedder)
        yield tmp_path
    backends.reset_backends()
