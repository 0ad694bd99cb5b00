"""Warm-up of a serving process: build the heavy backends and run each once at start.

Without it the first customer after a start paid for loading the embedder, the index and the
chat model and for the first prompt evaluation (14.5 s to the first token, issue 12). A serving
process (a Celery worker process, the embedded mode) calls `backends_warm_up_start()` once
after any fork; it runs `backends_warm_up()` in a daemon thread, so the worker consumes from
the start: a task that arrives meanwhile waits on the backend's build lock (backends.py) and
then on the model's own lock for a few tokens, never longer than lazy loading would make it.

A failing part is logged and skipped: that backend loads on first use as before. The web
process never calls this (docs/architecture.md); it has no warm-up state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from django.db import connection

from .backends import get_chat_model, get_embedder, get_searcher
from .conf import get_support_settings
from .search.index import IndexNotReady

logger = logging.getLogger(__name__)

# Enough to run the decoding loop (sampling, detokenizing, the stop matcher) end to end.
WARMUP_TOKENS = 4
WARMUP_QUESTION = "How can I reach support?"
# A fact in the answer prompt's format: the system prompt and the example exchanges before it
# are then in the model's prefix cache, as they are after any answer.
WARMUP_FACT = "You can reach our support team in this chat."


class WarmupState(StrEnum):
    # This process has not started a warm-up: the web process, or SUPPORT_WARMUP is off (the
    # backends then load on first use).
    NOT_STARTED = "not_started"
    WARMING = "warming"
    WARM = "warm"
    PARTIAL = "partial"  # a part failed: that backend loads on first use


@dataclass(frozen=True, slots=True)
class WarmupPart:
    name: str  # "embedder", "index", "chat_model"
    ok: bool
    seconds: float
    detail: str = ""  # what it did, or why it failed


@dataclass(frozen=True, slots=True)
class WarmupResult:
    parts: tuple[WarmupPart, ...]
    total_s: float

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.parts)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parts if not p.ok)

    def seconds(self, name: str) -> float | None:
        return next((p.seconds for p in self.parts if p.name == name), None)

    def summary(self) -> str:
        """ "embedder 2.1 s, index 0.3 s, chat_model 1.8 s (failed: ...)" for logs and /readyz."""
        parts = ", ".join(f"{p.name} {p.seconds:.1f} s" for p in self.parts)
        failed = f" (failed: {', '.join(self.failed)})" if self.failed else ""
        return f"{self.total_s:.1f} s: {parts}{failed}"


@dataclass(frozen=True, slots=True)
class WarmupStatus:
    state: WarmupState
    elapsed_s: float  # since the warm-up started (0 when none did)
    result: WarmupResult | None


def _embedder_part() -> str:
    vector = get_embedder().encode_query(WARMUP_QUESTION)
    return f"{len(vector)} dimensions"


def _index_part() -> str:
    # The searcher embeds again (now warm) and loads the index snapshot: FAISS and BM25.
    try:
        result = get_searcher().search(WARMUP_QUESTION, k=5)
    except IndexNotReady:
        return "no index yet (the first build publishes one)"
    return f"index v{result.index_version}, {len(result.hits)} hits"


def _chat_model_part() -> str:
    from .answers.prompt import prompt_build
    from .answers.types import Fact
    from .llm import GenerationParams
    from .retrieval import Passage

    model = get_chat_model()
    passage = Passage(0, 0, "", "", "", (), None, "", WARMUP_FACT, 1.0, 1.0, 1.0, 1)
    prompt = prompt_build(
        question=WARMUP_QUESTION,
        facts=[Fact(1, passage, WARMUP_FACT, 1.0)],
        history=(),
        model=model,
        max_new_tokens=WARMUP_TOKENS,
    )
    params = GenerationParams(
        max_tokens=WARMUP_TOKENS, deadline_s=get_support_settings().answer_timeout_s
    )
    with model.stream(list(prompt.token_ids), params) as stream:
        stream.text()
    stats = stream.stats
    tokens = stats.generated_tokens if stats else 0
    return f"{len(prompt.token_ids)} prompt tokens, {tokens} generated"


PARTS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("embedder", _embedder_part),
    ("index", _index_part),
    ("chat_model", _chat_model_part),
)

_lock = threading.Lock()
_started_at: float | None = None
_result: WarmupResult | None = None
_thread: threading.Thread | None = None


def backends_warm_up() -> WarmupResult:
    """Build the embedder, the index and the chat model through support.backends and run each
    once (one query embedding, one search, a few generated tokens). Never raises: a failing
    part is logged and its backend loads on first use."""
    started = time.perf_counter()
    parts = []
    for name, run in PARTS:
        part_started = time.perf_counter()
        try:
            detail, ok = run(), True
        except Exception as exc:
            logger.exception("Warm-up of the %s failed; it loads on first use", name)
            detail, ok = f"{type(exc).__name__}: {exc}", False
        parts.append(WarmupPart(name, ok, time.perf_counter() - part_started, detail))
    result = WarmupResult(tuple(parts), time.perf_counter() - started)
    logger.info("Warm-up done in %s", result.summary())
    return result


def backends_warm_up_start() -> bool:
    """Start `backends_warm_up()` in a daemon thread, once per process, when SUPPORT_WARMUP is
    on (False when off or already started). Call after any fork, where a process starts
    serving."""
    global _started_at, _result, _thread
    if not get_support_settings().warmup:
        logger.info("Warm-up is off (SUPPORT_WARMUP): models load on the first answer")
        return False
    with _lock:
        if _started_at is not None:
            return False
        _started_at = time.monotonic()

        def run() -> None:
            global _result
            result = backends_warm_up()
            with _lock:
                _result = result
            try:
                connection.close()  # this thread's own database connection, if it opened one
            except Exception:
                logger.exception("Closing the warm-up thread's database connection failed")

        _thread = threading.Thread(target=run, name="backends-warm-up", daemon=True)
        _thread.start()
    return True


def backends_warm_up_status() -> WarmupStatus:
    """This process's warm-up: not started, warming, warm, or warm but for failed parts."""
    with _lock:
        started, result = _started_at, _result
    if started is None:
        return WarmupStatus(WarmupState.NOT_STARTED, 0.0, None)
    if result is None:
        return WarmupStatus(WarmupState.WARMING, time.monotonic() - started, None)
    state = WarmupState.WARM if result.ok else WarmupState.PARTIAL
    return WarmupStatus(state, result.total_s, result)


def backends_warm_up_wait(timeout: float | None = None) -> WarmupStatus:
    """Wait for a started warm-up to finish (benchmarks, tests); the status after waiting."""
    with _lock:
        thread = _thread
    if thread is not None:
        thread.join(timeout)
    return backends_warm_up_status()


def backends_warm_up_reset() -> None:
    """Forget this process's warm-up (tests): the next start runs it again."""
    global _started_at, _result, _thread
    backends_warm_up_wait(10.0)
    with _lock:
        _started_at, _result, _thread = None, None, None
