"""The answer pipeline's values: what each stage takes and returns (all frozen)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..retrieval import Passage, SearchResult
from .reasons import AnswerAction, AnswerReason, AnswerSource


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # customer / bot / agent
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    """The pipeline's input: the customer's text and the visible turns before it."""

    text: str
    history: tuple[Turn, ...] = ()


@dataclass(frozen=True, slots=True)
class Fact:
    n: int  # the passage number the answer cites: [n]
    passage: Passage
    text: str
    score: float  # the share of the question's terms it holds (what decide judges)
    # Ranking only: it states what the question asks for (support.answers.intent).
    bonus: float = 0.0
    # The learned fact ranker's pick (support.answers.fact_ranker): quoted before any other.
    chosen: bool = False

    @property
    def rank(self) -> float:
        """What facts are chosen and quoted by: the score and the intent bonus."""
        return self.score + self.bonus


@dataclass(frozen=True, slots=True)
class Prompt:
    token_ids: tuple[int, ...]
    facts: tuple[Fact, ...]
    turns_used: int
    system: str
    version: str
    # Every other text the prompt shows the model (facts, question, turns, examples): what
    # the answer may repeat. Words only the system prompt holds must never reach a customer.
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Grounding:
    grounded: bool  # every sentence is supported
    support: float  # share of the answer's content words found in the facts
    sentence_scores: tuple[tuple[float, float], ...]  # (content-word, word-pair support)
    problem: str | None = None  # the first unsupported sentence's problem ("claim: ..." )


# --- stage results ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Retrieved:
    """retrieve: the passages (from the most confident of the candidate queries)."""

    search: SearchResult


class Route(StrEnum):
    DECLINE = "decline"
    QUOTE = "quote"
    GENERATE = "generate"


@dataclass(frozen=True, slots=True)
class Decision:
    """decide: decline, quote the best fact, or let the model write; with the facts chosen."""

    route: Route
    reason: AnswerReason | None  # None for GENERATE: the check decides
    facts: tuple[Fact, ...]
    top_score: float  # the best fact's share of the question's words
    # decide.dense_fact_score, when a low-confidence decline was weighed against it
    dense_fact: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Generation:
    """generate: what the model wrote (shaped: list marker dropped, cut after the limit)."""

    text: str
    prompt: Prompt
    shown: bool  # some of it was streamed to the customer
    leaked: bool  # it repeated the system prompt (stopped before showing that)
    failed: bool  # a complete sentence failed the support check while streaming
    problem: str | None  # why it failed ("claim: ..." for the fact check)
    cancelled: bool  # the conversation was taken over while it was written
    tokens: int
    cached_prompt_tokens: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """check: keep the model's answer (GROUNDED) or say why not."""

    reason: AnswerReason
    grounding: Grounding | None

    @property
    def accepted(self) -> bool:
        return self.reason is AnswerReason.GROUNDED


@dataclass(frozen=True, slots=True, kw_only=True)
class Recall:
    """recall (answer memory): an approved example's answer for a closely matching question,
    with the fact check of it against the grounding chunk retrieval found."""

    example_id: int
    question: str  # the example's question
    answer: str  # its approved answer
    similarity: float  # dense cosine of the customer's question to the example's
    fact: Fact  # the grounding chunk as retrieved: what the answer is checked against and cited to
    grounding: Grounding

    @property
    def accepted(self) -> bool:
        return self.grounding.grounded


@dataclass(frozen=True, slots=True)
class Draft:
    """The composed answer (cite): what is stored on the bot message and printed by ask."""

    text: str
    action: AnswerAction
    reason: AnswerReason
    citations: tuple[dict[str, Any], ...]
    retrieved: tuple[dict[str, Any], ...]
    confidence: float
    answer_confidence: float
    grounded: bool
    prompt_version: str
    timings: dict[str, float] = field(default_factory=dict)
    support: float | None = None
    cancelled: bool = False
    facts: tuple[Fact, ...] = ()  # what the prompt showed the model (for evaluation)
    generated: str = ""  # the model's raw text, before the check
    # What produced it, stage by stage (support.answers.trace; stored on the bot message).
    trace: dict[str, Any] = field(default_factory=dict)
    # A decline's closest covered topics (suggest.py; recomputed from `retrieved` when shown).
    suggestions: tuple[dict[str, Any], ...] = ()
    source: AnswerSource = AnswerSource.KNOWLEDGE_BASE
    learned_example_id: int | None = None  # the approved example answer memory replied with
