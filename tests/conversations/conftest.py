"""The demo knowledge base and the real models for the scripted conversations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

from support import backends
from support.demo import demo_kb_ensure
from tests.answers.conftest import real_chat_model  # noqa: F401  (session fixture)
from tests.factories import agent_user
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--conversations-report",
        default=None,
        help="write each scripted conversation's turns and verdicts to this JSON file",
    )
    parser.addoption(
        "--conversations-only",
        default=None,
        help="play only these cases (comma-separated names), while working on them",
    )


@pytest.fixture
def conversations_only(request: pytest.FixtureRequest) -> set[str] | None:
    names = request.config.getoption("--conversations-only")
    return {n.strip() for n in names.split(",") if n.strip()} if names else None


@pytest.fixture
def demo_env(
    tmp_path: Path,
    real_embedder: Any,  # noqa: F811
    real_chat_model: Any,  # noqa: F811
) -> Iterator[Any]:
    """The demo knowledge base (support/demo_kb), the real embedder and chat model, answers
    right away (no debounce), and an agent who can take conversations."""
    with override_settings(
        SUPPORT_DATA_DIR=tmp_path, MEDIA_ROOT=tmp_path / "media", SUPPORT_DEBOUNCE_S=0
    ):
        backends.set_backend("embedder", real_embedder)
        backends.set_backend("chat_model", real_chat_model)
        demo_kb_ensure()
        yield agent_user(username="robin", first_name="Robin")
    backends.reset_backends()


@pytest.fixture(scope="session")
def conversations_report(request: pytest.FixtureRequest) -> Iterator[list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    yield rows
    path = request.config.getoption("--conversations-report")
    if path:
        Path(path).write_text(json.dumps(rows, indent=2, ensure_ascii=False))
