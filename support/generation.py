"""Answer generation: focused prompt, grounded decoding, a hard groundedness gate, citations.

The model never sees whole chunks: the sentences of the top passages sharing most of the
question's words ("facts") go into the user turn, numbered by passage. Decoding is greedy
with a logit bias towards the facts' tokens and a repetition penalty on what the model itself
wrote, and the answer ends after two sentences. Every answer sentence is then checked against
the facts (content-word and word-pair support); an answer with an unsupported sentence is
replaced by the best fact quoted verbatim (extractive). Nothing is generated when retrieval
confidence is too low or no sentence of the passages covers the question. Tuned on the even
half of doc2dial's first-turn questions with SmolLM2-135M: see bench/answers.py.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from . import security
from .backends import get_chat_model
from .conf import get_support_settings
from .ingest.chunking import sentences as split_sentences
from .llm import FinishReason, GenerationParams, grounding_logit_bias
from .llm.errors import PromptTooLongError
from .retrieval import Passage, SearchResult, passages_search, unknown_identifiers

PROMPT_VERSION = "answer_v2"
PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

# -- tuned on the doc2dial dev half (bench/answers.py); see the module docstring -----------------
MAX_PASSAGES = 3  # facts come from the top passages only
MAX_FACTS = 3  # 2 scored lower (the model copies the wrong one more often)
FACT_MIN_CHARS = 12
# Longer "sentences" (lists run together) are cut: they made the slowest 5% of prompts.
FACT_MAX_WORDS = 50
HISTORY_TURNS = 2  # the last exchange (customer + agent/bot); 4 scored the same, slower
# A fact is a sentence scored by the share of the question's content words it contains, minus
# FACT_RANK_PENALTY per passage rank.
FACT_RANK_PENALTY = 0.03
FACTS_BEST_FIRST = False  # True (best fact first instead of reading order) scored lower
# No sentence of the top passages has this share of the question's words: the KB does not
# answer it (with retrieval confidence, the decline decision; stemming and passage headings
# were measured too: stemming is neutral on doc2dial and kept for "billed"/"bills", headings
# lowered F1).
MIN_FACT_SCORE = 0.5
FULL_COVERAGE = 0.9
FACT_BIAS = 4.0  # +6 made no difference
REPETITION_PENALTY = 1.3
# llama.cpp-style penalties count prompt tokens as seen, which punishes copying the facts
# (True: raw content-word support fell from 0.87 to 0.75).
PENALIZE_PROMPT = False
ANSWER_MAX_TOKENS = 80
ANSWER_MAX_SENTENCES = 2  # 1 scored lower
# A sentence is grounded when most of its content words AND most of its adjacent word pairs
# occur in the facts. Word support alone accepts SmolLM2-135M's recombinations of fact words
# ("Gift cards can expire." from "Gift cards never expire ..."); the pairs catch them.
SENTENCE_SUPPORT_MIN = 0.75
SENTENCE_BIGRAM_MIN = 0.7
EXTRACTIVE_FACTS = 1  # the fallback quotes the best fact (2 scored lower)
# No sentence holds half of the question's words, but retrieval is sure of the page ("How can I
# find out about transferring a vehicle?" -> the page on transferring a vehicle): its best
# sentence is quoted and cited ("confident_page") rather than declining a question the knowledge
# base plainly covers. Below this, no_facts declines as before.
NO_FACTS_QUOTE_CONFIDENCE = 0.7
# An answer repeating this many consecutive words of the system prompt is a leak.
PROMPT_LEAK_WORDS = 5

# Every decline escalates (support.handoff.escalation_rules): the queue notice ("A person will join
# shortly ...") or the out-of-hours email offer follows this text, so it must not ask.
DECLINE_TEXT = (
    "I couldn't find that in our help articles, and I'd rather not guess — "
    "let me get a person to help you."
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
# SmolLM2 likes to open with "1. " as if starting a list.
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+")
_MARKER_STARTS = frozenset("0123456789-*•")
_ANY_BRACKET_NUMBER = re.compile(r"\s*\[\s*\d*\s*\]")
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[^\s.]{2})[.!?](?:\s*\[\d{1,2}\])?(?=\s)")

# Negations and "only" are not stopwords: an answer must not add one the facts lack. The last
# lines are chat filler ("hello, I need information about ...") and question phrasing ("how
# long does it take"), which say nothing about the facts a question needs.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself now of off on once or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves also may might must shall it's i'm you're we're they're
    there's that's let's please yes thank thanks sure okay ok get got like just one
    hello hi hey help need needs want wanted wondering wonder know information info question
    questions tell ask asking looking regarding reading i've i'd long much many take takes
    taking able possible""".split()  # noqa: SIM905
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
    # Every other text the prompt shows the model (facts, question, turns, examples): what
    # the answer may repeat. Words only the system prompt holds must never reach a customer.
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Grounding:
    grounded: bool  # every sentence is supported
    support: float  # share of the answer's content words found in the facts
    sentence_scores: tuple[tuple[float, float], ...]  # (content-word, word-pair support)


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
    parts = [p.strip() for p in _shipped_prompt_text(version).split("\n---\n")]
    examples = tuple(zip(parts[2::2], parts[3::2], strict=True))
    return PromptTemplate(parts[0], parts[1], examples)


@cache
def _shipped_prompt_text(version: str = PROMPT_VERSION) -> str:
    return (PROMPTS_DIR / f"{version}.txt").read_text()


# --- selection --------------------------------------------------------------------------------
_SUFFIXES = ("ies", "ing", "ed", "es", "s")


def _stem(word: str) -> str:
    """A light suffix stripper: "billed", "bills", "billing" -> "bill"; "moving" -> "mov"."""
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def _terms(text: str) -> set[str]:
    """Stemmed content words: what a question and a fact must share."""
    return {_stem(w) for w in content_words(text)}


def _shorten(sentence: str, max_words: int) -> str:
    """Cut an over-long "sentence" (help pages run lists together) after max_words words, at
    a clause boundary when there is one in the second half."""
    words = sentence.split()
    if len(words) <= max_words:
        return sentence
    head = " ".join(words[:max_words])
    cut = max(head.rfind(mark) for mark in (";", ":", ","))
    if cut > len(head) // 2:
        head = head[:cut]
    return head.rstrip(" ,;:") + " …"


def facts_select(*, question: str, passages: Sequence[Passage], k: int | None = None) -> list[Fact]:
    """The k sentences of the top passages sharing most of the question's content words.

    Lexical on purpose: embedding every sentence cost 0.9-3.5 s per question on the loaded
    2-core box and chose no better facts on doc2dial. Ties go to the earlier passage and
    sentence. Sentences sharing no word with the question, or addressing the assistant
    (prompt injection), are never facts.
    """
    q_terms = _terms(question)
    scored: list[tuple[float, int, Passage, str]] = []
    seen: set[str] = set()
    for n, passage in enumerate(passages[:MAX_PASSAGES], 1):
        for sentence in split_sentences(clean_untrusted(passage.text)):
            sentence = " ".join(sentence.split())
            if len(sentence) < FACT_MIN_CHARS or _INJECTION.search(sentence):
                continue
            # Help centres repeat pages: a sentence already taken from a better passage (or
            # from chunk overlap) would only spend prompt tokens and a fact slot.
            key = " ".join(content_words(sentence))
            if key in seen:
                continue
            seen.add(key)
            overlap = len(q_terms & _terms(sentence)) / (len(q_terms) or 1)
            if not overlap:
                continue  # shares no word with the question: a distraction, not a fact
            # Earlier passages are more relevant overall: a small prior by passage rank.
            score = overlap - FACT_RANK_PENALTY * (n - 1)
            scored.append((score, n, passage, _shorten(sentence, FACT_MAX_WORDS)))
    order = sorted(range(len(scored)), key=lambda i: -scored[i][0])[: k or MAX_FACTS]
    if not FACTS_BEST_FIRST:
        order.sort()  # in passage and reading order
    return [Fact(scored[i][1], scored[i][2], scored[i][3], scored[i][0]) for i in order]


def _top(facts: Sequence[Fact]) -> float:
    return max((f.score for f in facts), default=0.0)


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
            sources = tuple(m["content"] for m in messages[1:])
            return Prompt(tuple(ids), tuple(facts), len(turns), system, sources=sources)
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


def _pairs(text: str) -> list[tuple[str, str]]:
    words = [m.group().lower() for m in _WORD.finditer(text)]
    return list(itertools.pairwise(words))


class _Support:
    """The facts' content words and word pairs, for checking text against them quickly."""

    def __init__(self, sources: Sequence[str]) -> None:
        self.sources = tuple(sources)
        self.words = {w for s in sources for w in content_words(s)}
        self.pairs = {p for s in sources for p in _pairs(s)}

    def scores(self, text: str) -> tuple[float, float]:
        """(content-word support, word-pair support) of `text`; 1.0 for none to check."""
        body = strip_citations(text)
        words, pairs = content_words(body), _pairs(body)
        return (
            sum(w in self.words for w in words) / len(words) if words else 1.0,
            sum(p in self.pairs for p in pairs) / len(pairs) if pairs else 1.0,
        )

    def supports(self, text: str, *, complete: bool = True) -> bool:
        """A complete sentence needs content words; a sentence still being written does not."""
        if complete and not content_words(strip_citations(text)):
            return False  # nothing to check ("Sure.", "[1]"): not an answer
        if security.foreign_links(text, sources=self.sources):
            return False  # a link, image or HTML tag the facts do not hold
        words, pairs = self.scores(text)
        return words >= SENTENCE_SUPPORT_MIN and pairs >= SENTENCE_BIGRAM_MIN


def grounding_check(answer: str, facts: Sequence[Fact]) -> Grounding:
    """Score each answer sentence against the facts: lexical, cheap, no second model call."""
    sources = [f.text for f in facts]
    sents = _sentences(answer)
    if not sents or not facts:
        return Grounding(False, 0.0, ())
    support = _Support(sources)
    grounded = all(support.supports(s) for s in sents)
    overall = support.scores(answer)[0]
    return Grounding(grounded, overall, tuple(support.scores(s) for s in sents))


class _LeakGuard:
    """Recognises text repeating the system prompt: a run of PROMPT_LEAK_WORDS consecutive
    words of it, or any word only the system prompt holds (a secret such as an internal code
    smuggled into an otherwise supported sentence); `sources` are the prompt's other texts."""

    def __init__(self, system: str, n: int = 0, sources: Sequence[str] | None = None) -> None:
        self.n = n or PROMPT_LEAK_WORDS
        words = [w.lower() for w in _WORD.findall(system)]
        self.grams = {tuple(words[i : i + self.n]) for i in range(len(words) - self.n + 1)}
        self.private: frozenset[str] = frozenset()
        if sources is not None:
            # The prompt file as shipped, the company name and the tone are public (in this
            # repository and on the website); anything else a system prompt holds is not.
            conf = get_support_settings()
            public = [*sources, _shipped_prompt_text(), conf.company_name, conf.tone]
            self.private = security.prompt_private_words(system=system, sources=public)

    def leaks(self, text: str) -> bool:
        if self.private and security.words_in(text, self.private):
            return True
        words = [w.lower() for w in _WORD.findall(text)]
        return any(
            tuple(words[i : i + self.n]) in self.grams for i in range(len(words) - self.n + 1)
        )


def leaks_prompt(answer: str, system: str) -> bool:
    """The answer repeats a run of the system prompt's words (a prompt-leak attempt)."""
    return _LeakGuard(system).leaks(answer)


def _best_fact(sentence: str, facts: Sequence[Fact]) -> Fact:
    body = strip_citations(sentence)
    # Most word pairs shared first, then most content words.
    return max(facts, key=lambda f: _Support([f.text]).scores(body)[::-1])


def citations_resolve(answer: str, facts: Sequence[Fact]) -> tuple[str, list[dict[str, Any]]]:
    """Keep only [n] markers of passages that were in the prompt, mark every sentence without
    one with the passage it copies from, and list the cited passages."""
    valid = {f.n: f.passage for f in facts}

    def keep(match: re.Match[str]) -> str:
        return match.group(0) if int(match.group(1)) in valid else ""

    text = _CITATION.sub(keep, answer)
    # Malformed markers ("[]", "[ ]") go too; "[1] [1]" becomes "[1]".
    text = _ANY_BRACKET_NUMBER.sub(
        lambda m: m.group(0) if _CITATION.fullmatch(m.group(0)) else "", text
    )
    text = re.sub(r"(\s*\[\d{1,2}\])(?:\1)+", r"\1", text).strip()
    # "... refund. [2]" -> "... refund [2]." so the marker stays with its sentence.
    text = re.sub(r"([.!?])((?:\s*\[\d{1,2}\])+)", r"\2\1", text)
    if facts:
        marked = []
        for sentence in _sentences(text):
            if not _CITATION.search(sentence):
                marker = f" [{_best_fact(sentence, facts).n}]"
                end = re.search(r"[.!?]+[\"'”’)]*$", sentence)
                cut = end.start() if end else len(sentence)
                sentence = sentence[:cut] + marker + sentence[cut:]
            marked.append(sentence)
        text = " ".join(marked)
    cited = [int(n) for n in re.findall(r"\[(\d{1,2})\]", text)]
    citations = []
    for n in dict.fromkeys(cited):
        p = valid[n]
        citations.append(
            {
                "n": n,
                "document_id": p.document_id,
                "filename": p.filename,
                "chunk_id": p.chunk_id,
                "title": p.title,
                "heading": p.heading,
                "source_url": p.source_url,
                "page": p.page,
                "score": round(p.score, 4),
                "text": p.text,
            }
        )
    return text, citations


def extractive_answer(facts: Sequence[Fact], k: int | None = None) -> str:
    """The best facts quoted verbatim (citations_resolve marks their passages).

    Questions among them (help pages use them as headings) answer nothing: they are quoted
    only when every fact is one.
    """
    ranked = sorted(facts, key=lambda f: f.score, reverse=True)
    statements = [f for f in ranked if not f.text.rstrip().endswith("?")]
    best = (statements or ranked)[: k or EXTRACTIVE_FACTS]
    best.sort(key=lambda f: (f.n, facts.index(f)))
    return " ".join(f.text for f in best)


def retrieval_queries(question: str, history: Sequence[Turn]) -> list[str]:
    """The question, and for a short one (a possible follow-up) also the question with the
    previous customer turn in front."""
    previous = [t.text for t in history if t.role == "customer" and t.text.strip()][-1:]
    if previous and len(content_words(question)) < 6:
        return [question, f"{previous[0]} {question}"]
    return [question]


def passages_retrieve(question: str, history: Sequence[Turn]) -> SearchResult:
    """Search with each candidate query and keep the most confident result: a self-contained
    short question is not diluted by an unrelated earlier turn, a follow-up gets its context."""
    results = [passages_search(query=q, k=5) for q in retrieval_queries(question, history)]
    return max(results, key=lambda r: r.confidence)


class _AnswerStream:
    """Shapes the streamed answer: drops a leading list marker ("1. "), ends the answer after
    `limit` sentences, and shows text only while it is supported by the facts.

    A sentence being written is shown as far as it passes the groundedness check so far (a
    half-written word or an unsupported turn holds it back); a complete sentence that fails
    ends the answer (`failed`), so a customer never watches an invented claim being typed.
    `feed` returns the text to show now.
    """

    def __init__(self, limit: int, support: _Support) -> None:
        self.limit = limit
        self.support = support
        self.text = ""  # what the model wrote (marker removed, cut at the limit)
        self.shown = 0  # length of the prefix shown so far
        self.checked = 0  # length of the prefix made of complete, supported sentences
        self.sentences = 0
        self.done = False
        self.failed = False

    def feed(self, piece: str) -> str:
        self.text += piece
        if not self.shown and not self.checked:
            head = self.text.lstrip()
            if len(head) < 4 and head[:1] in _MARKER_STARTS:
                return ""  # it may still become "1. "
            self.text = _LIST_MARKER.sub("", head)
        ends = [m.end() for m in _SENTENCE_END.finditer(self.text, self.checked)]
        for end in ends:
            if not self.support.supports(self.text[self.checked : end]):
                self.failed = True
                return ""
            self.checked = end
            self.sentences += 1
            if self.sentences >= self.limit:
                self.text = self.text[:end]
                self.done = True
                break
        visible = self.checked
        if not self.done and self.support.supports(self.text[self.checked :], complete=False):
            visible = len(self.text)
        return self._show(visible)

    def finish(self) -> str:
        """At the end of generation: judge the last sentence, return what is left to show."""
        if not self.shown and not self.checked:
            self.text = _LIST_MARKER.sub("", self.text.lstrip())
        rest = self.text[self.checked :]
        if rest.strip() and not self.support.supports(rest):
            self.failed = True
            return ""
        return self._show(len(self.text))

    def _show(self, upto: int) -> str:
        if upto <= self.shown:
            return ""
        out = self.text[self.shown : upto]
        self.shown = upto
        return out


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
        search = passages_retrieve(question, history)
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
    if unknown_identifiers(question):
        # "What does VADIP offer?" when no page mentions VADIP: passages about something else
        # would only yield a confident answer to another question.
        return finish(DECLINE_TEXT, "escalate", "unknown_term")
    facts = facts_select(question=question, passages=search.passages)
    if search.query != question:
        # A follow-up found its passages with the earlier turn in the query: its facts may
        # share words with that turn rather than with the short question (doc2dial
        # follow-ups: 29% declined for lack of facts without this, 19% with it).
        context_facts = facts_select(question=search.query, passages=search.passages)
        if _top(context_facts) > _top(facts):
            facts = context_facts
    # A sentence holding (nearly) every word of the question outweighs a low retrieval
    # confidence, which is poorly calibrated on small knowledge bases.
    if search.confidence < conf.retrieval_min_confidence and _top(facts) < FULL_COVERAGE:
        facts = []
        return finish(DECLINE_TEXT, "escalate", "low_confidence")

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

    if _top(facts) < MIN_FACT_SCORE:
        if facts and search.confidence >= NO_FACTS_QUOTE_CONFIDENCE:
            draft = extractive("confident_page")
            if on_delta is not None:
                on_delta(draft.text)
            return draft
        return finish(DECLINE_TEXT, "escalate", "no_facts")
    timings["select_ms"] = round(
        (time.perf_counter() - started) * 1000 - timings["retrieval_ms"], 1
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
    shaped = _AnswerStream(ANSWER_MAX_SENTENCES, _Support([f.text for f in facts]))
    guard = _LeakGuard(prompt.system, sources=prompt.sources)
    leaked = False
    gen_started = time.perf_counter()
    first: float | None = None
    with model.stream(list(prompt.token_ids), params, should_stop) as stream:
        for piece in stream:
            if first is None:
                first = time.perf_counter()
                timings["first_token_ms"] = round((first - started) * 1000, 1)
            show = shaped.feed(piece)
            if show and "first_text_ms" not in timings:
                timings["first_text_ms"] = round((time.perf_counter() - started) * 1000, 1)
            if guard.leaks(shaped.text):
                leaked = True  # checked before showing the piece: the run is never shown
                break
            if show and on_delta is not None:
                on_delta(show)
            if shaped.done or shaped.failed:
                break  # leaving the block closes the stream: no more tokens are computed
    stats = stream.stats  # set once the stream is closed
    stopped_early = shaped.done or shaped.failed or leaked
    if not stopped_early and (rest := shaped.finish()) and on_delta is not None:
        on_delta(rest)
    timings["ttft_ms"] = round(((first or time.perf_counter()) - gen_started) * 1000, 1)
    timings["generate_ms"] = round((time.perf_counter() - gen_started) * 1000, 1)
    timings["tokens"] = stats.generated_tokens if stats else 0
    timings["prompt_tokens"] = len(prompt.token_ids)
    timings["cached_prompt_tokens"] = stats.cached_prompt_tokens if stats else 0
    raw = shaped.text.strip()
    if not stopped_early and stats is not None and stats.finish_reason is FinishReason.CANCELLED:
        return finish(raw, "escalate", "cancelled", cancelled=True, generated=raw)

    def fallback(reason: str, support: float | None) -> Draft:
        draft = extractive(reason, support, raw)
        if not shaped.shown and on_delta is not None:
            on_delta(draft.text)  # nothing was shown yet: stream the quote instead
        return draft

    if leaked:
        return fallback("prompt_leak", None)
    if shaped.failed:
        return fallback("ungrounded_generation", grounding_check(raw, facts).support)
    grounding = grounding_check(raw, facts)
    if grounding.grounded:
        text, cites = citations_resolve(raw, facts)
        answer_conf = min(search.confidence, grounding.support)
        return finish(
            text, "answer", "grounded", cites, True, answer_conf, grounding.support, generated=raw
        )
    # One unsupported sentence sinks the answer: on doc2dial, keeping the supported rest
    # scored lower than quoting the best fact.
    return fallback("ungrounded_generation", grounding.support)
