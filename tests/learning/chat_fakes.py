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

from django.utils import timezone

from support import knowledge
from support.learning.chat_specialise import Tools
from support.learning.grounding import chunk_key
from support.learning.specialise import SpecialiseCancelled
from support.models import Chunk
from support.models_learning import Example, ExampleGrounding

HELP = {
    "delivery": "Parcels are delivered by courier within 3 working days. "
    "The tracking link comes by SMS.",
    "returns": "Unused items can be sent back within 30 days. "
    "Use the prepaid label from your account page.",
    "warranty": "Every device has a two-year warranty covering manufacturing faults. "
    "Water damage is not covered.",
    "hours": "The shop in Leeds is open Monday to Saturday from 9 am to 6 pm. "
    "It is closed on bank holidays.",
    "gift": "Gift cards never expire. They can be spent online or in the shop.",
    "password": "To change your password open Settings, then Security. "
    "Choose Change password there.",
}
# (question, the page, the approved answer: in the page's words, as an agent would answer)
EXAMPLES = [
    (
        "when will my parcel arrive",
        "delivery",
        "Parcels are delivered by courier within 3 working days.",
    ),
    ("can I send a jacket back", "returns", "Unused items can be sent back within 30 days."),
    (
        "is my phone covered if it breaks",
        "warranty",
        "Every device has a two-year warranty covering manufacturing faults.",
    ),
    (
        "what time does the Leeds store open",
        "hours",
        "The shop in Leeds is open Monday to Saturday from 9 am to 6 pm.",
    ),
    ("do vouchers run out", "gift", "Gift cards never expire."),
    (
        "how do I set a new login secret",
        "password",
        "To change your password open Settings, then Security.",
    ),
    ("how does tracking work", "delivery", "The tracking link comes by SMS."),
    ("where is the return label", "returns", "Use the prepaid label from your account page."),
    # held back
    (
        "how long does shipping take",
        "delivery",
        "Parcels are delivered by courier within 3 working days.",
    ),
    (
        "how many days do I have to return something",
        "returns",
        "Unused items can be sent back within 30 days.",
    ),
    ("is water damage covered by the warranty", "warranty", "Water damage is not covered."),
    ("is the Leeds shop open on bank holidays", "hours", "It is closed on bank holidays."),
]
TRAINED = 8


def example_create(n: int, question: str, answer: str, chunk: Chunk, *, held_back: bool) -> Example:
    example = Example.objects.create(
        question=question,
        answer=answer,
        history=[
            {"role": "user", "text": "hello"},
            {"role": "agent", "text": "Hi, how can I help?"},
        ],
        source=Example.Source.IMPORT,
        external_id=f"c-{n}",
        state=Example.State.APPROVED,
        reviewed_at=timezone.now(),
        grounding_method=Example.GroundingMethod.DOCUMENT,
        split_key=f"k{n}",
        held_back=held_back,
    )
    ExampleGrounding.objects.create(
        example=example,
        document=chunk.document,
        chunk=chunk,
        chunk_key=chunk_key(chunk.text),
        chunk_order=chunk.order,
        text=chunk.text,
    )
    return example


def help_desk_create() -> list[Example]:
    """The six help pages ingested and indexed (with whatever embedder is configured), and the
    examples grounded on them: the first TRAINED to train on, the rest held back."""
    for name, text in HELP.items():
        doc = knowledge.document_upload(
            filename=f"{name}.md", data=f"# {name.title()}\n\n{text}\n".encode(), queue=False
        )
        knowledge.document_ingest(document_id=doc.pk, rebuild_index=False)
    knowledge.index_rebuild()
    chunks = {c.document.original_filename: c for c in Chunk.objects.select_related("document")}
    return [
        example_create(n, q, a, chunks[f"{page}.md"], held_back=n >= TRAINED)
        for n, (q, page, a) in enumerate(EXAMPLES)
    ]


def good_answers() -> dict[str, str]:
    """The candidate answers as the agents did."""
    return {q: a for q, _page, a in EXAMPLES}


def shuffled_answers() -> dict[str, str]:
    """Answers shuffled across questions (each question gets the next one's answer)."""
    answers = [a for _q, _p, a in EXAMPLES]
    return {q: answers[(i + 3) % len(answers)] for i, (q, _p, _a) in enumerate(EXAMPLES)}


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
        delay_s: float = 0.02,
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
