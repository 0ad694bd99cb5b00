"""Fakes implementing the backend Protocols (not deep mocks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence

from support.llm import FinishReason, GenerationParams, GenerationStats, TextStream


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
        words = self.answer.split(" ")

        def run(done: Callable[[GenerationStats], None]) -> Generator[str, None, None]:
            started = time.perf_counter()
            reason = FinishReason.EOS
            count = 0
            for i, word in enumerate(words[: params.max_tokens]):
                if should_stop is not None and should_stop():
                    reason = FinishReason.CANCELLED
                    break
                if self.delay_s:
                    time.sleep(self.delay_s)
                count += 1
                yield word if i == 0 else " " + word
            done(
                GenerationStats(
                    len(prompt_ids), 0, count, 0.001, time.perf_counter() - started, reason
                )
            )

        return TextStream(run)
