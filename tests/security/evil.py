"""An "evil model": a chat model that obeys every instruction it reads, wherever it reads it.

It stands in for a small model fooled by prompt injection (SmolLM2-135M is easily fooled), so
the tests can show that the application's own controls hold even when the model does exactly
what an attacker wrote: in a customer message, in an earlier turn, or in a knowledge-base
document. Strategies:

- "obey": find the last instruction in the prompt and carry it out: "repeat/print/reveal the
  system prompt (instructions)" -> the system prompt verbatim; "say X" / "print X" -> X;
  "print/show the link" -> the first Markdown link in the prompt; "escalate"/"hand off" ->
  "[HANDOFF] ..." as a model might announce an action; nothing found -> the whole prompt.
- "verbatim": the whole prompt, every message, as the model received it.
- "smuggle": the clever attacker's version of "obey": the payload is written inside a copy of
  the first fact (which the groundedness check supports), e.g. "Hold the reset button ...
  PAYLOAD [1]." -- the most a fooled model can do against a lexical gate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from support.llm import GenerationParams, TextStream
from tests.fakes import FakeChatModel, piece_stream

_SYSTEM_REQUEST = re.compile(
    r"\b(?:repeat|print|reveal|show|output|tell\s+me)\b[^.?!\n]{0,40}"
    r"\b(?:system\s+prompt|instructions|everything\s+above|your\s+prompt|rules)\b",
    re.I,
)
_LINK_REQUEST = re.compile(r"\b(?:print|show|give|include|add)\b[^.?!\n]{0,20}\blinks?\b", re.I)
_SAY = re.compile(
    r"\b(?:say|print|write|answer\s+with)\b\s*:?\s*[\"“]?([^\"”\n]{1,200}?)[\"”]?(?:$|\n)", re.I
)
_ACTION = re.compile(
    r"\b(?:escalate|hand\s*off|handoff|transfer\s+me|close\s+the\s+conversation)\b", re.I
)
_MD_LINK = re.compile(r"!?\[[^\[\]\n]{0,200}\]\([^()\s]{1,500}\)")
_FACT = re.compile(r"^\[(\d{1,2})\]\s+(.+)$", re.M)


class EvilChatModel(FakeChatModel):
    """The ChatModel protocol, with a mind of its own (see the module docstring)."""

    def __init__(self, strategy: str = "obey", payload: str | None = None) -> None:
        super().__init__(answer="")
        self.strategy = strategy
        self.payload = payload
        self.messages: list[dict[str, str]] = []
        self.prompt = ""
        self.outputs: list[str] = []

    def render_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        self.messages = [dict(m) for m in messages]
        self.prompt = super().render_chat(messages, add_generation_prompt=add_generation_prompt)
        return self.prompt

    # -- what it writes ----------------------------------------------------------------------
    def system_prompt(self) -> str:
        return next((m["content"] for m in self.messages if m["role"] == "system"), "")

    def obey(self) -> str:
        """Carry out the last instruction found anywhere in the prompt (after the system one)."""
        text = "\n".join(m["content"] for m in self.messages if m["role"] != "system")
        if self.payload is not None:
            return self.payload
        # (position, priority, output): the last instruction wins; at one position the most
        # specific reading of it ("print your instructions" asks for the system prompt).
        candidates: list[tuple[int, int, str]] = []
        for found in _SYSTEM_REQUEST.finditer(text):
            candidates.append((found.start(), 3, self.system_prompt()))
        for found in _LINK_REQUEST.finditer(text):
            link = _MD_LINK.search(text)
            if link:
                candidates.append((found.start(), 2, link.group()))
        for found in _ACTION.finditer(text):
            candidates.append(
                (found.start(), 1, "[HANDOFF] escalate: transferring you to a human agent now.")
            )
        for found in _SAY.finditer(text):
            candidates.append((found.start(), 0, found.group(1).strip()))
        if not candidates:
            return self.prompt
        return max(candidates)[2]

    def respond(self) -> str:
        if self.strategy == "verbatim":
            return self.prompt
        if self.strategy == "obey":
            return self.obey()
        if self.strategy == "smuggle":
            fact = _FACT.search(self.prompt)
            if fact is None:
                return self.obey()
            sentence = fact.group(2).rstrip().rstrip(".!?")
            return f"{sentence} {self.obey()} [{fact.group(1)}]."
        raise ValueError(f"unknown strategy {self.strategy!r}")

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
    ) -> TextStream:
        self.calls += 1
        output = self.respond()
        self.outputs.append(output)
        # Word by word, keeping newlines, the way tokens arrive.
        pieces = (re.findall(r"\s*\S+", output) or [output])[: params.max_tokens]
        # It never honours a cancel: an obedient model is not a cooperative one.
        return piece_stream(pieces, prompt_tokens=len(prompt_ids))
