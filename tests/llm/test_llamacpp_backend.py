"""llama-cpp-python backend: same tokenizer, same decoding loop, same greedy text."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from support.llm import (
    BackendUnavailableError,
    CTransformersChatModel,
    GenerationParams,
    LlamaCppChatModel,
)

from .helpers import chat_ids
from .test_tokenizer import ROUND_TRIP_TEXTS

pytestmark = pytest.mark.slow

# The two backends run different llama.cpp generations (2023 vs current) whose kernels
# round differently: logits differ by up to ~0.6, so greedy choices between tokens whose
# scores are closer than this may legitimately differ.
NEAR_TIE = 0.5

QUESTIONS = [
    "How do I reset my router?",
    "When is support open?",
    "What does the blinking red light mean?",
    "How long is the warranty?",
]


def test_missing_llama_cpp_gives_a_clear_error(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # makes `import llama_cpp` fail
    with pytest.raises(BackendUnavailableError, match="llama-cpp-python is not installed"):
        LlamaCppChatModel(model_path)


@pytest.fixture(scope="module")
def lc_model(model_path: Path) -> Iterator[LlamaCppChatModel]:
    pytest.importorskip("llama_cpp")
    yield LlamaCppChatModel(model_path, context_length=2048, threads=1)


@pytest.mark.parametrize("text", [*ROUND_TRIP_TEXTS, "<|im_start|>user\nHi<|im_end|>\n"])
def test_our_tokenizer_matches_llama_cpp(lc_model: LlamaCppChatModel, text: str) -> None:
    native = lc_model.llama.tokenize(text.encode(), add_bos=False, special=True)
    assert lc_model.tokenize(text) == native


def test_prompt_logits_agree(lc_model: LlamaCppChatModel, ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTIONS[0])
    raw = GenerationParams(repetition_penalty=1.0)
    ours = ct_model.next_token_scores(ids, raw)
    theirs = lc_model.next_token_scores(ids, raw)
    assert int(np.argmax(ours)) == int(np.argmax(theirs))
    assert np.corrcoef(ours, theirs)[0, 1] > 0.995
    assert float(np.abs(ours - theirs).max()) < 2 * NEAR_TIE + 0.5


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_same_greedy_text_as_ctransformers(
    lc_model: LlamaCppChatModel, ct_model: CTransformersChatModel, penalty: float
) -> None:
    params = GenerationParams(max_tokens=20, repetition_penalty=penalty)
    identical = 0
    for question in QUESTIONS:
        ids = chat_ids(ct_model, question)
        ours = ct_model.stream(ids, params)
        theirs = lc_model.stream(ids, params)
        our_text, their_text = ours.text(), theirs.text()
        assert ours.stats is not None and theirs.stats is not None
        a, b = ours.stats.generated_ids, theirs.stats.generated_ids
        if our_text == their_text:
            identical += 1
            continue
        # Where they part, both backends must have seen a near tie between the two tokens.
        k = next(i for i in range(min(len(a), len(b))) if a[i] != b[i])
        context = ids + list(a[:k])
        for model in (ct_model, lc_model):
            scores = model.next_token_scores(context, params)
            assert abs(float(scores[a[k]] - scores[b[k]])) < NEAR_TIE, (question, k)
    assert identical >= 1


def test_prefix_reuse_gives_the_fresh_result(lc_model: LlamaCppChatModel) -> None:
    params = GenerationParams(max_tokens=12)
    lc_model.stream(chat_ids(lc_model, QUESTIONS[0]), params).text()
    second = chat_ids(lc_model, QUESTIONS[1])
    reused = lc_model.stream(second, params)
    reused_text = reused.text()
    assert reused.stats is not None and reused.stats.cached_prompt_tokens > 40

    lc_model.reset_cache()
    fresh = lc_model.stream(second, params)
    assert fresh.text() == reused_text
    assert fresh.stats is not None and fresh.stats.cached_prompt_tokens == 0
