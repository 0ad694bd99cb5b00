"""The torch model read from the shipped GGUF continues prompts as the served backend does."""

from __future__ import annotations

from typing import Any

import pytest

from support.learning.chat_torch import greedy_tokens
from support.llm import CTransformersChatModel, GenerationParams
from tests.llm.conftest import compat_cache, ct_model, model_path  # noqa: F401  (fixtures)
from tests.llm.helpers import chat_ids

QUESTIONS = (
    "How long is the warranty?",
    "When is support open?",
    "What is the capital of France?",
    "Can I get a refund?",
    "Is support open on Sunday?",
    "How do I reset the router?",
)
MAX_NEW = 24


def _served_greedy(model: CTransformersChatModel, ids: list[int]) -> list[int]:
    stream = model.stream(ids, GenerationParams(max_tokens=MAX_NEW, repetition_penalty=1.0))
    stream.text()
    assert stream.stats is not None
    return list(stream.stats.generated_ids)


def _agreeing_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.mark.slow
def test_torch_greedy_tokens_match_the_served_backend(
    torch_chat: Any,
    ct_model: CTransformersChatModel,  # noqa: F811
) -> None:
    model, _ = torch_chat
    exact = 0
    for question in QUESTIONS:
        ids = chat_ids(ct_model, question)
        ours = greedy_tokens(model, ids, max_new_tokens=MAX_NEW, eos_ids=ct_model.eos_token_ids)
        served = _served_greedy(ct_model, ids)
        exact += ours == served
        # The backends quantize activations (Q8) against the Q4_1 weights, torch computes in
        # float32 over the dequantized weights: a near tie may flip, late in an answer.
        assert _agreeing_prefix(ours, served) >= min(len(served), 12), (
            question,
            ct_model.detokenize(ours),
            ct_model.detokenize(served),
        )
    # Measured: 5 of 6 identical; the sixth agrees for 23 of 24 tokens.
    assert exact >= len(QUESTIONS) - 1


@pytest.mark.slow
def test_greedy_tokens_stop_at_an_eos_id(torch_chat: Any) -> None:
    model, tokenizer = torch_chat
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Say hello."}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer.encode(text, add_special_tokens=False)
    free = greedy_tokens(model, ids, max_new_tokens=40, eos_ids=())
    eos = free[len(free) // 2]
    stopped = greedy_tokens(model, ids, max_new_tokens=40, eos_ids={eos})
    assert stopped == free[: free.index(eos) + 1]
    assert greedy_tokens(model, ids, max_new_tokens=0, eos_ids=()) == []
    with pytest.raises(ValueError):
        greedy_tokens(model, [], max_new_tokens=4, eos_ids=())
