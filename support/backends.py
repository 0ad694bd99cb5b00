"""Heavy resources, built lazily once per process under a lock, resettable for tests.

Only Celery workers (and the embedded one-process mode, and management commands) call these;
the ASGI process never loads a model or an index.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, TypeVar, cast

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from .conf import get_support_settings
from .llm import chat_models
from .llm.base import ChatModel
from .search import retrievers
from .search.bridge import BridgeConfig
from .search.embedder import Embedder
from .search.hybrid import HybridSearcher
from .search.index import IndexManifest, IndexReader

T = TypeVar("T")

_lock = threading.RLock()
_instances: dict[str, Any] = {}
_SPECIALISED = "embedder:"
_CHAT_MODEL = "chat_model"
# What the built chat model was built for (chat_models.CURRENT's version, or the pinned
# SUPPORT_MODEL_PATH); absent for an instance installed with set_backend (never replaced).
_chat_model_built_for: dict[str, object] = {}
_override = threading.local()


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


def bridge_config() -> BridgeConfig:
    """The paraphrase bridge's query-time settings (SUPPORT_BRIDGE*)."""
    conf = get_support_settings()
    return BridgeConfig(
        enabled=conf.bridge,
        threshold=conf.bridge_threshold,
        weight=conf.bridge_weight,
        neighbours=conf.bridge_neighbours,
        substitute=conf.bridge_substitute,
    )


def get_searcher() -> HybridSearcher:
    """Dense + BM25 hybrid search over the current index; queries are embedded with the
    model that embedded the version searched."""
    return _get(  # type: ignore[no-any-return]
        "searcher",
        lambda: HybridSearcher(
            get_index_reader(),
            get_embedder(),
            embedder_for=embedder_for_manifest,
            bridge=bridge_config(),
        ),
    )


def _served_chat_model(conf: Any) -> object:
    """Which chat model should be served: the pinned SUPPORT_MODEL_PATH, or CURRENT's version
    (one small file read; a version whose folder is gone counts as the configured model)."""
    if conf.model_path:
        return ("pinned", conf.model_path)
    version = chat_models.current_version(conf.chat_models_dir)
    if version and chat_models.current(conf.chat_models_dir) is None:
        return 0
    return version


def get_chat_model() -> ChatModel:
    """The generation backend chosen by SUPPORT_GENERATOR_BACKEND, loading the chat model file
    `conf.resolved_model_path()` names (on first use).

    Every call compares SUPPORT_DATA_DIR/chat_models/CURRENT with the version this process
    loaded and loads the newly promoted (or rolled back) one when they differ, so every process
    switches without a restart. The previous model is only dropped, never closed: a stream
    still generating with it holds it until it ends. An instance installed with `set_backend`
    (a fake, a benchmark's preloaded model) is never replaced; `chat_model_override` wins over
    both, in its own thread.
    """
    override = getattr(_override, "model", None)
    if override is not None:
        return cast(ChatModel, override)
    conf = get_support_settings()
    served = _served_chat_model(conf)
    instance = _instances.get(_CHAT_MODEL)
    if instance is not None and _chat_model_built_for.get(_CHAT_MODEL, served) == served:
        return cast(ChatModel, instance)
    with _lock:
        served = _served_chat_model(conf)
        instance = _instances.get(_CHAT_MODEL)
        if instance is not None and _chat_model_built_for.get(_CHAT_MODEL, served) == served:
            return cast(ChatModel, instance)
        if isinstance(served, int) and served:
            path = chat_models.version_dir(conf.chat_models_dir, served) / chat_models.MODEL_FILE
        else:
            path = conf.configured_model_path()
        model = chat_model_load(path)
        _instances[_CHAT_MODEL] = model
        _chat_model_built_for[_CHAT_MODEL] = served
        return model


def chat_model_load(path: Any) -> ChatModel:
    """A new instance of the configured generation backend for the GGUF file at `path` (the
    served model, or a candidate the gate evaluates)."""
    conf = get_support_settings()
    cls = import_string(conf.generator_backend)
    model: ChatModel = cls(path, cache_dir=conf.model_cache_dir, threads=conf.model_threads or None)
    return model


@contextlib.contextmanager
def chat_model_override(model: ChatModel) -> Iterator[ChatModel]:
    """Answer with `model` in this thread only, until the block ends (the gate evaluating a
    candidate: other threads, say the embedded mode's answer workers, keep the served one)."""
    previous = getattr(_override, "model", None)
    _override.model = model
    try:
        yield model
    finally:
        _override.model = previous


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
        _chat_model_built_for.pop(name, None)


def reset_backends() -> None:
    """Drop every instance; the next call builds them again from current settings."""
    with _lock:
        _instances.clear()
        _chat_model_built_for.clear()
    # The fact ranker's sentence vectors came from the embedder just dropped.
    from .answers import fact_ranker

    fact_ranker.reset()


@receiver(setting_changed)
def _reset_on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting.startswith("SUPPORT_"):
        reset_backends()
