"""The model warm-up of a serving process (support/warmup.py) and where it is started."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client, override_settings

from chatbot import celery as celery_module
from support import backends, health, knowledge, warmup
from support.answers.prompt import system_prompt
from support.llm import GenerationParams, TextStream
from support.search.hybrid import HybridSearcher
from support.search.index import IndexReader
from support.warmup import WarmupState
from tests.fakes import FakeChatModel, HashingEmbedder


class CountingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def encode_query(self, text: str) -> Any:
        self.queries.append(text)
        return super().encode_query(text)


class CountingSearcher:
    def __init__(self, searcher: HybridSearcher) -> None:
        self.searcher = searcher
        self.queries: list[str] = []

    def search(self, query: str, **kwargs: Any) -> Any:
        self.queries.append(query)
        return self.searcher.search(query, **kwargs)


class BlockingChatModel(FakeChatModel):
    """Generation waits until `release` is set: a warm-up that is still running."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
    ) -> TextStream:
        self.release.wait(30)
        return super().stream(prompt_ids, params, should_stop)


class BrokenChatModel(FakeChatModel):
    def stream(self, *args: Any, **kwargs: Any) -> TextStream:
        raise RuntimeError("the model file is truncated")


class Fakes:
    def __init__(self, data_dir: Path) -> None:
        self.embedder = CountingEmbedder()
        # The searcher embeds through the same embedder, over the data directory's index.
        self.searcher = CountingSearcher(
            HybridSearcher(IndexReader(data_dir / "index"), self.embedder)
        )
        self.chat_model: FakeChatModel = FakeChatModel()
        self.install()

    def install(self) -> None:
        backends.set_backend("embedder", self.embedder)
        backends.set_backend("searcher", self.searcher)
        backends.set_backend("chat_model", self.chat_model)


@pytest.fixture
def fakes(tmp_path: Path) -> Iterator[Fakes]:
    """Fake backends in a private data directory (no index), the warm-up on, a fresh state."""
    warmup.backends_warm_up_reset()
    with override_settings(
        SUPPORT_DATA_DIR=tmp_path, MEDIA_ROOT=tmp_path / "media", SUPPORT_WARMUP=True
    ):
        yield Fakes(tmp_path)
    warmup.backends_warm_up_reset()
    backends.reset_backends()


def test_the_warm_up_runs_each_backend_once(fakes: Fakes) -> None:
    result = warmup.backends_warm_up()
    assert result.ok, result
    assert [p.name for p in result.parts] == ["embedder", "index", "chat_model"]
    assert all(p.seconds >= 0 for p in result.parts)
    assert result.total_s >= sum(p.seconds for p in result.parts)
    assert fakes.searcher.queries == [warmup.WARMUP_QUESTION]
    # One query embedding of its own, one inside the search.
    assert fakes.embedder.queries == [warmup.WARMUP_QUESTION] * 2
    assert fakes.chat_model.calls == 1
    # The real answer prompt, so its system prompt is in the model's prefix cache afterwards.
    assert system_prompt() in fakes.chat_model.prompts[0]
    assert warmup.WARMUP_FACT in fakes.chat_model.prompts[0]
    assert "no index yet" in result.parts[1].detail


@pytest.mark.django_db
def test_the_warm_up_loads_the_published_index(fakes: Fakes) -> None:
    doc = knowledge.document_upload(
        filename="hours.md", data=b"# Hours\n\nWe answer chats from 8 to 20.\n", queue=False
    )
    knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
    version = knowledge.index_rebuild().version
    result = warmup.backends_warm_up()
    assert result.ok, result
    assert fakes.searcher.searcher.reader.version == version
    assert result.parts[1].detail.startswith(f"index v{version}, ")


def test_a_failing_backend_is_logged_and_the_others_still_warm(
    fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.chat_model = BrokenChatModel()
    fakes.install()
    result = warmup.backends_warm_up()
    assert not result.ok
    assert result.failed == ("chat_model",)
    assert "truncated" in result.parts[2].detail
    assert "Warm-up of the chat_model failed" in caplog.text
    assert fakes.searcher.queries == [warmup.WARMUP_QUESTION]


def test_a_backend_that_cannot_even_be_built_fails_only_its_part(fakes: Fakes) -> None:
    # A changed setting drops every instance: the embedder is built from settings too.
    with override_settings(
        SUPPORT_GENERATOR_BACKEND="support.llm.NoSuchModel",
        SUPPORT_EMBEDDER_BACKEND="tests.fakes.HashingEmbedder",
    ):
        result = warmup.backends_warm_up()
    assert result.failed == ("chat_model",), result
    assert "ImportError" in result.parts[2].detail


def test_the_setting_turns_the_background_warm_up_on_and_off(fakes: Fakes) -> None:
    with override_settings(SUPPORT_WARMUP=False):
        fakes.install()
        assert warmup.backends_warm_up_start() is False
        assert warmup.backends_warm_up_wait(10).state is WarmupState.NOT_STARTED
    fakes.install()
    assert fakes.chat_model.calls == 0 and fakes.embedder.queries == []
    assert warmup.backends_warm_up_start() is True
    status = warmup.backends_warm_up_wait(30)
    assert status.state is WarmupState.WARM
    assert status.result is not None and status.result.ok
    # Once per process.
    assert warmup.backends_warm_up_start() is False
    assert warmup.backends_warm_up_wait(30).state is WarmupState.WARM
    assert fakes.chat_model.calls == 1


def test_the_tests_settings_leave_the_warm_up_off() -> None:
    from support.conf import get_support_settings

    assert get_support_settings().warmup is False


def test_a_failed_part_leaves_the_process_warm_but_for_it(fakes: Fakes) -> None:
    fakes.chat_model = BrokenChatModel()
    fakes.install()
    assert warmup.backends_warm_up_start()
    status = warmup.backends_warm_up_wait(30)
    assert status.state is WarmupState.PARTIAL
    assert status.result is not None and status.result.failed == ("chat_model",)


@pytest.mark.parametrize(("pool", "warms"), [("threads", True), ("solo", True), ("prefork", False)])
def test_the_worker_hook_warms_up_single_process_pools_only(
    fakes: Fakes, pool: str, warms: bool
) -> None:
    celery_module._warm_up_in_worker(sender=SimpleNamespace(pool_cls=pool))
    state = warmup.backends_warm_up_wait(30).state
    assert (state is WarmupState.WARM) is warms
    assert fakes.chat_model.calls == (1 if warms else 0)


def test_a_prefork_child_warms_up_after_the_fork(fakes: Fakes) -> None:
    celery_module._warm_up_in_child()
    assert warmup.backends_warm_up_wait(30).state is WarmupState.WARM
    assert fakes.chat_model.calls == 1


def test_the_embedded_worker_warms_up_when_it_is_built(fakes: Fakes) -> None:
    import faiss
    import torch

    from chatbot.celery import app
    from support import embedded

    # Building the worker runs every worker_init hook, the thread settings too: keep ours.
    threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    try:
        embedded.EmbeddedWorker(app).controller_build()  # Celery's worker_init, not started
        assert warmup.backends_warm_up_wait(30).state is WarmupState.WARM
    finally:
        torch.set_num_threads(threads[0])
        faiss.omp_set_num_threads(threads[1])
    assert fakes.chat_model.calls == 1


# -- /readyz --------------------------------------------------------------------------------------
def _readyz() -> tuple[int, dict[str, Any]]:
    response = Client().get("/readyz")
    return response.status_code, json.loads(response.content)


@pytest.mark.django_db(transaction=True)
def test_the_web_process_never_warms_up_and_readyz_does_not_ask(fakes: Fakes) -> None:
    status, body = _readyz()
    assert status == 200, body
    assert "models" not in body["checks"]
    assert warmup.backends_warm_up_status().state is WarmupState.NOT_STARTED
    assert fakes.chat_model.calls == 0 and fakes.embedder.queries == []


@pytest.mark.django_db(transaction=True)
def test_readyz_waits_for_a_warm_up_in_this_process(
    fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocking = BlockingChatModel()
    fakes.chat_model = blocking
    fakes.install()
    assert warmup.backends_warm_up_start()
    try:
        status, body = _readyz()
        assert status == 503, body
        assert body["failing"] == ["models"]
        assert body["checks"]["models"]["detail"].startswith("warming up for")
        # Never forever: after WARMUP_READY_WAIT_S the process is ready while still warming.
        monkeypatch.setattr(health, "WARMUP_READY_WAIT_S", 0.0)
        status, body = _readyz()
        assert status == 200, body
        assert "answering anyway" in body["checks"]["models"]["detail"]
    finally:
        blocking.release.set()
    assert warmup.backends_warm_up_wait(30).state is WarmupState.WARM
    status, body = _readyz()
    assert status == 200, body
    assert body["checks"]["models"]["detail"].startswith("warm in ")


@pytest.mark.django_db(transaction=True)
def test_readyz_is_ready_when_a_part_failed(fakes: Fakes) -> None:
    fakes.chat_model = BrokenChatModel()
    fakes.install()
    assert warmup.backends_warm_up_start()
    warmup.backends_warm_up_wait(30)
    status, body = _readyz()
    assert status == 200, body
    assert body["checks"]["models"]["ok"] is True
    assert "warm but for chat_model" in body["checks"]["models"]["detail"]
