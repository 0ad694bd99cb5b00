"""A knowledge base with one real document, the real embedder and a scripted model (as in
tests/chat), plus a way to change SUPPORT_* settings without losing the fakes: a settings change
resets the backends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings

from support import answered, backends, knowledge
from tests.chat.conftest import ROUTER_MD
from tests.fakes import FakeChatModel
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)


class ChatEnv:
    def __init__(self, fake: FakeChatModel, embedder: Any) -> None:
        self.fake = fake
        self.embedder = embedder

    def install(self) -> None:
        backends.set_backend("embedder", self.embedder)
        backends.set_backend("chat_model", self.fake)

    @contextmanager
    def settings(self, **overrides: Any) -> Iterator[None]:
        with override_settings(**overrides):
            self.install()
            cache.delete(answered._PENDING_COUNT_KEY)
            yield
        self.install()


@pytest.fixture
def env(tmp_path: Path, real_embedder: Any) -> Iterator[ChatEnv]:  # noqa: F811
    chat = ChatEnv(FakeChatModel(), real_embedder)
    with override_settings(
        SUPPORT_DATA_DIR=tmp_path,
        MEDIA_ROOT=tmp_path / "media",
        SUPPORT_DEBOUNCE_S=0,
        SUPPORT_RETRIEVAL_MIN_CONFIDENCE=0.02,
    ):
        chat.install()
        doc = knowledge.document_upload(filename="router.md", data=ROUTER_MD, queue=False)
        knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
        knowledge.index_rebuild()
        cache.delete(answered._PENDING_COUNT_KEY)
        yield chat
    backends.reset_backends()


class Sent:
    """Channel-layer events as the services sent them (optionally dropping some kinds)."""

    def __init__(self, real: Any, drop: tuple[str, ...] = ()) -> None:
        self.real = real
        self.drop = drop
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, group: str, event: dict[str, Any]) -> None:
        self.events.append((group, event))
        if event.get("payload", {}).get("type") not in self.drop:
            self.real(group, event)

    def frames(self, kind: str) -> list[dict[str, Any]]:
        return [e["payload"] for _, e in self.events if e.get("payload", {}).get("type") == kind]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    from support import events

    recorder = Sent(events.group_send)
    monkeypatch.setattr(events, "group_send", recorder)
    return recorder


class Queued:
    """Answer tasks queued but lost (a Redis restart, a dead worker): the first `lose` of them
    never run; later ones run as usual (eagerly in tests)."""

    def __init__(self, real: Any, lose: int) -> None:
        self.real = real
        self.lose = lose
        self.message_ids: list[int] = []

    def __call__(self, *args: Any, kwargs: dict[str, Any] | None = None, **options: Any) -> Any:
        assert kwargs is not None
        self.message_ids.append(kwargs["message_id"])
        if len(self.message_ids) > self.lose:
            return self.real(*args, kwargs=kwargs, **options)
        return None


def _lose(monkeypatch: pytest.MonkeyPatch, lose: int) -> Queued:
    from support.tasks import reply_generate_task

    queued = Queued(reply_generate_task.apply_async, lose)
    monkeypatch.setattr(reply_generate_task, "apply_async", queued)
    return queued


@pytest.fixture
def lost_tasks(monkeypatch: pytest.MonkeyPatch) -> Queued:
    """Every answer task is lost."""
    return _lose(monkeypatch, 10**6)


@pytest.fixture
def first_task_lost(monkeypatch: pytest.MonkeyPatch) -> Queued:
    """The first answer task is lost; the re-queued one runs."""
    return _lose(monkeypatch, 1)
