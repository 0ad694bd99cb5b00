"""Fakes of the chat-model training and export (the issue 15 module contract) for unit tests of
support.learning.chat_specialise: training counts steps with a checkpoint file in its workdir
(so resuming is visible), the "exported GGUF" is a JSON script that tests.fakes.
ScriptFileChatModel answers from. Also used by a subprocess that a test kills mid-training."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support.learning.chat_specialise import Tools
from support.learning.specialise import SpecialiseCancelled


@dataclass(frozen=True)
class Sample:
    example_id: int | None
    prompt_ids: tuple[int, ...]
    target_ids: tuple[int, ...]


@dataclass(frozen=True)
class FakeConfig:
    steps: int = 4
    seed: int = 13


@dataclass
class FakeResult:
    model: dict[str, Any]
    steps: int
    seconds: float = 0.01
    peak_rss_mb: float = 1.0
    losses: list[float] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    samples: int = 0


@dataclass(frozen=True)
class FakeCheck:
    prompts: int
    agreement: float
    exact: int
    ok: bool
    backend: str = "fake"
    detail: list[dict[str, Any]] = field(default_factory=list)


class FakeTools:
    """`answers`: question -> what the trained (candidate) model answers."""

    def __init__(
        self,
        answers: dict[str, str],
        *,
        steps: int = 4,
        step_s: float = 0.0,
        delay_s: float = 0.002,
        check_ok: bool = True,
        on_step: Callable[[int], None] | None = None,
    ) -> None:
        self.answers = answers
        self.steps = steps
        self.step_s = step_s
        self.delay_s = delay_s
        self.check_ok = check_ok
        self.on_step = on_step
        self.resumed_from: int | None = None
        self.exported: list[str] = []
        self.trained = 0

    def samples(
        self, examples: Sequence[Any], *, model: Any = None
    ) -> tuple[list[Sample], dict[str, int]]:
        out = [
            Sample(ex.pk, tuple(model.tokenize(ex.question)), tuple(model.tokenize(ex.answer)))
            for ex in examples
        ]
        return out, {}

    def config(self) -> FakeConfig:
        return FakeConfig(steps=self.steps)

    def train(
        self,
        samples: Sequence[Sample],
        *,
        base_gguf: Path,
        workdir: Path,
        config: FakeConfig,
        on_step: Callable[[int, int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> FakeResult:
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = workdir / "step"
        start = int(checkpoint.read_text()) if checkpoint.is_file() else 0
        self.resumed_from = start
        for step in range(start, config.steps):
            time.sleep(self.step_s)
            checkpoint.write_text(str(step + 1))
            self.trained += 1
            if on_step is not None:
                on_step(step + 1, config.steps)
            if self.on_step is not None:
                self.on_step(step + 1)
            if should_stop is not None and should_stop():
                raise SpecialiseCancelled("cancelled after a checkpoint")
        return FakeResult(
            model={"answers": self.answers, "delay_s": self.delay_s},
            steps=config.steps,
            hyperparameters={"steps": config.steps, "lora_r": 8},
            samples=len(samples),
        )

    def export(
        self,
        model: dict[str, Any],
        *,
        source: Path,
        out: Path,
        qtype: str = "Q8_0",
        metadata: Any = None,
    ) -> Path:
        out.write_text(json.dumps({**model, "qtype": qtype, "metadata": dict(metadata or {})}))
        self.exported.append(qtype)
        return out

    def verify(
        self, model: Any, gguf: Path, prompts: Sequence[Sequence[int]], *, qtype: str, **_: Any
    ) -> FakeCheck:
        n = len(prompts)
        return FakeCheck(n, 1.0 if self.check_ok else 0.3, n if self.check_ok else 0, self.check_ok)

    def tools(self) -> Tools:
        return Tools(
            samples=self.samples,
            config=self.config,
            train=self.train,
            export=self.export,
            verify=self.verify,
        )
