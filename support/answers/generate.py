"""Stage 3, generate: the model writes, streamed as far as the facts support it.

Decoding is greedy with a logit bias towards the facts' tokens and a repetition penalty on
what the model itself wrote; the answer ends after ANSWER_MAX_SENTENCES sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..llm import ChatModel, FinishReason, GenerationParams
from .grounding import Support
from .leaks import LeakGuard
from .prompt import fact_bias, prompt_build
from .stream import AnswerStream
from .timing import Recorder
from .types import Decision, Generation, Question

ANSWER_MAX_TOKENS = 80
ANSWER_MAX_SENTENCES = 2
REPETITION_PENALTY = 1.3
# llama.cpp-style penalties count prompt tokens as seen, which punishes copying the facts.
PENALIZE_PROMPT = False
STOP = ("\n\n", "\nQuestion:", "\nFacts:")
# A text ending a sentence: its stop mark, then closing quotes, brackets or a citation marker.
_FINISHED = re.compile(r"[.!?…][\"'”’)\]]*(?:\s*\[\d{1,2}\])*[\"'”’)]*$")


def answer_max_tokens(configured: int) -> int:
    """The most tokens the model may write for one answer (SUPPORT_MAX_ANSWER_TOKENS, capped):
    the prompt leaves room for them, and training (learning.chat_train) builds prompts alike."""
    return min(configured, ANSWER_MAX_TOKENS)


def generate(
    question: Question,
    decision: Decision,
    *,
    model: ChatModel,
    max_tokens: int,
    deadline_s: float,
    timer: Recorder,
    on_delta: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Generation:
    """Stream the model's answer over the decision's facts through `on_delta`, shown only as
    far as it is supported; stops at a leak of the system prompt or an unsupported sentence."""
    prompt = prompt_build(
        question=question.text,
        facts=decision.facts,
        history=question.history,
        model=model,
        max_new_tokens=max_tokens,
    )
    params = GenerationParams(
        max_tokens=max_tokens,
        stop=STOP,
        deadline_s=deadline_s,
        repetition_penalty=REPETITION_PENALTY,
        penalize_prompt=PENALIZE_PROMPT,
        logit_bias=fact_bias(model, prompt.facts),
    )
    shaped = AnswerStream(
        ANSWER_MAX_SENTENCES, Support([f.text for f in prompt.facts], question.text)
    )
    guard = LeakGuard(prompt.system, sources=prompt.sources)
    leaked = False
    started = timer.now()
    with model.stream(list(prompt.token_ids), params, should_stop) as stream:
        for piece in stream:
            if "ttft_ms" not in timer.values:
                timer.mark("first_token_ms")
                timer.mark("ttft_ms", since=started)
            show = shaped.feed(piece)
            if show:
                timer.first("first_text_ms")
            if guard.leaks(shaped.text):
                leaked = True  # checked before showing the piece: the run is never shown
                break
            if show and on_delta is not None:
                on_delta(show)
            if shaped.done or shaped.failed:
                break  # leaving the block closes the stream: no more tokens are computed
    stats = stream.stats  # set once the stream is closed
    stopped_early = shaped.done or shaped.failed or leaked
    if not stopped_early and (rest := shaped.finish()) and on_delta is not None:
        on_delta(rest)
    if "ttft_ms" not in timer.values:
        timer.mark("ttft_ms", since=started)
    timer.mark("generate_ms", since=started)
    timer.count("tokens", stats.generated_tokens if stats else 0)
    timer.count("prompt_tokens", len(prompt.token_ids))
    timer.count("cached_prompt_tokens", stats.cached_prompt_tokens if stats else 0)
    cancelled = (
        not stopped_early and stats is not None and stats.finish_reason is FinishReason.CANCELLED
    )
    text = shaped.text.strip()
    failed, problem = shaped.failed, shaped.problem
    timed_out = stats is not None and stats.finish_reason is FinishReason.TIMEOUT
    if not stopped_early and timed_out and text and not _FINISHED.search(text):
        # The deadline cut a sentence ("... hold the"): a fragment is no answer, the best fact
        # is quoted instead (on a loaded machine, tests/conversations met this).
        failed, problem = True, "timeout: unfinished sentence"
    return Generation(
        text=text,
        prompt=prompt,
        shown=bool(shaped.shown),
        leaked=leaked,
        failed=failed,
        problem=problem,
        cancelled=cancelled,
        tokens=stats.generated_tokens if stats else 0,
        cached_prompt_tokens=stats.cached_prompt_tokens if stats else 0,
    )
