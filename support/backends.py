"""Heavy resources, built lazily once per process under a lock, resettable for tests.

Only Celery workers (and the embedded one-process mode, and management commands) call these;
the ASGI process never loads a model or an index.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar, cast

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .conf import get_support_settings
from .llm.base import ChatModel
from .search import retrievers
from .search.embedder import Embedder
from .search.hybrid import HybridSearcher
from .search.index import IndexManifest, IndexReader

T = TypeVar("T")

_lock = threading.RLock()
_instances: dict[str, Any] = {}
_SPECIALISED = "embedder:"


def _get(name: str, build: Any) -> Any:
    instance = _instances.get(name)
    if instance is None:
        with _lock:
            instance = _instances.get(name)
            if instance is None:
                instance = build()
                _instances[name] = instance
    return instance


def get_embedder() -> Embedder:
    """The embedding backend chosen by SUPPORT_EMBEDDER_BACKEND (the model loads on first use)."""

    def build() -> Embedder:
        conf = get_support_settings()
        cls = import_string(conf.embedder_backend)
        return cls(  # type: ignore[no-any-return]
            conf.embedding_model_path or None, threads=conf.model_threads or None
        )

    return _get("embedder", build)  # type: ignore[no-any-return]


def _specialised_embedder(model: retrievers.RetrieverModel) -> Embedder:
    """One embedder per specialised model folder (a promotion adds one, a rollback goes back)."""

    def build() -> Embedder:
        from .search.embedder import SentenceTransformerEmbedder

        conf = get_support_settings()
        # A promotion or rollback leaves the previous specialised model unused: let it go
        # (a search still holding it finishes with it).
        for name in [n for n in _instances if n.startswith(_SPECIALISED)]:
            del _instances[name]
        return SentenceTransformerEmbedder(str(model.path), threads=conf.model_threads or None)

    return _get(_SPECIALISED + model.label, build)  # type: ignore[no-any-return]


def get_retrieval_embedder() -> Embedder:
    """The embedder new knowledge-base embeddings are made with: the published specialised
    model (SUPPORT_DATA_DIR/retrievers/CURRENT), else the configured one (`get_embedder`)."""
    model = retrievers.current(get_support_settings().retrievers_dir)
    return get_embedder() if model is None else _specialised_embedder(model)


def embedder_for_manifest(manifest: IndexManifest) -> Embedder:
    """The embedder that made an index version's vectors, so a query is embedded alike.

    A version built before specialisation existed records no model: the configured one. A
    version whose specialised model folder is gone falls back to the configured model too.
    """
    label = str(manifest.metadata.get("embedding_model") or "")
    if retrievers.is_specialised_label(label):
        root = get_support_settings().retrievers_dir
        version = int(label.removeprefix(retrievers.PREFIX))
        path = retrievers.model_dir(root, version)
        if (path / "modules.json").is_file():
            return _specialised_embedder(retrievers.RetrieverModel(version, path))
    return get_embedder()


def get_index_reader() -> IndexReader:
    """Serves the newest published index version of SUPPORT_DATA_DIR/index."""
    return _get(  # type: ignore[no-any-return]
        "index_reader", lambda: IndexReader(get_support_settings().index_dir)
    )


def get_searcher() -> HybridSearcher:
    """Dense + BM25 hybrid search over the current index; queries are embedded with the
    model that embedded the version searched."""
    return _get(  # type: ignore[no-any-return]
        "searcher",
        lambda: HybridSearcher(
            get_index_reader(), get_embedder(), embedder_for=embedder_for_manifest
        ),
    )


def get_chat_model() -> ChatModel:
    """The generation backend chosen by SUPPORT_GENERATOR_BACKEND (loads on first use)."""

    def build() -> ChatModel:
        conf = get_support_settings()
        cls = import_string(conf.generator_backend)
        model: ChatModel = cls(
            conf.resolved_model_path(),
            cache_dir=conf.model_cache_dir,
            threads=conf.model_threads or None,
        )
        return model

    return cast(ChatModel, _get("chat_model", build))


def serving_threads_configure() -> None:
    """Thread counts for a process that serves searches (a Celery worker process, the embedded
    mode): call once at process start, after any fork.

    faiss gets one OpenMP thread: a single-query search gains nothing from more, and with 2
    threads on 2 busy cores each search stalled at an OpenMP barrier (p95 at 100k chunks
    16.2 ms with 2 threads, 6.1 ms with 1). torch gets SUPPORT_MODEL_THREADS, or 1 when unset:
    one query embedding is too small to split, and with one process per core (the deployment
    advice) more threads only contend with the other processes.
    """
    from .search.index import set_search_threads

    set_search_threads(1)
    import torch  # a worker loads it anyway for the embedder; never called in the ASGI process

    torch.set_num_threads(get_support_settings().model_threads or 1)


def set_backend(name: str, instance: Any) -> None:
    """Install an instance (a fake in tests, a preloaded model in benchmarks)."""
    with _lock:
        _instances[name] = instance


def reset_backends() -> None:
    """Drop every instance; the next call builds them again from current settings."""
    with _lock:
        _instances.clear()


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting.startswith("SUPPORT_"):
        reset_backends()
