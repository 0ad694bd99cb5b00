"""Streaming greedy generation on the default ctransformers backend with the real model."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from support.llm import (
    ChatModel,
    CTransformersChatModel,
    FinishReason,
    GenerationParams,
    GenerationStats,
    PromptTooLongError,
    TextStream,
)
from support.llm.base import PROMPT_CHUNK_TOKENS, _StopMatcher
from support.llm.bias import grounding_logit_bias

from .helpers import chat_ids

pytestmark = pytest.mark.slow

QUESTION = "How do I reset my router?"


def test_model_satisfies_the_protocol(ct_model: CTransformersChatModel) -> None:
    assert isinstance(ct_model, ChatModel)
    assert ct_model.context_length == 2048
    assert ct_model.eos_token_ids == frozenset({0, 2})


def test_streams_several_pieces_and_reports_stats(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    stream = ct_model.stream(ids, GenerationParams(max_tokens=12))
    pieces = list(stream)

    assert len(pieces) > 3
    assert all(pieces)
    stats = stream.stats
    assert stats is not None
    assert stats.prompt_tokens == len(ids)
    assert stats.generated_tokens == len(stats.generated_ids) <= 12
    assert stats.finish_reason in (FinishReason.LENGTH, FinishReason.EOS)
    assert stats.ttft_s is not None and 0 < stats.ttft_s <= stats.total_s
    assert "".join(pieces) == ct_model.detokenize(stats.generated_ids)


def test_max_tokens(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    stream = ct_model.stream(ids, GenerationParams(max_tokens=3))
    stream.text()
    assert stream.stats is not None
    assert stream.stats.generated_tokens == 3
    assert stream.stats.finish_reason == FinishReason.LENGTH

    empty = ct_model.stream(ids, GenerationParams(max_tokens=0))
    assert empty.text() == ""
    assert empty.stats is not None and empty.stats.finish_reason == FinishReason.LENGTH


def test_ends_at_end_of_turn(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, "Say hello.", facts="")
    # A large bias on <|im_end|> makes the model end its turn at once.
    stream = ct_model.stream(ids, GenerationParams(max_tokens=10, logit_bias={2: 100.0}))
    assert stream.text() == ""
    assert stream.stats is not None
    assert stream.stats.finish_reason == FinishReason.EOS
    assert stream.stats.generated_ids == (2,)


def test_stop_sequence_cuts_the_text(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    full = ct_model.stream(ids, GenerationParams(max_tokens=24)).text()
    words = full.split()
    assert len(words) > 4
    stop = f"{words[2]} {words[3]}"  # spans tokens, and likely streaming pieces
    expected = full[: full.index(stop)]

    stream = ct_model.stream(ids, GenerationParams(max_tokens=24, stop=[stop, "never-seen"]))
    pieces = list(stream)

    assert "".join(pieces) == expected
    assert stream.stats is not None and stream.stats.finish_reason == FinishReason.STOP
    assert not any(stop in piece for piece in pieces)


def test_cancel_callback_is_checked_between_tokens(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    assert len(ids) < PROMPT_CHUNK_TOKENS  # one check before the prompt, then one per token
    calls = 0

    def should_stop() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3  # let the prompt and three tokens through

    stream = ct_model.stream(ids, GenerationParams(max_tokens=50), should_stop=should_stop)
    stream.text()
    assert stream.stats is not None
    assert stream.stats.finish_reason == FinishReason.CANCELLED
    assert stream.stats.generated_tokens == 3


def test_cancel_before_start(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    stream = ct_model.stream(ids, GenerationParams(), should_stop=lambda: True)
    assert stream.text() == ""
    assert stream.stats is not None
    assert stream.stats.finish_reason == FinishReason.CANCELLED
    assert stream.stats.generated_tokens == 0


def test_deadline(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, "Tell me about routers.")
    stream = ct_model.stream(ids, GenerationParams(max_tokens=500, deadline_s=0.3))
    stream.text()
    assert stream.stats is not None
    assert stream.stats.finish_reason == FinishReason.TIMEOUT
    assert stream.stats.total_s < 5.0  # within one prompt chunk or token of the deadline


def test_closing_the_stream_early_releases_the_model(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    stream = ct_model.stream(ids, GenerationParams(max_tokens=50))
    next(stream)
    stream.close()
    assert stream.stats is not None
    assert stream.stats.finish_reason == FinishReason.CANCELLED
    # The lock was released: another generation runs (a held lock would hang here).
    assert ct_model.stream(ids, GenerationParams(max_tokens=2)).text()


def test_prefix_reuse_skips_evaluation_and_changes_nothing(
    ct_model: CTransformersChatModel,
) -> None:
    params = GenerationParams(max_tokens=16)
    first_ids = chat_ids(ct_model, QUESTION)
    second_ids = chat_ids(ct_model, "How long is the warranty?")
    common = next(i for i, (a, b) in enumerate(zip(first_ids, second_ids, strict=False)) if a != b)
    assert common > 40  # system prompt and facts are shared

    ct_model.reset_cache()
    ct_model.stream(first_ids, params).text()
    before = ct_model.tokens_evaluated
    reused = ct_model.stream(second_ids, params)
    reused_text = reused.text()
    stats = reused.stats
    assert stats is not None

    assert stats.cached_prompt_tokens == common
    assert stats.evaluated_prompt_tokens == len(second_ids) - common
    # Only the new prompt suffix and the generated tokens (but the last) were evaluated.
    assert ct_model.tokens_evaluated - before == (
        len(second_ids) - common + stats.generated_tokens - 1
    )

    ct_model.reset_cache()
    fresh = ct_model.stream(second_ids, params)
    assert fresh.text() == reused_text
    assert fresh.stats is not None and fresh.stats.cached_prompt_tokens == 0

    again = ct_model.stream(second_ids, params)  # identical prompt: all but one token cached
    assert again.text() == reused_text
    assert again.stats is not None and again.stats.evaluated_prompt_tokens == 1


def test_logit_bias_pushes_tokens_up_and_down(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    base = ct_model.stream(ids, GenerationParams(max_tokens=6))
    base.text()
    assert base.stats is not None
    first = base.stats.generated_ids[0]

    banned = ct_model.stream(ids, GenerationParams(max_tokens=6, logit_bias={first: -100.0}))
    banned.text()
    assert banned.stats is not None and banned.stats.generated_ids[0] != first

    scores = ct_model.next_token_scores(ids)
    runner_up = int(np.argsort(scores)[-5])  # the fifth most likely token
    boosted = ct_model.next_token_scores(ids, GenerationParams(logit_bias={runner_up: 4.0}))
    assert boosted[runner_up] == pytest.approx(scores[runner_up] + 4.0, abs=1e-3)
    promoted = ct_model.stream(ids, GenerationParams(max_tokens=1, logit_bias={runner_up: 50.0}))
    promoted.text()
    assert promoted.stats is not None and promoted.stats.generated_ids == (runner_up,)


def test_repetition_penalty_is_llama_cpp_style(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    raw = ct_model.next_token_scores(ids, GenerationParams(repetition_penalty=1.0))
    penalised = ct_model.next_token_scores(
        ids, GenerationParams(repetition_penalty=1.3, repetition_window=64)
    )
    recent = sorted(set(ids[-64:]))
    expected = raw.copy()
    expected[recent] = np.where(raw[recent] > 0, raw[recent] / 1.3, raw[recent] * 1.3)
    np.testing.assert_allclose(penalised, expected, rtol=1e-6)


def test_concurrent_streams_are_serialised(ct_model: CTransformersChatModel) -> None:
    questions = [QUESTION, "When is support open?"]
    params = GenerationParams(max_tokens=8)
    expected = [ct_model.stream(chat_ids(ct_model, q), params).text() for q in questions]
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        results[i] = ct_model.stream(chat_ids(ct_model, questions[i]), params).text()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [results[0], results[1]] == expected


def test_prompt_too_long_is_rejected_before_any_work(ct_model: CTransformersChatModel) -> None:
    ids = ct_model.tokenize("word " * 2100)
    with pytest.raises(PromptTooLongError):
        ct_model.stream(ids, GenerationParams())


def test_invalid_token_ids_are_rejected(ct_model: CTransformersChatModel) -> None:
    with pytest.raises(ValueError, match="prompt token ids"):
        ct_model.stream([1, 10**6], GenerationParams())
    with pytest.raises(ValueError, match="logit_bias"):
        ct_model.stream([1, 2], GenerationParams(logit_bias={-1: 1.0}))
    with pytest.raises(ValueError, match="empty"):
        ct_model.stream([], GenerationParams())


@pytest.mark.parametrize(
    ("chunks", "stops", "emitted", "hit"),
    [
        (["Hello wor", "ld. Bye"], ["world"], ["Hello ", ""], True),
        (["abc", "def"], ["xyz"], ["abc", "def"], False),
        (["The an", "swer: 42", "\n\nQ:"], ["\n\nQ:"], ["The an", "swer: 42", ""], True),
        (["a<", "|im", "_end|>b"], ["<|im_end|>"], ["a", "", ""], True),
        (["ab", "x"], ["abc"], ["", "abx"], False),
    ],
)
def test_stop_matcher_holds_back_possible_prefixes(
    chunks: list[str], stops: list[str], emitted: list[str], hit: bool
) -> None:
    matcher = _StopMatcher(stops)
    outputs = []
    found = False
    for chunk in chunks:
        text, found = matcher.feed(chunk)
        outputs.append(text)
        if found:
            break
    assert outputs == emitted
    assert found is hit


def test_queued_request_honours_its_deadline_and_cancel(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    with ct_model.stream(ids, GenerationParams(max_tokens=50)) as busy:
        next(busy)  # holds the model's lock until closed
        queued = ct_model.stream(ids, GenerationParams(deadline_s=0.2))
        assert queued.text() == ""
        assert queued.stats is not None
        assert queued.stats.finish_reason == FinishReason.TIMEOUT
        assert queued.stats.total_s < 1.0

        cancelled = ct_model.stream(ids, GenerationParams(), should_stop=lambda: True)
        assert cancelled.text() == ""
        assert cancelled.stats is not None
        assert cancelled.stats.finish_reason == FinishReason.CANCELLED
    assert busy.stats is not None and busy.stats.finish_reason == FinishReason.CANCELLED


def test_penalty_can_spare_prompt_tokens(ct_model: CTransformersChatModel) -> None:
    ids = chat_ids(ct_model, QUESTION)
    raw = ct_model.next_token_scores(ids, GenerationParams(repetition_penalty=1.0))
    spared = ct_model.next_token_scores(
        ids, GenerationParams(repetition_penalty=1.3, penalize_prompt=False)
    )
    np.testing.assert_array_equal(raw, spared)  # nothing generated yet, nothing penalised


def test_grounding_bias_steers_towards_passage_tokens(ct_model: CTransformersChatModel) -> None:
    passages = [
        "To reset the router, hold the button on its back for 10 seconds.",
        "The warranty lasts two years from the date of purchase.",
    ]
    bias = grounding_logit_bias(ct_model, passages)
    assert set(ct_model.tokenize(passages[0])) <= set(bias)
    assert ct_model.eos_token_ids <= set(bias)
    assert set(bias.values()) == {4.0}

    ids = chat_ids(ct_model, QUESTION)

    def passage_share(params: GenerationParams) -> float:
        stream = ct_model.stream(ids, params)
        stream.text()
        assert stream.stats is not None
        generated = stream.stats.generated_ids
        return sum(t in bias for t in generated) / len(generated)

    plain = passage_share(GenerationParams(max_tokens=24))
    grounded = passage_share(GenerationParams(max_tokens=24, logit_bias=bias))
    assert grounded > plain + 0.2


def test_text_stream_from_pieces_for_fakes() -> None:
    stats = GenerationStats(
        prompt_tokens=3,
        cached_prompt_tokens=0,
        generated_tokens=2,
        ttft_s=0.01,
        total_s=0.02,
        finish_reason=FinishReason.EOS,
    )
    stream = TextStream.from_pieces(["Hel", "lo"], stats)
    assert stream.stats is None
    assert stream.text() == "Hello"
    assert stream.stats == stats
