"""The prompt: the model's own chat template over the system prompt, the example exchanges,
the last turns and the user turn holding the numbered facts and the question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..conf import get_support_settings
from ..llm import ChatModel, grounding_logit_bias
from ..llm.errors import PromptTooLongError
from .types import Fact, Prompt, Turn
from .words import clean_untrusted

PROMPT_VERSION = "answer_v2"
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
HISTORY_TURNS = 2  # the last exchange (customer + agent/bot)
FACT_BIAS = 4.0


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """prompts/<version>.txt: sections separated by a line "---": the system prompt, the user
    turn (with {facts} and {question}), then optional example exchanges (user, assistant)."""

    system: str
    user: str
    examples: tuple[tuple[str, str], ...] = ()


@cache
def _template(version: str = PROMPT_VERSION) -> PromptTemplate:
    parts = [p.strip() for p in shipped_prompt_text(version).split("\n---\n")]
    examples = tuple(zip(parts[2::2], parts[3::2], strict=True))
    return PromptTemplate(parts[0], parts[1], examples)


@cache
def shipped_prompt_text(version: str = PROMPT_VERSION) -> str:
    return (PROMPTS_DIR / f"{version}.txt").read_text()


def system_prompt() -> str:
    conf = get_support_settings()
    return _template().system.format(company=conf.company_name, tone=conf.tone)


def prompt_build(
    *,
    question: str,
    facts: Sequence[Fact],
    history: Sequence[Turn],
    model: ChatModel,
    max_new_tokens: int,
) -> Prompt:
    """Render the model's own chat template; fit the context by dropping the least relevant
    fact, then the oldest turns. Untrusted text cannot inject template control tokens."""
    system = system_prompt()
    template = _template()
    budget = model.context_length - max_new_tokens - 8
    facts = list(facts)
    turns = [t for t in history if t.text.strip()][-HISTORY_TURNS:]
    while True:
        fact_lines = "\n".join(f"[{f.n}] {f.text}" for f in facts)
        # The system prompt stays first and constant, so its tokens are reused across questions.
        messages = [{"role": "system", "content": system}]
        for example_user, example_answer in template.examples:
            messages.append({"role": "user", "content": example_user})
            messages.append({"role": "assistant", "content": example_answer})
        for turn in turns:
            role = "user" if turn.role == "customer" else "assistant"
            messages.append({"role": role, "content": clean_untrusted(turn.text).strip()})
        messages.append(
            {
                "role": "user",
                "content": template.user.format(
                    facts=fact_lines, question=clean_untrusted(question).strip()
                ),
            }
        )
        ids = model.tokenize(model.render_chat(messages))
        if len(ids) <= budget:
            sources = tuple(m["content"] for m in messages[1:])
            return Prompt(
                tuple(ids), tuple(facts), len(turns), system, PROMPT_VERSION, sources=sources
            )
        if len(facts) > 1:
            facts.remove(min(facts, key=lambda f: f.rank))
        elif turns:
            turns.pop(0)
        else:
            raise PromptTooLongError(len(ids), model.context_length)


def fact_bias(model: ChatModel, facts: Sequence[Fact]) -> dict[int, float]:
    """+FACT_BIAS on every token of the facts (with and without a leading space) and on
    end-of-turn, so the model copies facts and stops rather than inventing."""
    texts = [f.text for f in facts] + [" " + f.text for f in facts]
    return grounding_logit_bias(model, texts, bonus=FACT_BIAS)
