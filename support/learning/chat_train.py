"""Training the chat model on approved examples (issue 15 item 1; docs/learning.md).

`chat_samples` turns each approved example into the prompt the answer pipeline would feed the
model for that question at answer time: the same retrieval (`answers.retrieve`), the same
decision and facts (`answers.decide`), the same history, question and chat template
(`answers.prompt.prompt_build`, with the room the pipeline leaves for the answer). The
approved answer's tokens plus the end-of-turn token are the target. An example the pipeline
would not let the model answer (declined or quoted), or that does not fit, is skipped and
counted by reason: training on a prompt the model never sees teaches it nothing it uses.
With target "best_fact" (SUPPORT_CHAT_TRAIN_TARGET) the target is instead the prompt's fact
sentence that agrees best with the approved answer (token F1, answers.measures): text the
pipeline's groundedness check keeps by construction, so the model learns which fact answers.

`chat_train` trains LoRA adapters (peft) on the model read from the GGUF file
(`chat_torch.load_torch_chat_model`). The loss is the cross-entropy of the target tokens only,
and the vocabulary projection (49k columns, most of a step's cost when done everywhere) is
computed only at those positions: the transformer runs to its hidden states, the positions
that predict a target token are gathered, and only they go through `lm_head`. Batches follow
one seeded order; a checkpoint (adapters, optimizer, step, random state, under a hash of the
samples, the base file and the settings that change the result) is written atomically every
`checkpoint_every` steps and when `should_stop()` asks to stop, so a second call with the same
work directory continues from it, and gives the adapters an uninterrupted run would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..answers.decide import decide
from ..answers.generate import answer_max_tokens
from ..answers.grounding import grounding_check
from ..answers.measures import token_f1
from ..answers.prompt import prompt_build
from ..answers.retrieve import retrieve
from ..answers.types import Fact, Question, Route, Turn
from ..answers.words import content_support, strip_citations
from ..conf import get_support_settings
from ..llm import ChatModel
from ..llm.errors import PromptTooLongError
from .chat_torch import load_torch_chat_model

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from ..models_learning import Example

logger = logging.getLogger(__name__)

CHECKPOINT: Final = "checkpoint.pt"
SEED: Final = 13
# Gradient norm clip: a few long answers in a small batch must not blow the adapters up.
MAX_GRAD_NORM: Final = 1.0
# The learning rate falls linearly to this share of its value by the last step.
FINAL_LR_SHARE: Final = 0.1

# Skip reasons (chat_samples' counts).
EMPTY_ANSWER: Final = "empty_answer"
PROMPT_TOO_LONG: Final = "prompt_too_long"
ANSWER_TOO_LONG: Final = "answer_too_long"
# The pipeline's groundedness check would not keep the approved answer as an answer to its
# own prompt (SUPPORT_CHAT_TRAIN_GROUNDED_ONLY): learning it teaches the model to write what the
# check then replaces with a quote.
UNGROUNDED_ANSWER: Final = "ungrounded_answer"
# Target "best_fact": no statement among the prompt's facts reaches MIN_FACT_F1 token F1 with
# the approved answer (a question back, another page, an answer the facts do not hold).
NO_AGREEING_FACT: Final = "no_agreeing_fact"
MIN_FACT_F1: Final = 0.1  # as the fact ranker's labels (learning.fact_train)
# What a sample teaches the model to write (SUPPORT_CHAT_TRAIN_TARGET).
TARGET_ANSWER: Final = "answer"
TARGET_BEST_FACT: Final = "best_fact"
TARGETS: Final = (TARGET_ANSWER, TARGET_BEST_FACT)
# "declined:<reason>" / "quoted:<reason>": the pipeline would not let the model write.


@dataclass(frozen=True, slots=True)
class ChatSample:
    example_id: int | None
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]  # the answer's tokens, then end-of-turn
    # The pipeline's groundedness check on the approved answer against the prompt's facts
    # (answers.grounding.grounding_check, as answers.check runs it on a generation), and the
    # answer's content-word support in those facts.
    grounded: bool = True
    support: float = 1.0
    # Token F1 of the target's text to the approved answer (1.0 when the target is the answer).
    answer_f1: float = 1.0


def best_fact(answer: str, facts: Sequence[Fact]) -> tuple[Fact | None, float]:
    """The statement among `facts` whose text agrees best with `answer` (token F1; the first on
    a tie), or None below MIN_FACT_F1. Questions (help pages' headings) are left out, as a
    quote leaves them out (answers.citations.extractive_answer)."""
    best: Fact | None = None
    score = 0.0
    for fact in facts:
        if fact.text.rstrip().endswith("?"):
            continue
        f1 = token_f1(fact.text, answer)
        if f1 > score:
            best, score = fact, f1
    return (best, score) if score >= MIN_FACT_F1 else (None, score)


def example_question(example: Example) -> Question:
    """The pipeline's input for an example: its question and the turns before it (an example's
    "user" turns are the customer's, as in bench/answers.py)."""
    turns = tuple(
        Turn("customer" if t.get("role") == "user" else str(t.get("role") or "agent"), text)
        for t in example.history or ()
        if isinstance(t, dict) and (text := str(t.get("text") or "")).strip()
    )
    return Question(example.question, turns)


def end_of_turn_id(model: ChatModel) -> int:
    """The token the chat template closes an assistant turn with (<|im_end|> for SmolLM2)."""
    marker = "\u2063answer\u2063"
    text = model.render_chat(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}],
        add_generation_prompt=False,
    )
    after = text[text.index(marker) + len(marker) :]
    for token in model.tokenize(after):
        if token in model.eos_token_ids:
            return token
    return min(model.eos_token_ids)


def chat_samples(
    examples: Sequence[Example],
    *,
    model: ChatModel | None = None,
    max_prompt_tokens: int | None = None,
    max_target_tokens: int | None = None,
    grounded_only: bool | None = None,
    target: str | None = None,
) -> tuple[list[ChatSample], dict[str, int]]:
    """Each example's prompt exactly as the answer pipeline builds it at answer time, with its
    answer as the target; the skipped ones counted by reason (needs the published index).
    `grounded_only` (default SUPPORT_CHAT_TRAIN_GROUNDED_ONLY) also skips an answer the
    pipeline's groundedness check would not keep for that prompt. `target` (default
    SUPPORT_CHAT_TRAIN_TARGET): "answer", or "best_fact" (best_fact: the prompt's fact that
    agrees best with the answer; none from MIN_FACT_F1 up is skipped as no_agreeing_fact)."""
    from ..backends import get_chat_model

    conf = get_support_settings()
    target_kind = conf.chat_train_target if target is None else target
    if target_kind not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target_kind!r}")
    model = model or get_chat_model()
    max_prompt = max_prompt_tokens or conf.chat_train_max_prompt_tokens
    max_new = answer_max_tokens(conf.max_answer_tokens)
    max_target = min(max_target_tokens or conf.chat_train_max_target_tokens, max_new)
    only_grounded = conf.chat_train_grounded_only if grounded_only is None else grounded_only
    eot = end_of_turn_id(model)
    samples: list[ChatSample] = []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for example in examples:
        answer = (example.answer or "").strip()
        if not answer or not example.question.strip():
            skip(EMPTY_ANSWER)
            continue
        # The end-of-turn token is the target's last; the model may write max_new tokens.
        target_ids = model.tokenize(answer, parse_special=False)
        if target_kind == TARGET_ANSWER and (
            len(target_ids) > max_target or len(target_ids) + 1 > max_new
        ):
            skip(ANSWER_TOO_LONG)
            continue
        asked = example_question(example)
        decision = decide(
            asked, retrieve(asked), min_confidence=conf.retrieval_min_confidence, generate=True
        )
        if decision.route is not Route.GENERATE:
            reason = decision.reason.value if decision.reason is not None else "none"
            skip(f"{'declined' if decision.route is Route.DECLINE else 'quoted'}:{reason}")
            continue
        try:
            prompt = prompt_build(
                question=asked.text,
                facts=decision.facts,
                history=asked.history,
                model=model,
                max_new_tokens=max_new,
            )
        except PromptTooLongError:
            skip(PROMPT_TOO_LONG)
            continue
        if len(prompt.token_ids) > max_prompt:
            skip(PROMPT_TOO_LONG)
            continue
        text, agreement = answer, 1.0
        if target_kind == TARGET_BEST_FACT:
            fact, agreement = best_fact(answer, prompt.facts)
            if fact is None:
                skip(NO_AGREEING_FACT)
                continue
            text = fact.text.strip()
            target_ids = model.tokenize(text, parse_special=False)
            if len(target_ids) > max_target or len(target_ids) + 1 > max_new:
                skip(ANSWER_TOO_LONG)
                continue
        grounding = grounding_check(text, prompt.facts, asked.text)
        if only_grounded and not grounding.grounded:
            skip(UNGROUNDED_ANSWER)
            continue
        support = content_support(strip_citations(text), [f.text for f in prompt.facts])
        samples.append(
            ChatSample(
                example.pk,
                prompt.token_ids,
                (*target_ids, eot),
                grounding.grounded,
                round(support, 4),
                round(agreement, 4),
            )
        )
    return samples, skipped


# -- training -----------------------------------------------------------------------------------
def _setting(name: str) -> Any:
    return field(default_factory=lambda: getattr(get_support_settings(), name))


@dataclass(frozen=True)
class ChatTrainConfig:
    """Hyperparameters of one run; unset ones come from the SUPPORT_CHAT_TRAIN_* settings."""

    # None: `epochs` passes over the samples in batches, at most `max_steps` (steps_for).
    steps: int | None = None
    batch_size: int = _setting("chat_train_batch_size")
    learning_rate: float = _setting("chat_train_learning_rate")
    lora_r: int = _setting("chat_train_lora_r")
    lora_alpha: int = _setting("chat_train_lora_alpha")
    lora_dropout: float = _setting("chat_train_lora_dropout")
    target_modules: tuple[str, ...] = _setting("chat_train_target_modules")
    max_prompt_tokens: int = _setting("chat_train_max_prompt_tokens")
    max_target_tokens: int = _setting("chat_train_max_target_tokens")
    threads: int = _setting("chat_train_threads")  # 0: torch's default
    seed: int = SEED
    epochs: int = _setting("chat_train_epochs")
    max_steps: int = _setting("chat_train_max_steps")
    checkpoint_every: int = _setting("chat_train_checkpoint_every")

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if self.steps is not None and self.steps < 1:
            raise ValueError("steps must be at least 1")
        if self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("batch_size and checkpoint_every must be at least 1")

    def steps_for(self, samples: int) -> int:
        """The run's steps for `samples` training samples."""
        if self.steps is not None:
            return self.steps
        return min(self.max_steps, max(1, math.ceil(self.epochs * samples / self.batch_size)))

    def hyperparameters(self, samples: int) -> dict[str, Any]:
        """What changes the trained weights (threads and checkpoint spacing do not)."""
        values = asdict(self)
        for name in ("threads", "checkpoint_every", "epochs", "max_steps"):
            values.pop(name)
        values["steps"] = self.steps_for(samples)
        values["target_modules"] = list(self.target_modules)
        return values


@dataclass
class ChatTrainResult:
    model: PreTrainedModel  # adapters merged, eval mode
    tokenizer: PreTrainedTokenizerBase
    steps: int
    seconds: float  # training time over every call of the run (resumed ones included)
    peak_rss_mb: float  # the process's peak resident memory
    losses: list[float]  # per step
    hyperparameters: dict[str, Any]
    samples: int
    resumed_from: int = 0  # the checkpoint's step this call started from
    skipped: dict[str, int] = field(default_factory=dict)  # samples over the config's limits


def peak_rss_mb() -> float:
    """The process's peak resident set so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if os.uname().sysname == "Darwin" else peak / 1024


def _fingerprint(samples: Sequence[ChatSample], base_gguf: Path, config: ChatTrainConfig) -> str:
    h = hashlib.sha256()
    stat = base_gguf.stat()
    settings = config.hyperparameters(len(samples))
    h.update(json.dumps([base_gguf.name, stat.st_size, settings]).encode())
    for s in samples:
        h.update(json.dumps([s.prompt_ids, s.target_ids]).encode())
    return h.hexdigest()


def _batches(n: int, steps: int, config: ChatTrainConfig) -> list[list[int]]:
    """Sample indices per step: seeded shuffled passes, one after the other."""
    rng = random.Random(config.seed)  # noqa: S311  (a training order, not a secret)
    order: list[int] = []
    while len(order) < steps * config.batch_size:
        block = list(range(n))
        rng.shuffle(block)
        order.extend(block)
    return [order[i * config.batch_size : (i + 1) * config.batch_size] for i in range(steps)]


def _fits(sample: ChatSample, config: ChatTrainConfig) -> bool:
    return (
        0 < len(sample.prompt_ids) <= config.max_prompt_tokens
        and 1 < len(sample.target_ids) <= config.max_target_tokens + 1
    )


def _batch_tensors(
    batch: Sequence[ChatSample],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, flat positions that predict a target token, their labels),
    right-padded: a causal model's real positions never attend to the padding after them."""
    import torch

    # The last target token (end-of-turn) is predicted, never fed.
    sequences = [list(s.prompt_ids) + list(s.target_ids[:-1]) for s in batch]
    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    positions: list[int] = []
    labels: list[int] = []
    for row, (sample, seq) in enumerate(zip(batch, sequences, strict=True)):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
        first = len(sample.prompt_ids) - 1  # the last prompt position predicts target[0]
        positions.extend(row * width + first + k for k in range(len(sample.target_ids)))
        labels.extend(sample.target_ids)
    return ids, mask, torch.tensor(positions), torch.tensor(labels)


def _target_loss(causal_lm: Any, batch: Sequence[ChatSample]) -> torch.Tensor:
    """Mean cross-entropy of the batch's target tokens; lm_head only at their positions."""
    import torch.nn.functional as F

    ids, mask, positions, labels = _batch_tensors(batch)
    hidden = causal_lm.model(input_ids=ids, attention_mask=mask, use_cache=False)
    states = hidden.last_hidden_state.reshape(-1, hidden.last_hidden_state.shape[-1])
    logits = causal_lm.lm_head(states.index_select(0, positions))
    return F.cross_entropy(logits.float(), labels)


def chat_loss(
    model: PreTrainedModel, samples: Sequence[ChatSample], *, batch_size: int = 4
) -> float:
    """Mean target-token cross-entropy of `samples` under `model` (no gradients): how well it
    predicts the approved answers after their prompts."""
    import torch

    total, tokens = 0.0, 0
    was_training = model.training
    model.eval()  # type: ignore[no-untyped-call]
    try:
        with torch.inference_mode():
            for i in range(0, len(samples), batch_size):
                batch = samples[i : i + batch_size]
                n = sum(len(s.target_ids) for s in batch)
                total += float(_target_loss(model, batch)) * n
                tokens += n
    finally:
        if was_training:
            model.train()
    return total / tokens if tokens else float("nan")


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # a run killed while writing leaves the previous checkpoint whole


def _load_checkpoint(path: Path, fingerprint: str) -> dict[str, Any] | None:
    import torch

    if not path.is_file():
        return None
    try:
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # a truncated or foreign file: start over rather than fail the run
        logger.warning("chat training checkpoint %s is unreadable; starting over", path)
        return None
    if state.get("fingerprint") != fingerprint:
        logger.info("chat training checkpoint %s is for other samples or settings", path)
        return None
    return state


def chat_train(
    samples: Sequence[ChatSample],
    *,
    base_gguf: Path,
    workdir: Path,
    config: ChatTrainConfig,
    on_step: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    preloaded: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
) -> ChatTrainResult:
    """LoRA-train the GGUF's model on `samples`; returns the merged model.

    Resumes from the checkpoint in `workdir` written for the same samples, base file and
    hyperparameters. `should_stop()` is asked after every step: it saves a checkpoint and
    raises SpecialiseCancelled. `on_step(step, steps)` follows each step. `preloaded` (a model
    and tokenizer already read from `base_gguf`) is copied, never changed: it saves reading the
    file again in one process (tests, benchmarks).
    """
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    from .specialise import SpecialiseCancelled

    started = time.perf_counter()
    base_gguf = Path(base_gguf)
    usable = [s for s in samples if _fits(s, config)]
    skipped = {"over_limits": len(samples) - len(usable)} if len(usable) < len(samples) else {}
    if not usable:
        raise ValueError("no training sample fits the configured prompt and answer limits")
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = workdir / CHECKPOINT
    fingerprint = _fingerprint(usable, base_gguf, config)
    steps = config.steps_for(len(usable))
    hyperparameters = config.hyperparameters(len(usable))
    previous_threads = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    try:
        if preloaded is not None:
            model, tokenizer = copy.deepcopy(preloaded[0]), preloaded[1]
        else:
            model, tokenizer = load_torch_chat_model(base_gguf)
        torch.manual_seed(config.seed)
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=list(config.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        peft_model = get_peft_model(model, lora)
        trainable = [p for p in peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
        losses: list[float] = []
        step = 0
        seconds_before = 0.0
        state = _load_checkpoint(checkpoint_path, fingerprint)
        if state is not None:
            peft_model.load_state_dict(state["adapter"], strict=False)
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
            step, losses, seconds_before = state["step"], list(state["losses"]), state["seconds"]
            logger.info("chat training resumes at step %d of %d", step, steps)
        resumed_from = step
        plan = _batches(len(usable), steps, config)
        causal_lm = peft_model.get_base_model()
        peft_model.train()
        train_started = time.perf_counter()

        def checkpoint() -> None:
            adapter = {k: v for k, v in peft_model.state_dict().items() if "lora_" in k}
            _save_checkpoint(
                checkpoint_path,
                {
                    "fingerprint": fingerprint,
                    "step": step,
                    "adapter": adapter,
                    "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state(),
                    "losses": losses,
                    "seconds": seconds_before + time.perf_counter() - train_started,
                    "hyperparameters": hyperparameters,
                },
            )

        while step < steps:
            if should_stop is not None and should_stop():
                checkpoint()
                raise SpecialiseCancelled("chat model training was cancelled")
            progress = step / max(1, steps - 1)
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * (1.0 - (1.0 - FINAL_LR_SHARE) * progress)
            batch = [usable[i] for i in plan[step]]
            tokens = sum(len(s.target_ids) for s in batch)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            # One sample per forward and backward, gradients summed: the memory is one
            # sample's activations (4 samples of ~240 tokens together peaked at 5 GB), no
            # padding is computed, and the loss is still the batch's mean over its tokens.
            for sample in batch:
                share = len(sample.target_ids) / tokens
                loss = _target_loss(causal_lm, [sample])
                (loss * share).backward()  # type: ignore[no-untyped-call]
                step_loss += float(loss.detach()) * share
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            optimizer.step()
            losses.append(step_loss)
            step += 1
            if step % config.checkpoint_every == 0 or step == steps:
                checkpoint()
            if on_step is not None:
                on_step(step, steps)
        seconds = seconds_before + time.perf_counter() - train_started
        merged = peft_model.merge_and_unload()
        merged.eval()
    finally:
        torch.set_num_threads(previous_threads)
    logger.info(
        "chat training: %d samples, %d steps in %.0f s (call %.0f s), peak RSS %.0f MB",
        len(usable),
        steps,
        seconds,
        time.perf_counter() - started,
        peak_rss_mb(),
    )
    return ChatTrainResult(
        model=merged,  # type: ignore[arg-type]
        tokenizer=tokenizer,
        steps=step,
        seconds=seconds,
        peak_rss_mb=peak_rss_mb(),
        losses=losses,
        hyperparameters={**hyperparameters, "samples": len(usable)},
        samples=len(usable),
        resumed_from=resumed_from,
        skipped=skipped,
    )
