"""Fixtures for the local-model tests: the real SmolLM2-135M file, loaded once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.llm import CTransformersChatModel, default_model_path


@pytest.fixture(scope="session")
def model_path() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def compat_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("llm-cache")


@pytest.fixture(scope="session")
def ct_model(model_path: Path, compat_cache: Path) -> Iterator[CTransformersChatModel]:
    # One thread: ggml's worker threads spin-wait, so on a busy 2-core machine two threads
    # can be many times slower than one; results are the same either way.
    model = CTransformersChatModel(model_path, compat_cache, context_length=2048, threads=1)
    yield model
