"""Answer generation: focused prompt, grounded decoding, a hard groundedness gate, citations.

Design (measured on doc2dial with SmolLM2-135M; numbers in bench/answers.py's results):
the model never sees whole chunks. The few sentences of the top passages most similar to the
question ("facts") go into the user turn, numbered by passage; decoding is greedy with a logit
bias towards the facts' tokens and a repetition penalty on what the model itself wrote, and
stops after a sentence or two. Every answer sentence is then checked against the facts
(content-word support, or near-paraphrase by embedding similarity): unsupported sentences are
dropped, and an answer left with none is replaced by the best fact quoted verbatim
(extractive). No answer is generated when retrieval confidence is too low or no sentence of
the passages is close to the question.
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
from .llm import FinishReason, GenerationParams, grounding_logit_bias
from .llm.errors import PromptTooLongError
from .retrieval import Passage, SearchResult, passages_search

PROMPT_VERSION = "answer_v2"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

# -- tuned on the doc2dial dev half (bench/answers.py); see the module docstring -----------------
MAX_PASSAGES = 3  # facts come from the top passages only
MAX_FACTS = 3
FACT_MIN_CHARS = 12
HISTORY_TURNS = 4  # recent turns (customer and agent/bot) before the question
# A fact is a sentence scored by cosine(question, sentence) + FACT_OVERLAP_WEIGHT * share of
# the question's content words it contains, minus FACT_RANK_PENALTY per passage rank.
FACT_OVERLAP_WEIGHT = 0.15
FACT_RANK_PENALTY = 0.03
# No sentence of the passages is this close to the question: the KB does not answer it.
MIN_FACT_SCORE = 0.5
FACT_BIAS = 4.0
REPETITION_PENALTY = 1.3
# llama.cpp-style penalties count prompt tokens as seen, which punishes copying the facts.
PENALIZE_PROMPT = False
ANSWER_MAX_TOKENS = 80
ANSWER_MAX_SENTENCES = 2
# A generated sentence is grounded when most of its content words occur in the facts, or it
# says nearly the same as one fact sentence.
SENTENCE_SUPPORT_MIN = 0.75
SENTENCE_SIMILARITY_MIN = 0.8
EXTRACTIVE_FACTS = 1

DECLINE_TEXT = (
    "I couldn't find that in our help articles, and I'd rather not guess. "
    "Would you like me to connect you with a person? Just press “Talk to a person”."
)

# Chat-template control tokens must never come from untrusted text (documents, customers).
_SPECIAL = re.compile(r"<\|[^|<>\s]{1,40}\|>|</?s>|\[/?INST\]", re.IGNORECASE)
# Text in a document that addresses the assistant rather than the customer is never a fact.
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|prompts?|rules|above)\b"
    r"|\b(?:system|developer)\s+(?:prompt|message|instructions?)\b"
    r"|\byou\s+are\s+now\b|\b(?:as\s+an?|you\s+are\s+an?)\s+(?:ai|language\s+model|assistant)\b",
    re.IGNORECASE,
)
_CITATION = re.compile(r"\s*\[(\d{1,2})\]")
_ANY_BRACKET_NUMBER = re.compile(r"\s*\[\s*\d*\s*\]")
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[^\s.]{2})[.!?](?:\s*\[\d{1,2}\])?(?=\s)")

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
    system: str
    version: str = PROMPT_VERSION


@dataclass(frozen=True, slots=True)
class Grounding:
    grounded: bool  # every sentence is supported
    support: float  # share of the answer's content words found in the facts
    sentence_scores: tuple[float, ...]
    kept: str  # the answer without its unsupported sentences ("" when none is supported)


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
    facts: tuple[Fact, ...] = ()  # what the prompt showed the model (for evaluation)
    generated: str = ""  # the model's raw text, before the gate


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


def strip_citations(text: str) -> str:
    return " ".join(_ANY_BRACKET_NUMBER.sub("", text).split())


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """prompts/<version>.txt: sections separated by a line "---": the system prompt, the user
    turn (with {facts} and {question}), then optional example exchanges (user, assistant)."""

    system: str
    user: str
    examples: tuple[tuple[str, str], ...] = ()


@cache
def _template(version: str = PROMPT_VERSION) -> PromptTemplate:
    parts = [p.strip() for p in (PROMPTS_DIR / f"{version}.txt").read_text().split("\n---\n")]
    examples = tuple(zip(parts[2::2], parts[3::2], strict=True))
    return PromptTemplate(parts[0], parts[1], examples)


# --- selection --------------------------------------------------------------------------------
def facts_select(*, question: str, passages: Sequence[Passage], k: int = MAX_FACTS) -> list[Fact]:
    """The k sentences of the top passages most similar to the question (embedding + words).

    Sentences that address the assistant (prompt injection) are never facts.
    """
    candidates: list[tuple[int, Passage, str]] = []
    for n, passage in enumerate(passages[:MAX_PASSAGES], 1):
        for sentence in split_sentences(clean_untrusted(passage.text)):
            sentence = " ".join(sentence.split())
            if len(sentence) >= FACT_MIN_CHARS and not _INJECTION.search(sentence):
                candidates.append((n, passage, sentence))
    if not candidates:
        return []
    embedder = get_embedder()
    sims = embedder.encode([c[2] for c in candidates]) @ embedder.encode_query(question)
    q_words = set(content_words(question))
    scores = []
    for (n, _, sentence), sim in zip(candidates, sims, strict=True):
        overlap = len(q_words & set(content_words(sentence))) / (len(q_words) or 1)
        # Earlier passages are more relevant overall: a small prior by passage rank.
        scores.append(float(sim) + FACT_OVERLAP_WEIGHT * overlap - FACT_RANK_PENALTY * (n - 1))
    order = np.argsort(scores)[::-1][:k]
    chosen = sorted(order.tolist(), key=lambda i: (candidates[i][0], i))
    return [Fact(candidates[i][0], candidates[i][1], candidates[i][2], scores[i]) for i in chosen]


# --- prompt -----------------------------------------------------------------------------------
def system_prompt() -> str:
    conf = get_support_settings()
    return _template().system.format(company=conf.company_name, tone=conf.tone)


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
    system = system_prompt()
    template = _template()
    budget = model.context_length - max_new_tokens - 8
    facts = list(facts)
    turns = [t for t in history if t.text.strip()][-HISTORY_TURNS:]
    while True:
        fact_lines = "\n".join(f"[{f.n}] {f.text}" for f in facts)
        # The system prompt stays first and constant, so its tokens are reused across questions.
        messages = [{"role": "system", "content": system}]
        for example_user, example_answer in template.examples:
            messages.append({"role": "user", "content": example_user})
            messages.append({"role": "assistant", "content": example_answer})
        for turn in turns:
            role = "user" if turn.role == "customer" else "assistant"
            messages.append({"role": role, "content": clean_untrusted(turn.text).strip()})
        messages.append(
            {
                "role": "user",
                "content": template.user.format(
                    facts=fact_lines, question=clean_untrusted(question).strip()
                ),
            }
        )
        ids = model.tokenize(model.render_chat(messages))
        if len(ids) <= budget:
            return Prompt(tuple(ids), tuple(facts), len(turns), system)
        if len(facts) > 1:
            facts.remove(min(facts, key=lambda f: f.score))
        elif turns:
            turns.pop(0)
        else:
            raise PromptTooLongError(len(ids), model.context_length)


def fact_bias(model: Any, facts: Sequence[Fact]) -> dict[int, float]:
    """+FACT_BIAS on every token of the facts (with and without a leading space) and on
    end-of-turn, so the model copies facts and stops rather than inventing."""
    texts = [f.text for f in facts] + [" " + f.text for f in facts]
    return grounding_logit_bias(model, texts, bonus=FACT_BIAS)


# --- checking ---------------------------------------------------------------------------------
def _sentences(text: str) -> list[str]:
    return [s for s in (" ".join(x.split()) for x in split_sentences(text)) if s]


def grounding_check(answer: str, facts: Sequence[Fact]) -> Grounding:
    """Score each answer sentence against the facts; cheap, no second model call."""
    sources = [f.text for f in facts]
    sents = _sentences(answer)
    if not sents or not facts:
        return Grounding(False, 0.0, (), "")
    bodies = [strip_citations(s) for s in sents]
    embedder = get_embedder()
    vectors = embedder.encode(bodies + sources)
    sims = vectors[: len(bodies)] @ vectors[len(bodies) :].T
    scores = []
    for i, body in enumerate(bodies):
        if not content_words(body):
            scores.append(0.0)  # nothing to check ("Sure.", "[1]"): never an answer by itself
            continue
        support = content_support(body, sources)
        best = float(sims[i].max())
        scores.append(max(support, best if best >= SENTENCE_SIMILARITY_MIN else 0.0))
    kept = " ".join(
        s for s, score in zip(sents, scores, strict=True) if score >= SENTENCE_SUPPORT_MIN
    )
    overall = content_support(strip_citations(answer), sources)
    grounded = min(scores) >= SENTENCE_SUPPORT_MIN
    return Grounding(grounded, overall, tuple(scores), kept)


def leaks_prompt(answer: str, system: str, n: int = 5) -> bool:
    """The answer repeats n consecutive words of the system prompt (a prompt-leak attempt)."""
    words = [w.lower() for w in _WORD.findall(answer)]
    sys_words = [w.lower() for w in _WORD.findall(system)]
    grams = {tuple(sys_words[i : i + n]) for i in range(len(sys_words) - n + 1)}
    return any(tuple(words[i : i + n]) in grams for i in range(len(words) - n + 1))


def citations_resolve(answer: str, facts: Sequence[Fact]) -> tuple[str, list[dict[str, Any]]]:
    """Keep only [n] markers of passages that were in the prompt; cite the facts' passages."""
    valid = {f.n: f.passage for f in facts}

    def keep(match: re.Match[str]) -> str:
        return match.group(0) if int(match.group(1)) in valid else ""

    text = _CITATION.sub(keep, answer)
    text = _ANY_BRACKET_NUMBER.sub(
        lambda m: m.group(0) if _CITATION.fullmatch(m.group(0)) else "", text
    )
    text = re.sub(r"(\s*\[\d{1,2}\])(?:\1)+", r"\1", text).strip()  # "[1] [1]" -> "[1]"
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


def extractive_answer(facts: Sequence[Fact], k: int = EXTRACTIVE_FACTS) -> str:
    """The best facts quoted verbatim, cited: always grounded."""
    best = sorted(facts, key=lambda f: f.score, reverse=True)[:k]
    best.sort(key=lambda f: (f.n, facts.index(f)))
    return " ".join(f"{f.text} [{f.n}]" for f in best)


def retrieval_query(question: str, history: Sequence[Turn]) -> str:
    """Follow-up questions lean on the previous customer turn for retrieval."""
    previous = [t.text for t in history if t.role == "customer"][-1:]
    if previous and len(content_words(question)) < 6:
        return f"{previous[0]} {question}"
    return question


class _SentenceLimit:
    """Passes streamed text through until `limit` sentences are complete, then says stop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.text = ""
        self.done = False

    def feed(self, piece: str) -> str:
        """The part of `piece` to keep; sets `done` once the limit is reached."""
        start = len(self.text)
        self.text += piece
        ends = list(_SENTENCE_END.finditer(self.text))
        if len(ends) >= self.limit:
            cut = ends[self.limit - 1].end()
            self.done = True
            self.text = self.text[:cut]
            return self.text[start:]
        return piece


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
    retrieved = tuple(p.as_dict() for p in search.passages)
    timings: dict[str, float] = {"retrieval_ms": round((time.perf_counter() - started) * 1000, 1)}
    facts: list[Fact] = []

    def finish(
        text: str,
        action: str,
        reason: str,
        citations: Sequence[dict[str, Any]] = (),
        grounded: bool = False,
        answer_conf: float = 0.0,
        support: float | None = None,
        cancelled: bool = False,
        generated: str = "",
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
            tuple(facts),
            generated,
        )

    if not search.passages:
        return finish(DECLINE_TEXT, "escalate", "no_passages")
    if search.confidence < conf.retrieval_min_confidence:
        return finish(DECLINE_TEXT, "escalate", "low_confidence")
    facts = facts_select(question=question, passages=search.passages)
    if not facts or max(f.score for f in facts) < MIN_FACT_SCORE:
        return finish(DECLINE_TEXT, "escalate", "no_facts")
    timings["select_ms"] = round(
        (time.perf_counter() - started) * 1000 - timings["retrieval_ms"], 1
    )

    def extractive(reason: str, support: float | None = None, generated: str = "") -> Draft:
        text, cites = citations_resolve(extractive_answer(facts), facts)
        return finish(
            text,
            "extractive",
            reason,
            cites,
            True,
            search.confidence * 0.8,
            support,
            generated=generated,
        )

    if not generate:
        return extractive("extractive_only")

    model = get_chat_model()
    max_new = min(conf.max_answer_tokens, ANSWER_MAX_TOKENS)
    prompt = prompt_build(
        question=question, facts=facts, history=history, model=model, max_new_tokens=max_new
    )
    facts = list(prompt.facts)
    params = GenerationParams(
        max_tokens=max_new,
        stop=("\n\n", "\nQuestion:", "\nFacts:"),
        deadline_s=conf.answer_timeout_s,
        repetition_penalty=REPETITION_PENALTY,
        penalize_prompt=PENALIZE_PROMPT,
        logit_bias=fact_bias(model, facts),
    )
    limit = _SentenceLimit(ANSWER_MAX_SENTENCES)
    gen_started = time.perf_counter()
    first: float | None = None
    with model.stream(list(prompt.token_ids), params, should_stop) as stream:
        for piece in stream:
            if first is None:
                first = time.perf_counter()
            kept = limit.feed(piece)
            if kept and on_delta is not None:
                on_delta(kept)
            if limit.done:
                break  # leaving the block closes the stream: no more tokens are computed
        stats = stream.stats
    timings["ttft_ms"] = round(((first or time.perf_counter()) - gen_started) * 1000, 1)
    timings["generate_ms"] = round((time.perf_counter() - gen_started) * 1000, 1)
    timings["tokens"] = stats.generated_tokens if stats else 0
    timings["prompt_tokens"] = len(prompt.token_ids)
    timings["cached_prompt_tokens"] = stats.cached_prompt_tokens if stats else 0
    raw = limit.text.strip()
    if not limit.done and stats is not None and stats.finish_reason is FinishReason.CANCELLED:
        return finish(raw, "escalate", "cancelled", cancelled=True, generated=raw)

    if leaks_prompt(raw, prompt.system):
        return finish(DECLINE_TEXT, "escalate", "ungrounded", generated=raw)
    grounding = grounding_check(raw, facts)
    if grounding.kept:
        text, cites = citations_resolve(grounding.kept, facts)
        reason = "grounded" if grounding.grounded else "partially_grounded"
        support = content_support(strip_citations(grounding.kept), [f.text for f in facts])
        answer_conf = min(search.confidence, support)
        return finish(text, "answer", reason, cites, True, answer_conf, support, generated=raw)
    return extractive("ungrounded_generation", grounding.support, raw)
