"""Answer generation: focused prompt, grounded decoding, a hard groundedness gate, citations.

Design (measured on doc2dial support questions with SmolLM2-135M, see docs/benchmarks.md):
the model never sees whole chunks. The few sentences of the top passages most similar to the
question go into the user turn, numbered by passage; decoding is greedy with a logit bias
towards the tokens of those sentences and a repetition penalty. After generation every answer
sentence is checked against the facts (content-word support and embedding similarity); an
answer that fails is replaced by the best facts quoted verbatim (extractive), and no answer is
generated at all when retrieval confidence is too low.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .backends import get_chat_model, get_embedder
from .conf import get_support_settings
from .ingest.chunking import sentences as split_sentences
from .llm import FinishReason, GenerationParams
from .llm.errors import PromptTooLongError
from .retrieval import Passage, SearchResult, passages_search

PROMPT_VERSION = "answer_v1"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

MAX_PASSAGES = 3
MAX_FACTS = 3
HISTORY_TURNS = 6
FACT_BIAS = 4.0
REPETITION_PENALTY = 1.3
# A generated sentence is grounded when most of its content words occur in the facts, or it
# says nearly the same as one fact sentence.
SENTENCE_SUPPORT_MIN = 0.7
SENTENCE_SIMILARITY_MIN = 0.75
ANSWER_SUPPORT_MIN = 0.8

DECLINE_TEXT = (
    "I'm not sure about that, and I'd rather not guess. Would you like me to connect you "
    "with a person? Just press “Talk to a person”."
)

# Chat-template control tokens must never come from untrusted text (documents, customers).
_SPECIAL = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|\[/?INST\]", re.IGNORECASE)
_CITATION = re.compile(r"\s*\[(\d{1,2})\]")
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*", re.UNICODE)

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves also may might must shall can't cannot don't won't it's i'm you're we're they're
    there's that's let's please yes thank thanks sure okay ok get got like just one""".split()  # noqa: SIM905
)


@dataclass(frozen=True, slots=True)
class Fact:
    n: int  # the passage number the answer cites: [n]
    passage: Passage
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # customer / bot / agent
    text: str


@dataclass(frozen=True, slots=True)
class Prompt:
    token_ids: tuple[int, ...]
    facts: tuple[Fact, ...]
    turns_used: int
    version: str = PROMPT_VERSION


@dataclass(frozen=True, slots=True)
class Grounding:
    grounded: bool
    support: float  # share of answer content words found in the facts' passages
    sentence_scores: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Draft:
    text: str
    action: str  # answer / extractive / escalate
    reason: str
    citations: tuple[dict[str, Any], ...]
    retrieved: tuple[dict[str, Any], ...]
    confidence: float
    answer_confidence: float
    grounded: bool
    prompt_version: str
    timings: dict[str, float] = field(default_factory=dict)
    support: float | None = None
    cancelled: bool = False


# --- text helpers -----------------------------------------------------------------------------
def clean_untrusted(text: str) -> str:
    return _SPECIAL.sub(" ", text).replace("\x00", "")


def content_words(text: str) -> list[str]:
    return [w for w in (m.group().lower() for m in _WORD.finditer(text)) if w not in STOPWORDS]


def content_support(answer: str, sources: Sequence[str]) -> float:
    """Share of the answer's content words that occur in the sources (1.0 when none)."""
    words = content_words(answer)
    if not words:
        return 1.0
    vocab = {w for s in sources for w in content_words(s)}
    return sum(w in vocab for w in words) / len(words)


@cache
def _template() -> tuple[str, str]:
    system, user = (PROMPTS_DIR / f"{PROMPT_VERSION}.txt").read_text().split("\n---\n", 1)
    return system.strip(), user.strip()


# --- selection --------------------------------------------------------------------------------
def facts_select(*, question: str, passages: Sequence[Passage], k: int = MAX_FACTS) -> list[Fact]:
    """The k sentences of the top passages most similar to the question (embedding + words)."""
    candidates: list[tuple[int, Passage, str]] = []
    for n, passage in enumerate(passages[:MAX_PASSAGES], 1):
        for sentence in split_sentences(passage.text):
            sentence = " ".join(sentence.split())
            if len(sentence) >= 12:
                candidates.append((n, passage, sentence))
    if not candidates:
        return []
    embedder = get_embedder()
    vectors = embedder.encode([question] + [c[2] for c in candidates])
    sims = vectors[1:] @ vectors[0]
    q_words = set(content_words(question))
    scores = []
    for (n, _, sentence), sim in zip(candidates, sims, strict=True):
        overlap = len(q_words & set(content_words(sentence))) / (len(q_words) or 1)
        # Earlier passages are more relevant overall: a small prior by passage rank.
        scores.append(float(sim) + 0.15 * overlap - 0.03 * (n - 1))
    order = np.argsort(scores)[::-1][:k]
    chosen = sorted(order.tolist(), key=lambda i: (candidates[i][0], i))
    return [Fact(candidates[i][0], candidates[i][1], candidates[i][2], scores[i]) for i in chosen]


# --- prompt -----------------------------------------------------------------------------------
def prompt_build(
    *,
    question: str,
    facts: Sequence[Fact],
    history: Sequence[Turn],
    model: Any,
    max_new_tokens: int,
) -> Prompt:
    """Render the model's own chat template; fit the context by dropping the least relevant
    fact, then the oldest turns. Untrusted text cannot inject template control tokens."""
    conf = get_support_settings()
    system_t, user_t = _template()
    system = system_t.format(company=conf.company_name, tone=conf.tone)
    budget = model.context_length - max_new_tokens - 8
    facts = list(facts)
    turns = list(history)[-HISTORY_TURNS:]
    while True:
        fact_lines = "\n".join(f"[{f.n}] {clean_untrusted(f.text)}" for f in facts) or "(none)"
        messages = [{"role": "system", "content": system}]
        for turn in turns:
            role = "user" if turn.role == "customer" else "assistant"
            text = clean_untrusted(turn.text)
            messages.append({"role": role, "content": text})
        messages.append(
            {
                "role": "user",
                "content": user_t.format(facts=fact_lines, question=clean_untrusted(question)),
            }
        )
        ids = model.tokenize(model.render_chat(messages))
        if len(ids) <= budget:
            return Prompt(tuple(ids), tuple(facts), len(turns))
        if len(facts) > 1:
            facts.remove(min(facts, key=lambda f: f.score))
        elif turns:
            turns.pop(0)
        else:
            raise PromptTooLongError(len(ids), model.context_length)


def fact_bias(model: Any, facts: Sequence[Fact]) -> dict[int, float]:
    ids: set[int] = set()
    for f in facts:
        ids.update(model.tokenize(f.text, parse_special=False))
        ids.update(model.tokenize(" " + f.text, parse_special=False))
    bias = dict.fromkeys(ids, FACT_BIAS)
    for eos in model.eos_token_ids:
        bias[eos] = FACT_BIAS
    return bias


# --- checking ---------------------------------------------------------------------------------
def grounding_check(answer: str, facts: Sequence[Fact]) -> Grounding:
    """Score each answer sentence against the facts; cheap, no second model call."""
    sources = [f.text for f in facts] + [f.passage.text for f in facts]
    body = _CITATION.sub("", answer).strip()
    sents = [s for s in (" ".join(x.split()) for x in split_sentences(body)) if s]
    if not sents or not facts:
        return Grounding(False, 0.0, ())
    embedder = get_embedder()
    vectors = embedder.encode(sents + [f.text for f in facts])
    sims = vectors[: len(sents)] @ vectors[len(sents) :].T
    scores = []
    for i, sentence in enumerate(sents):
        support = content_support(sentence, sources)
        best = float(sims[i].max())
        scores.append(max(support, best if best >= SENTENCE_SIMILARITY_MIN else 0.0))
    overall = content_support(body, sources)
    grounded = overall >= ANSWER_SUPPORT_MIN and min(scores) >= SENTENCE_SUPPORT_MIN
    return Grounding(grounded, overall, tuple(scores))


def citations_resolve(answer: str, facts: Sequence[Fact]) -> tuple[str, list[dict[str, Any]]]:
    """Keep only [n] markers of passages that were in the prompt; cite the facts' passages."""
    valid = {f.n: f.passage for f in facts}

    def keep(match: re.Match[str]) -> str:
        return match.group(0) if int(match.group(1)) in valid else ""

    text = _CITATION.sub(keep, answer).strip()
    cited = [int(n) for n in re.findall(r"\[(\d{1,2})\]", text)]
    if not cited:  # attribute to the passages the facts came from
        cited = list(dict.fromkeys(f.n for f in facts))
    citations = []
    for n in dict.fromkeys(cited):
        p = valid[n]
        citations.append(
            {
                "n": n,
                "document_id": p.document_id,
                "chunk_id": p.chunk_id,
                "title": p.title,
                "heading": p.heading,
            }
        )
    return text, citations


def extractive_answer(facts: Sequence[Fact]) -> str:
    """The best facts quoted verbatim, cited: always grounded."""
    best = sorted(facts, key=lambda f: f.score, reverse=True)[:2]
    best.sort(key=lambda f: (f.n, facts.index(f)))
    return " ".join(f"{f.text} [{f.n}]" for f in best)


def retrieval_query(question: str, history: Sequence[Turn]) -> str:
    """Follow-up questions lean on the previous customer turn for retrieval."""
    previous = [t.text for t in history if t.role == "customer"][-1:]
    if previous and len(content_words(question)) < 6:
        return f"{previous[0]} {question}"
    return question


# --- the pipeline -----------------------------------------------------------------------------
def answer_compose(
    *,
    question: str,
    history: Sequence[Turn] = (),
    on_delta: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    search: SearchResult | None = None,
    generate: bool = True,
) -> Draft:
    """Retrieve, decide, generate (streaming through on_delta), check and cite one answer."""
    conf = get_support_settings()
    started = time.perf_counter()
    if search is None:
        search = passages_search(query=retrieval_query(question, history), k=5)
    retrieval_ms = (time.perf_counter() - started) * 1000
    retrieved = tuple(p.as_dict() for p in search.passages)
    timings: dict[str, float] = {"retrieval_ms": round(retrieval_ms, 1)}

    def finish(
        text: str,
        action: str,
        reason: str,
        citations: Sequence[dict[str, Any]],
        grounded: bool,
        answer_conf: float,
        support: float | None = None,
        cancelled: bool = False,
    ) -> Draft:
        timings["total_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return Draft(
            text,
            action,
            reason,
            tuple(citations),
            retrieved,
            search.confidence,
            answer_conf,
            grounded,
            PROMPT_VERSION,
            timings,
            support,
            cancelled,
        )

    if not search.passages or search.confidence < conf.retrieval_min_confidence:
        return finish(DECLINE_TEXT, "escalate", "low_confidence", (), False, 0.0)
    facts = facts_select(question=question, passages=search.passages)
    if not facts:
        return finish(DECLINE_TEXT, "escalate", "low_confidence", (), False, 0.0)
    if not generate:
        text, cites = citations_resolve(extractive_answer(facts), facts)
        return finish(text, "extractive", "extractive_only", cites, True, search.confidence)

    model = get_chat_model()
    max_new = conf.max_answer_tokens
    prompt = prompt_build(
        question=question, facts=facts, history=history, model=model, max_new_tokens=max_new
    )
    facts = list(prompt.facts)
    params = GenerationParams(
        max_tokens=max_new,
        stop=("\nQuestion:", "\nFacts:", "<|im_end|>", "\n\n\n"),
        deadline_s=conf.answer_timeout_s,
        repetition_penalty=REPETITION_PENALTY,
        logit_bias=fact_bias(model, facts),
    )
    pieces: list[str] = []
    gen_started = time.perf_counter()
    first: float | None = None
    with model.stream(list(prompt.token_ids), params, should_stop) as stream:
        for piece in stream:
            if first is None:
                first = time.perf_counter()
            pieces.append(piece)
            if on_delta is not None:
                on_delta(piece)
        stats = stream.stats
    timings["ttft_ms"] = round(((first or time.perf_counter()) - gen_started) * 1000, 1)
    timings["generate_ms"] = round((time.perf_counter() - gen_started) * 1000, 1)
    timings["tokens"] = stats.generated_tokens if stats else len(pieces)
    timings["prompt_tokens"] = len(prompt.token_ids)
    if stats is not None and stats.finish_reason is FinishReason.CANCELLED:
        return finish("".join(pieces), "escalate", "cancelled", (), False, 0.0, cancelled=True)

    raw = "".join(pieces).strip()
    grounding = grounding_check(raw, facts)
    if grounding.grounded:
        text, cites = citations_resolve(raw, facts)
        answer_conf = min(search.confidence, grounding.support)
        return finish(text, "answer", "grounded", cites, True, answer_conf, grounding.support)
    text, cites = citations_resolve(extractive_answer(facts), facts)
    return finish(
        text,
        "extractive",
        "ungrounded_generation",
        cites,
        True,
        search.confidence * 0.8,
        grounding.support,
    )
