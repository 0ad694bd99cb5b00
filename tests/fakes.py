"""Fakes implementing the backend Protocols (not deep mocks)."""

from __future__ import annotations

import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

import numpy as np

from support.llm import FinishReason, GenerationParams, GenerationStats, TextStream
from support.search.lexical import tokenize


def piece_stream(
    pieces: Sequence[str],
    *,
    prompt_tokens: int,
    should_stop: Callable[[], bool] | None = None,
    delay_s: float = 0.0,
    ttft_s: float = 0.001,
    deadline_s: float | None = None,
) -> TextStream:
    """A TextStream that yields `pieces` one by one (each after `delay_s`), stops when
    `should_stop()` says so or `deadline_s` has passed, and reports GenerationStats like a
    real backend."""

    def run(done: Callable[[GenerationStats], None]) -> Generator[str, None, None]:
        started = time.perf_counter()
        reason = FinishReason.EOS
        count = 0
        for piece in pieces:
            if should_stop is not None and should_stop():
                reason = FinishReason.CANCELLED
                break
            if deadline_s is not None and time.perf_counter() - started >= deadline_s:
                reason = FinishReason.TIMEOUT
                break
            if delay_s:
                time.sleep(delay_s)
            count += 1
            yield piece
        done(
            GenerationStats(prompt_tokens, 0, count, ttft_s, time.perf_counter() - started, reason)
        )

    return TextStream(run)


def word_pieces(words: Sequence[str]) -> list[str]:
    """Words as streamed text: a space before every word but the first."""
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


class FakeChatModel:
    """A ChatModel that writes a scripted answer word by word."""

    context_length = 2048
    eos_token_ids = frozenset({0})

    def __init__(
        self, answer: str = "Hold the reset button for 10 seconds [1].", delay_s: float = 0.0
    ) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.prompts: list[str] = []
        self.calls = 0

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        return [1 + (sum(map(ord, w)) % 4000) for w in text.split()] or [1]

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return " ".join(str(t) for t in token_ids)

    def render_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        text = "\n".join(f"<{m['role']}> {m['content']}" for m in messages)
        self.prompts.append(text)
        return text

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
    ) -> TextStream:
        self.calls += 1
        return piece_stream(
            word_pieces(self.answer.split(" ")[: params.max_tokens]),
            prompt_tokens=len(prompt_ids),
            should_stop=should_stop,
            delay_s=self.delay_s,
            deadline_s=params.deadline_s,
        )


class HashingEmbedder:
    """An `Embedder` that SUPPORT_EMBEDDER_BACKEND can name (same constructor as the real one):
    a hashed bag of words, L2-normalised. Instant and deterministic; texts sharing words are
    closer. For tests that run real worker processes without loading the embedding model."""

    dimension = 64
    model_name = "fake-hashing-64"

    def __init__(self, model_path: str | None = None, *, threads: int | None = None) -> None:
        self.model_path = model_path or ""

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> Any:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenize(text) or ["<empty>"]:
                h = zlib.crc32(token.encode("utf-8"))
                out[row, h % self.dimension] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out /= norms
        out[np.linalg.norm(out, axis=1) == 0, 0] = 1.0  # an all-cancelled row
        return out

    def encode_query(self, text: str) -> Any:
        return self.encode([text])[0]


class SlowEchoChatModel:
    """A ChatModel that SUPPORT_GENERATOR_BACKEND can name (same constructor as the real ones):
    it answers by copying the facts of the prompt, one word every FAKE_CHAT_DELAY_S seconds
    (environment, default 0.15), so the answer is grounded and takes a predictable time.

    Its tokenizer is reversible (one id per word or run of whitespace), so `stream` reads the
    facts back from the prompt ids. For fault and load tests with real worker processes.
    """

    context_length = 4096
    eos_token_ids = frozenset({0})

    def __init__(
        self,
        model_path: object = None,
        *,
        cache_dir: object = None,
        threads: int | None = None,
        delay_s: float | None = None,
    ) -> None:
        self.delay_s = (
            float(os.environ.get("FAKE_CHAT_DELAY_S", "0.15")) if delay_s is None else delay_s
        )
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._words: list[str] = ["</s>"]  # id 0 is end-of-turn
        self.calls = 0

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        ids = []
        with self._lock:
            for piece in re.findall(r"\s+|\S+", text):
                token_id = self._ids.get(piece)
                if token_id is None:
                    token_id = self._ids[piece] = len(self._words)
                    self._words.append(piece)
                ids.append(token_id)
        return ids or [1]

    def detokenize(self, token_ids: Sequence[int]) -> str:
        with self._lock:
            return "".join(self._words[t] for t in token_ids if 0 < t < len(self._words))

    def render_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        return "\n".join(f"<{m['role']}>\n{m['content']}" for m in messages) + "\n<assistant>\n"

    def _facts(self, prompt: str) -> list[str]:
        last_turn = prompt.rsplit("<user>", 1)[-1]
        facts = []
        for match in re.finditer(r"^\[(\d{1,2})\] (.+)$", last_turn, re.MULTILINE):
            text = match.group(2).strip().rstrip(" …")
            if text and text[-1] not in ".!?":
                text += "."
            facts.append(f"{text[:-1]} [{match.group(1)}]{text[-1]}")
        return facts or ["I do not know."]

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
    ) -> TextStream:
        self.calls += 1
        words = " ".join(self._facts(self.detokenize(prompt_ids))).split(" ")
        return piece_stream(
            word_pieces(words[: params.max_tokens]),
            prompt_tokens=len(prompt_ids),
            should_stop=should_stop,
            delay_s=self.delay_s,
            ttft_s=self.delay_s,
        )


class FileChatModel(FakeChatModel):
    """A FakeChatModel that SUPPORT_GENERATOR_BACKEND can name (the real backends' constructor):
    it remembers the model file it was built for and answers with that file's name, so a test
    sees which version a process serves without loading a model."""

    instances: list[FileChatModel] = []

    def __init__(self, model_path: Any, cache_dir: Any = None, threads: int | None = None) -> None:
        self.model_path = str(model_path)
        super().__init__(answer=f"served {self.model_path}")
        FileChatModel.instances.append(self)


class ScriptFileChatModel(FakeChatModel):
    """A FakeChatModel that SUPPORT_GENERATOR_BACKEND can name, scripted by its model file: a
    JSON file {"answers": {question: answer}, "delay_s": float} (what the fake export of
    tests/learning/chat_fakes.py writes) answers each question it finds in the prompt's last
    message with its answer; any other file (the shipped GGUF) gives FakeChatModel's answer."""

    def __init__(self, model_path: Any, cache_dir: Any = None, threads: int | None = None) -> None:
        import json

        super().__init__(delay_s=0.02)
        self.model_path = str(model_path)
        self.answers: dict[str, str] = {}
        self.last_message = ""
        try:
            with open(model_path, encoding="utf-8") as fh:
                script = json.load(fh)
        except (OSError, ValueError):
            return
        self.answers = dict(script.get("answers") or {})
        self.delay_s = float(script.get("delay_s", self.delay_s))

    def render_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        self.last_message = messages[-1]["content"] if messages else ""
        return super().render_chat(messages, add_generation_prompt=add_generation_prompt)

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
    ) -> TextStream:
        found = [q for q in self.answers if q.lower() in self.last_message.lower()]
        answer = self.answers[max(found, key=len)] if found else FakeChatModel().answer
        self.calls += 1
        return piece_stream(
            word_pieces(answer.split(" ")[: params.max_tokens]),
            prompt_tokens=len(prompt_ids),
            should_stop=should_stop,
            delay_s=self.delay_s,
        )
