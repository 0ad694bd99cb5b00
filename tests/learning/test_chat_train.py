"""Training the chat model (learning.chat_train): samples are the pipeline's own prompts, a
tiny run learns, a stopped run resumes where it stopped, bad examples are skipped."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import timezone

from support import backends
from support.answers import pipeline
from support.answers.measures import token_f1
from support.answers.types import Fact
from support.conf import get_support_settings
from support.learning import chat_train as ct
from support.learning.specialise import SpecialiseCancelled
from support.llm import CTransformersChatModel, GenerationParams, TextStream, default_model_path
from support.models_learning import Example
from tests.factories import passage
from tests.fakes import FakeChatModel
from tests.llm.conftest import compat_cache, ct_model, model_path  # noqa: F401  (fixtures)
from tests.llm.helpers import chat_ids

pytestmark = pytest.mark.django_db


def _example(question: str, answer: str, history: Sequence[Mapping[str, str]] = ()) -> Example:
    return Example.objects.create(
        question=question,
        answer=answer,
        history=list(history),
        source=Example.Source.AGENT_REPLY,
        state=Example.State.APPROVED,
        reviewed_at=timezone.now(),
        split_key=question[:60],
    )


class RecordingModel:
    """The real model, recording the prompt ids the pipeline streams from."""

    def __init__(self, model: CTransformersChatModel) -> None:
        self._model = model
        self.prompts: list[tuple[int, ...]] = []
        self.context_length = model.context_length
        self.eos_token_ids = model.eos_token_ids

    def tokenize(self, text: str, *, parse_special: bool = True) -> list[int]:
        return self._model.tokenize(text, parse_special=parse_special)

    def detokenize(self, token_ids: Sequence[int]) -> str:
        return self._model.detokenize(token_ids)

    def render_chat(
        self, messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True
    ) -> str:
        return self._model.render_chat(messages, add_generation_prompt=add_generation_prompt)

    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
    ) -> TextStream:
        self.prompts.append(tuple(prompt_ids))
        return self._model.stream(prompt_ids, params, should_stop)


@pytest.fixture
def recording(
    kb: Any,
    ct_model: CTransformersChatModel,  # noqa: F811
) -> Iterator[RecordingModel]:
    model = RecordingModel(ct_model)
    # Training samples are the prompts the model writes from: an approved example's own
    # question would be answered from the answer memory instead, without the model.
    with override_settings(SUPPORT_ANSWER_MEMORY=False):
        backends.set_backend("chat_model", model)
        yield model


@pytest.mark.slow
def test_samples_are_the_prompts_the_pipeline_feeds_the_model(recording: RecordingModel) -> None:
    reset = ("How do I reset the router?", "Hold the reset button for 10 seconds [1].")
    examples = [
        _example(*reset),
        _example(
            "And how long does that take?",
            "About 10 seconds, until the light blinks orange [1].",
            history=[{"role": "user", "text": reset[0]}, {"role": "agent", "text": reset[1]}],
        ),
        _example("When are invoices sent?", "On the first day of every month [1]."),
        _example("What is the capital of France?", "Paris."),  # declined: no page on it
    ]
    samples, skipped = ct.chat_samples(examples)  # the served model (the recording one)
    by_id = {s.example_id: s for s in samples}
    answered = 0
    for example in examples:
        recording.prompts.clear()
        question = ct.example_question(example)
        pipeline.answer_compose(question=question.text, history=question.history)
        if not recording.prompts:  # the pipeline did not let the model write
            assert example.pk not in by_id
            continue
        answered += 1
        sample = by_id[example.pk]
        assert sample.prompt_ids == recording.prompts[0]
        eot = recording.tokenize("<|im_end|>")
        assert sample.target_ids == (*recording.tokenize(example.answer, parse_special=False), *eot)
    assert answered == len(samples) >= 3
    assert sum(skipped.values()) == len(examples) - len(samples) >= 1
    assert all(k.startswith("declined:") for k in skipped)


def test_bad_examples_are_skipped_with_a_reason(kb: Any, chat_env: FakeChatModel) -> None:
    good = _example("How do I reset the router?", "Hold the reset button for 10 seconds.")
    examples = [
        good,
        _example("How do I reset the router?", "   "),
        _example("How do I reset the router?", " ".join(["word"] * 200)),
        _example("What is the capital of France?", "Paris."),
    ]
    samples, skipped = ct.chat_samples(examples, model=chat_env)
    assert [s.example_id for s in samples] == [good.pk]
    assert samples[0].target_ids[-1] in chat_env.eos_token_ids
    assert skipped[ct.EMPTY_ANSWER] == 1
    assert skipped[ct.ANSWER_TOO_LONG] == 1
    assert sum(v for k, v in skipped.items() if k.startswith("declined:")) == 1
    # A prompt over the limit is skipped, never cut (a cut prompt is not what the model sees).
    samples, skipped = ct.chat_samples([good], model=chat_env, max_prompt_tokens=5)
    assert samples == []
    assert skipped == {ct.PROMPT_TOO_LONG: 1}


def test_answers_the_check_would_not_keep_are_marked_and_skipped_when_asked(
    kb: Any, chat_env: FakeChatModel
) -> None:
    supported = _example(
        "How do I reset the router?",
        "Hold the reset button on the back for 10 seconds until the light blinks orange.",
    )
    # Fact words recombined into a claim the fact does not make, and words it lacks.
    unsupported = _example(
        "How do I reset the router?",
        "Call our engineers, they will visit you and replace the router tomorrow.",
    )
    asked_back = _example("How do I reset the router?", "Which router model do you have?")
    examples = [supported, unsupported, asked_back]
    samples, skipped = ct.chat_samples(examples, model=chat_env, grounded_only=False)
    marks = {s.example_id: (s.grounded, s.support) for s in samples}
    assert skipped == {}
    assert marks[supported.pk] == (True, 1.0)
    assert marks[unsupported.pk][0] is False and marks[unsupported.pk][1] < 0.75
    assert marks[asked_back.pk][0] is False
    samples, skipped = ct.chat_samples(examples, model=chat_env, grounded_only=True)
    assert [s.example_id for s in samples] == [supported.pk]
    assert skipped == {ct.UNGROUNDED_ANSWER: 2}
    # The setting is the default.
    with override_settings(SUPPORT_CHAT_TRAIN_GROUNDED_ONLY=True):
        assert [s.example_id for s in ct.chat_samples(examples, model=chat_env)[0]] == [
            supported.pk
        ]
    with override_settings(SUPPORT_CHAT_TRAIN_GROUNDED_ONLY=False):
        assert len(ct.chat_samples(examples, model=chat_env)[0]) == 3


def _fact(n: int, text: str) -> Fact:
    return Fact(n, passage(n, text, score=1.0), text, 0.5)


def test_best_fact_is_the_statement_that_agrees_best_with_the_answer() -> None:
    facts = [
        _fact(1, "Refunds go back to the card you paid with."),
        _fact(2, "How long does a refund take to arrive?"),  # a heading: never the target
        _fact(3, "A refund takes up to 5 business days to arrive on your card."),
    ]
    answer = "It takes up to 5 business days for a refund to arrive."
    fact, f1 = ct.best_fact(answer, facts)
    assert fact is facts[2]
    assert f1 == pytest.approx(token_f1(facts[2].text, answer))
    assert f1 > max(token_f1(f.text, answer) for f in facts[:2] if f is not facts[1])
    # Nothing agrees enough: no target (an answer the facts do not hold).
    fact, f1 = ct.best_fact("Please wait, I am checking the refund status of this order.", facts)
    assert fact is None and 0.0 < f1 < ct.MIN_FACT_F1  # one shared word is not agreement


def test_best_fact_target_is_a_prompt_fact_the_check_keeps(
    kb: Any, chat_env: FakeChatModel
) -> None:
    reset = "Hold the reset button on the back for 10 seconds until the light blinks orange."
    paraphrase = _example(
        "How do I reset the router?",
        "Just press and hold the reset button for about 10 seconds, it will blink orange.",
    )
    long_answer = _example(  # too long to learn as an answer, not as its fact
        "How do I reset the router?", " ".join([reset] * 8)
    )
    unrelated = _example("How do I reset the router?", "Which model do you have?")
    examples = [paraphrase, long_answer, unrelated]
    samples, skipped = ct.chat_samples(examples, model=chat_env, target="best_fact")
    assert [s.example_id for s in samples] == [paraphrase.pk, long_answer.pk]
    assert skipped == {ct.NO_AGREEING_FACT: 1}
    eot = samples[0].target_ids[-1]
    sample = samples[0]
    assert sample.target_ids == (*chat_env.tokenize(reset, parse_special=False), eot)
    assert sample.grounded and sample.support == 1.0
    assert sample.answer_f1 == round(token_f1(reset, paraphrase.answer), 4) < 1.0
    # The default target is the answer itself; the setting chooses.
    samples, skipped = ct.chat_samples(examples, model=chat_env)
    assert [s.answer_f1 for s in samples] == [1.0, 1.0]
    assert skipped == {ct.ANSWER_TOO_LONG: 1}
    assert samples[0].target_ids[:-1] == tuple(
        chat_env.tokenize(paraphrase.answer, parse_special=False)
    )
    with override_settings(SUPPORT_CHAT_TRAIN_TARGET="best_fact"):
        assert ct.chat_samples(examples, model=chat_env)[1] == {ct.NO_AGREEING_FACT: 1}
    with pytest.raises(ValueError, match="target"):
        ct.chat_samples(examples, model=chat_env, target="quote")


def test_the_target_setting_is_validated() -> None:
    with (
        override_settings(SUPPORT_CHAT_TRAIN_TARGET="fact"),
        pytest.raises(ImproperlyConfigured, match="SUPPORT_CHAT_TRAIN_TARGET"),
    ):
        get_support_settings()
    with override_settings(SUPPORT_CHAT_TRAIN_TARGET=" Best_Fact "):
        assert get_support_settings().chat_train_target == "best_fact"


def test_config_defaults_come_from_the_settings(tmp_path: Path) -> None:
    with override_settings(SUPPORT_CHAT_TRAIN_EPOCHS=2, SUPPORT_CHAT_TRAIN_BATCH_SIZE=4):
        config = ct.ChatTrainConfig()
        assert config.batch_size == 4 and config.steps is None
        assert config.steps_for(10) == 5  # ceil(2 * 10 / 4)
        assert ct.ChatTrainConfig(batch_size=2).steps_for(10) == 10
        assert ct.ChatTrainConfig(steps=3).steps_for(10) == 3
    with override_settings(SUPPORT_CHAT_TRAIN_MAX_STEPS=3):
        assert ct.ChatTrainConfig().steps_for(1000) == 3
    hyper = ct.ChatTrainConfig(threads=1).hyperparameters(8)
    assert hyper == ct.ChatTrainConfig(threads=2).hyperparameters(8)  # threads change nothing
    assert "threads" not in hyper and hyper["steps"] == ct.ChatTrainConfig().steps_for(8)
    config = ct.ChatTrainConfig(max_prompt_tokens=16)
    too_long = ct.ChatSample(None, tuple(range(1, 40)), (5, 2))
    with pytest.raises(ValueError, match="no training sample fits"):
        ct.chat_train([too_long], base_gguf=default_model_path(), workdir=tmp_path, config=config)


# -- real training (tiny) -----------------------------------------------------------------------
ANSWERS = {
    "How do I reset the router?": "Hold the reset button for ten seconds.",
    "How long is the warranty?": "Two years from the date of purchase.",
    "When is support open?": "Monday to Friday, from nine to five.",
    "Can I get a refund?": "Yes, within thirty days of purchase.",
}


@pytest.fixture(scope="module")
def tiny_samples(ct_model: CTransformersChatModel) -> list[ct.ChatSample]:  # noqa: F811
    eot = ct.end_of_turn_id(ct_model)
    return [
        ct.ChatSample(
            None,
            tuple(chat_ids(ct_model, question)),
            (*ct_model.tokenize(answer, parse_special=False), eot),
        )
        for question, answer in ANSWERS.items()
    ]


def _config(**overrides: Any) -> ct.ChatTrainConfig:
    values: dict[str, Any] = {
        "steps": 3,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "threads": 1,
        "checkpoint_every": 100,  # only when stopped and at the end
    }
    values.update(overrides)
    return ct.ChatTrainConfig(**values)


@pytest.mark.slow
def test_a_tiny_run_lowers_the_training_loss(
    tiny_samples: list[ct.ChatSample], torch_chat: Any, tmp_path: Path
) -> None:
    steps: list[tuple[int, int]] = []
    # From the file itself (the production path), not the session's preloaded model.
    result = ct.chat_train(
        tiny_samples,
        base_gguf=default_model_path(),
        workdir=tmp_path,
        config=_config(),
        on_step=lambda i, n: steps.append((i, n)),
    )
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert result.steps == 3 and len(result.losses) == 3 and result.samples == len(ANSWERS)
    assert not result.model.training
    assert 0 < result.peak_rss_mb < 4096
    before = ct.chat_loss(torch_chat[0], tiny_samples)
    after = ct.chat_loss(result.model, tiny_samples)
    assert after < before - 0.1, (before, after)
    assert (tmp_path / ct.CHECKPOINT).is_file()


@pytest.mark.slow
def test_a_stopped_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(
    tiny_samples: list[ct.ChatSample], torch_chat: Any, tmp_path: Path
) -> None:
    config = _config(steps=4, lora_dropout=0.1)  # dropout: the random state must resume too
    whole = ct.chat_train(
        tiny_samples,
        base_gguf=default_model_path(),
        workdir=tmp_path / "whole",
        config=config,
        preloaded=torch_chat,
    )
    done: list[int] = []
    with pytest.raises(SpecialiseCancelled):
        ct.chat_train(
            tiny_samples,
            base_gguf=default_model_path(),
            workdir=tmp_path / "stopped",
            config=config,
            on_step=lambda i, n: done.append(i),
            should_stop=lambda: len(done) >= 2,
            preloaded=torch_chat,
        )
    assert done == [1, 2]
    resumed = ct.chat_train(
        tiny_samples,
        base_gguf=default_model_path(),
        workdir=tmp_path / "stopped",
        config=config,
        on_step=lambda i, n: done.append(i),
        preloaded=torch_chat,
    )
    assert resumed.resumed_from == 2 and done == [1, 2, 3, 4]
    assert resumed.losses == pytest.approx(whole.losses, abs=1e-5)
    # Same batches, same dropout masks (the random state is in the checkpoint), same threads.
    theirs = dict(whole.model.named_parameters())
    for name, weight in resumed.model.named_parameters():
        assert torch.allclose(weight, theirs[name], atol=1e-6), name
    # The session's base model was copied, never changed.
    base = dict(torch_chat[0].named_parameters())
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(base[name], theirs[name])
    # Other hyperparameters: the checkpoint is not theirs, the run starts over.
    other = ct.chat_train(
        tiny_samples,
        base_gguf=default_model_path(),
        workdir=tmp_path / "stopped",
        config=_config(steps=1, learning_rate=5e-4),
        preloaded=torch_chat,
    )
    assert other.resumed_from == 0 and other.steps == 1
