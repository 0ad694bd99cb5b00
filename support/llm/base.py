"""The ChatModel interface and the decoding loop shared by every backend.

Backends only evaluate tokens and expose the last position's logits; tokenization, chat
templating, greedy decoding (logit bias, repetition penalty), stop sequences, limits and
prefix reuse live here, so ctransformers and llama.cpp produce the same text for the same
prompt and differ only in speed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from .chat_template import ChatTemplate
from .errors import GenerationError, PromptTooLongError
from .gguf_file import GgufFile
from .tokenizer import GgufTokenizer

# Prompt tokens are evaluated in chunks so a cancel or deadline is noticed within one chunk
# (~1-2 s for 128 tokens of SmolLM2-135M on one core), not after a whole long prompt.
# Measured on ctransformers: chunks of 16 to 256 tokens evaluate equally fast.
PROMPT_CHUNK_TOKENS = 128
# The window the RAG prompts need is far below the models' trained context; a bigger one
# only costs memory (backends allocate the KV cache for the full window up front).
DEFAULT_MAX_CONTEXT = 4096
_LOCK_POLL_S = 0.05


class FinishReason(StrEnum):
    EOS = "eos"  # the model ended its turn
    STOP = "stop"  # a stop sequence appeared
    LENGTH = "length"  # max_tokens reached or the context window is full
    TIMEOUT = "timeout"  # params.deadline_s elapsed
    CANCELLED = "cancelled"  # should_stop() returned True, or the consumer closed the stream
    ERROR = "error"  # the backend raised (the exception propagates to the consumer)


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Decoding settings; greedy decoding is the only strategy (answers must be reproducible)."""

    max_tokens: int = 256
    stop: Sequence[str] = ()
    deadline_s: float | None = None  # wall-clock budget, counted from the first next()
    repetition_penalty: float = 1.3  # llama.cpp style; 1.0 disables it
    repetition_window: int = 64  # last N tokens, as llama.cpp's last_n
    # llama.cpp counts prompt tokens as "seen", which penalises copying from passages in the
    # prompt; False penalises only what the model generated itself.
    penalize_prompt: bool = True
    logit_bias: Mapping[int, float] | None = None  # token id -> added to its logit
    threads: int | None = None  # None: the model's default
    # Precomputed from logit_bias once per params object: the caller builds one per question
    # and the loop applies it to every token with a single fancy-indexed add.
    _bias_ids: npt.NDArray[np.intp] = field(init=False, repr=False, compare=False)
    _bias_values: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_tokens < 0:
            raise ValueError("max_tokens must be >= 0")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be > 0")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError("deadline_s must be > 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError("threads must be >= 1")
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", tuple(s for s in stop if s))
        bias = self.logit_bias or {}
        object.__setattr__(self, "_bias_ids", np.fromiter(bias.keys(), np.intp, len(bias)))
        object.__setattr__(self, "_bias_values", np.fromiter(bias.values(), np.float32, len(bias)))

    @property
    def bias_arrays(self) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]:
        return self._bias_ids, self._bias_values


@dataclass(frozen=True, slots=True)
class GenerationStats:
    prompt_tokens: int
    cached_prompt_tokens: int  # reused from the previous call (prefix reuse), not evaluated
    generated_tokens: int  # sampled tokens, including a final end-of-turn token
    ttft_s: float | None  # first next() to first sampled token; None if none was sampled
    total_s: float
    finish_reason: FinishReason
    generated_ids: tuple[int, ...] = ()  # the sampled ids, in order

    @property
    def evaluated_prompt_tokens(self) -> int:
        return self.prompt_tokens - self.cached_prompt_tokens

    @property
    def decode_tokens_per_s(self) -> float | None:
        if self.ttft_s is None or self.generated_tokens < 2 or self.total_s <= self.ttft_s:
            return None
        return (self.generated_tokens - 1) / (self.total_s - self.ttft_s)


class TextStream(Iterator[str]):
    """Text pieces as they are generated; ``stats`` is set once the stream has finished.

    Iterate it to the end, or use it as a context manager (or call ``close()``): the
    model's lock is held until then, and closing early counts as cancelled.
    """

    def __init__(
        self, run: Callable[[Callable[[GenerationStats], None]], Generator[str, None, None]]
    ) -> None:
        self._stats: GenerationStats | None = None
        self._gen = run(self._set_stats)

    @classmethod
    def from_pieces(cls, pieces: Iterable[str], stats: GenerationStats) -> TextStream:
        """A finished-when-exhausted stream of given pieces: for fakes in tests."""

        def run(done: Callable[[GenerationStats], None]) -> Generator[str, None, None]:
            yield from pieces
            done(stats)

        return cls(run)

    def _set_stats(self, stats: GenerationStats) -> None:
        self._stats = stats

    @property
    def stats(self) -> GenerationStats | None:
        return self._stats

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> str:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def text(self) -> str:
        """Consume the rest of the stream and return it joined."""
        return "".join(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class ChatModel(Protocol):
    """A loaded local chat model. Generation is serialised per instance."""

    @property
    def context_length(self) -> int: ...

    @property
    def eos_token_ids(self) -> frozenset[int]: ...

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]: ...

    def detokenize(self, token_ids: Sequence[int]) -> str: ...

    def render_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str: ...

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
    ) -> TextStream: ...


class TokenEvaluator(Protocol):
    """What a backend must provide: positional evaluation and the last position's logits."""

    @property
    def n_ctx(self) -> int: ...

    @property
    def n_vocab(self) -> int: ...

    def eval(self, tokens: Sequence[int], n_past: int, threads: int) -> None:
        """Evaluate ``tokens`` at positions n_past.. , overwriting any cache beyond n_past."""

    def logits(self) -> npt.NDArray[np.float32]:
        """Logits after the last evaluated token (a view; valid until the next eval)."""


def context_length_for(gguf: GgufFile, requested: int | None) -> int:
    """The context window to allocate: as requested, never beyond what the model was trained on."""
    trained = gguf.get_int(f"{gguf.architecture}.context_length") or 2048
    if requested is not None:
        if requested < 16:
            raise ValueError("context_length must be >= 16")
        return min(requested, trained)
    return min(trained, DEFAULT_MAX_CONTEXT)


def default_threads() -> int:
    """One core less than available (at most 4): leave a core to the rest of the system.

    ggml's worker threads spin-wait for each other; when another process takes a core
    (embedder, web server, database) a thread that shares it stalls them all. Measured on
    the 2-core box under load: 1 thread ~26 tokens/s, 2 threads 1.5-6 tokens/s.
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(n - 1, 4))


class _StopMatcher:
    """Cuts the text at the first stop sequence, holding back text that may start one."""

    __slots__ = ("_pending", "_stops")

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(stops)
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Return (text safe to emit, whether a stop sequence was found)."""
        if not self._stops:
            return text, False
        pending = self._pending + text
        hits = [i for i in (pending.find(s) for s in self._stops) if i >= 0]
        if hits:
            self._pending = ""
            return pending[: min(hits)], True
        hold = 0
        for stop in self._stops:
            for n in range(min(len(stop) - 1, len(pending)), hold, -1):
                if pending.endswith(stop[:n]):
                    hold = n
                    break
        cut = len(pending) - hold
        self._pending = pending[cut:]
        return pending[:cut], False

    def flush(self) -> str:
        pending, self._pending = self._pending, ""
        return pending


def _stats(
    prompt: Sequence[int],
    reused: int,
    generated: Sequence[int],
    ttft: float | None,
    start: float,
    reason: FinishReason,
) -> GenerationStats:
    return GenerationStats(
        prompt_tokens=len(prompt),
        cached_prompt_tokens=reused,
        generated_tokens=len(generated),
        ttft_s=ttft,
        total_s=time.perf_counter() - start,
        finish_reason=reason,
        generated_ids=tuple(generated),
    )


def _common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class DecodingChatModel:
    """ChatModel implementation over any TokenEvaluator (subclassed per backend)."""

    def __init__(
        self,
        *,
        tokenizer: GgufTokenizer,
        evaluator: TokenEvaluator,
        threads: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self._evaluator = evaluator
        self._threads = threads or default_threads()
        info = tokenizer.info
        self.chat_template = ChatTemplate(
            info.chat_template,
            bos_token=info.bos_token,
            eos_token=info.eos_token,
            special_token_texts=info.special_token_texts,
        )
        self._eog = info.end_of_generation_ids
        self._lock = threading.Lock()
        # Token ids whose keys/values are in the backend's cache, position by position.
        self._cached: list[int] = []
        self._logits = np.empty(evaluator.n_vocab, dtype=np.float32)
        #: Tokens evaluated since construction; lets tests and metrics see prefix reuse.
        self.tokens_evaluated = 0

    # -- ChatModel ------------------------------------------------------------------------
    @property
    def context_length(self) -> int:
        return self._evaluator.n_ctx

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self._eog

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        return self.tokenizer.encode(text, parse_special=parse_special)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(token_ids)

    def render_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        return self.chat_template.render(messages, add_generation_prompt=add_generation_prompt)

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
    ) -> TextStream:
        """Greedy-decode after ``prompt_ids``; the returned stream yields text pieces."""
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise ValueError("prompt_ids must not be empty")
        n_vocab = self._evaluator.n_vocab
        if min(prompt) < 0 or max(prompt) >= n_vocab:
            raise ValueError(f"prompt token ids must be in [0, {n_vocab})")
        bias_ids, _ = params.bias_arrays
        if bias_ids.size and (bias_ids.min() < 0 or bias_ids.max() >= n_vocab):
            raise ValueError(f"logit_bias token ids must be in [0, {n_vocab})")
        if len(prompt) >= self.context_length:
            raise PromptTooLongError(len(prompt), self.context_length)
        return TextStream(lambda done: self._run(prompt, params, should_stop, done))

    def next_token_scores(
        self, prompt_ids: Sequence[int], params: GenerationParams | None = None
    ) -> npt.NDArray[np.float32]:
        """Logits for the token after ``prompt_ids``, with the params' bias and penalty applied.

        For diagnostics and tests (e.g. how close a greedy choice was); uses the prefix cache.
        """
        params = params or GenerationParams()
        prompt = [int(t) for t in prompt_ids]
        if not prompt:
            raise ValueError("prompt_ids must not be empty")
        if len(prompt) >= self.context_length:
            raise PromptTooLongError(len(prompt), self.context_length)
        threads = params.threads or self._threads
        with self._lock:
            reused = min(_common_prefix_length(self._cached, prompt), len(prompt) - 1)
            del self._cached[reused:]
            for pos in range(reused, len(prompt), PROMPT_CHUNK_TOKENS):
                self._eval(prompt[pos : pos + PROMPT_CHUNK_TOKENS], threads)
            self._next_token(params, len(prompt))
            return self._logits.copy()

    def reset_cache(self) -> None:
        """Forget the cached prefix (the next call evaluates its whole prompt)."""
        with self._lock:
            self._cached = []

    # -- decoding loop --------------------------------------------------------------------
    def _eval(self, tokens: list[int], threads: int) -> None:
        n_past = len(self._cached)
        try:
            self._evaluator.eval(tokens, n_past, threads)
        except Exception as exc:
            self._cached = []  # the backend's cache state is unknown now
            raise GenerationError(f"token evaluation failed: {exc}") from exc
        self._cached.extend(tokens)
        self.tokens_evaluated += len(tokens)

    def _next_token(self, params: GenerationParams, n_prompt: int) -> int:
        logits = self._logits
        np.copyto(logits, self._evaluator.logits())
        bias_ids, bias_values = params.bias_arrays
        if bias_ids.size:
            logits[bias_ids] += bias_values
        penalty = params.repetition_penalty
        if penalty != 1.0 and params.repetition_window > 0:
            first = len(self._cached) - params.repetition_window
            if not params.penalize_prompt:
                first = max(first, n_prompt)
            recent = np.fromiter(set(self._cached[max(first, 0) :]), np.intp)
            selected = logits[recent]
            logits[recent] = np.where(selected > 0, selected / penalty, selected * penalty)
        return int(np.argmax(logits))

    def _run(
        self,
        prompt: list[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None,
        done: Callable[[GenerationStats], None],
    ) -> Generator[str, None, None]:
        start = time.perf_counter()
        deadline = None if params.deadline_s is None else start + params.deadline_s
        threads = params.threads or self._threads
        generated: list[int] = []
        reused = 0
        ttft: float | None = None
        reason = FinishReason.CANCELLED  # if the consumer closes the stream early

        def interrupted() -> FinishReason | None:
            if should_stop is not None and should_stop():
                return FinishReason.CANCELLED
            if deadline is not None and time.perf_counter() >= deadline:
                return FinishReason.TIMEOUT
            return None

        # Wait for the model without ignoring a cancel or the deadline meanwhile: under load
        # requests queue here behind the current generation.
        while not self._lock.acquire(timeout=_LOCK_POLL_S):
            if (queued := interrupted()) is not None:
                reason = queued
                done(_stats(prompt, 0, [], None, start, reason))
                return
        try:
            # Keep the cached prefix shared with this prompt; at least the last prompt
            # token is evaluated again, since only its logits are needed.
            reused = min(_common_prefix_length(self._cached, prompt), len(prompt) - 1)
            del self._cached[reused:]
            detok = self.tokenizer.detokenizer()
            stops = _StopMatcher(params.stop)
            stopped = interrupted()
            pos = reused
            while stopped is None and pos < len(prompt):
                chunk = prompt[pos : pos + PROMPT_CHUNK_TOKENS]
                self._eval(chunk, threads)
                pos += len(chunk)
                if pos < len(prompt):
                    stopped = interrupted()

            while stopped is None:
                if len(generated) >= params.max_tokens or len(self._cached) >= self.context_length:
                    stopped = FinishReason.LENGTH
                    break
                token = self._next_token(params, len(prompt))
                generated.append(token)
                if ttft is None:
                    ttft = time.perf_counter() - start
                if token in self._eog:
                    stopped = FinishReason.EOS
                    break
                text, hit = stops.feed(detok.push(token))
                if text:
                    yield text
                if hit:
                    stopped = FinishReason.STOP
                    break
                if len(generated) >= params.max_tokens:
                    continue  # no need to evaluate a token nothing will follow
                self._eval([token], threads)
                stopped = interrupted()

            reason = stopped
            if reason != FinishReason.STOP:
                text, hit = stops.feed(detok.flush())
                tail = text if hit else text + stops.flush()
                if hit:
                    reason = FinishReason.STOP
                if tail:
                    yield tail
        except Exception:
            reason = FinishReason.ERROR
            raise
        finally:
            self._lock.release()
            done(_stats(prompt, reused, generated, ttft, start, reason))
