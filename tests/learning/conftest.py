"""Fixtures for learning from resolved conversations: a small knowledge base with the real
embedder (the grounding is inferred with it), agents, import files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from support import backends, knowledge
from support.models import KnowledgeDocument
from tests.agents.conftest import agent, knowledge_admin, sent  # noqa: F401  (fixtures)
from tests.chat.conftest import chat_env  # noqa: F401  (fixture)
from tests.fakes import FakeChatModel
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)

BILLING_MD = b"""# Billing and refunds

## Refunds

A refund for a cancelled order goes back to the card you paid with within 5 business days.

## Invoices

Invoices are sent by e-mail on the first day of every month. Call us on 1-800-555-0199 if an
invoice is missing.
"""


@pytest.fixture
def kb(chat_env: FakeChatModel) -> Iterator[dict[str, KnowledgeDocument]]:  # noqa: F811
    """The chat knowledge base (router.md) plus billing.md, indexed with the real embedder."""
    doc = knowledge.document_upload(filename="billing.md", data=BILLING_MD, queue=False)
    knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
    knowledge.index_rebuild()
    yield {d.original_filename: d for d in KnowledgeDocument.objects.all()}


@pytest.fixture
def no_index(tmp_path: Path, real_embedder: Any) -> Iterator[None]:  # noqa: F811
    """An empty knowledge base: every answer is a knowledge gap."""
    with override_settings(SUPPORT_DATA_DIR=tmp_path, MEDIA_ROOT=tmp_path / "media"):
        backends.set_backend("embedder", real_embedder)
        yield
    backends.reset_backends()


@pytest.fixture
def jsonl(tmp_path: Path) -> Callable[..., Path]:
    def write(*lines: str | bytes, name: str = "examples.jsonl") -> Path:
        path = tmp_path / name
        path.write_bytes(
            b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
        )
        return path

    return write


@pytest.fixture(autouse=True)
def _learning_on() -> Iterator[None]:
    """Learning from conversations is off in the test settings (eager tasks would run it
    inside other tests' requests); these tests are about it."""
    with override_settings(SUPPORT_LEARN_FROM_CONVERSATIONS=True):
        yield


@pytest.fixture(scope="session")
def torch_chat() -> Any:
    """The shipped GGUF as a torch model (transformers dequantizes it), loaded once: (model,
    tokenizer). Tests that train copy nothing into it: they build their own from the file."""
    from support.learning.chat_torch import load_torch_chat_model
    from support.llm import default_model_path

    return load_torch_chat_model(default_model_path(), threads=1)
