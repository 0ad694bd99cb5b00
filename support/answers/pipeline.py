"""`answer_compose`: the stages in order (see the package docstring)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray

from ..backends import get_chat_model, get_embedder
from ..conf import get_support_settings
from ..retrieval import SearchResult
from ..search import retrievers
from .check import check
from .cite import cite, cite_learned
from .decide import decide, decline_signals
from .fact_ranker import FactRanker, served_ranker
from .generate import answer_max_tokens
from .generate import generate as generate_answer
from .reasons import AnswerAction, AnswerReason
from .recall import recall
from .retrieve import retrieve
from .timing import Recorder
from .trace import trace_build
from .types import Draft, Generation, Question, Recall, Retrieved, Route, Turn, Verdict


def answer_compose(
    *,
    question: str,
    history: Sequence[Turn] = (),
    on_delta: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    search: SearchResult | None = None,
    generate: bool = True,
    answer_memory: bool | None = None,
) -> Draft:
    """Retrieve, decide, recall an approved answer (answer memory), else generate (streaming
    through on_delta) and check; cite one answer.

    `search` skips retrieval (benchmarks reuse one); `generate=False` quotes instead of
    calling the model. A quote is streamed through on_delta too, unless the model's words
    were already shown. `answer_memory` overrides SUPPORT_ANSWER_MEMORY (the chat model's
    gate compares models, and an approved answer comes from neither).
    """
    conf = get_support_settings()
    timer = Recorder()
    cpu_started = time.thread_time()
    asked = Question(question, tuple(history))
    with timer.span("retrieval_ms"):
        retrieved = Retrieved(search) if search is not None else retrieve(asked)
    with timer.span("select_ms"):
        ranker = fact_ranker_served()
        decision = decide(
            asked,
            retrieved,
            min_confidence=conf.retrieval_min_confidence,
            generate=generate,
            ranker=ranker,
            # Called only when needed: a low-confidence decline to weigh, or the ranker.
            question_vector=_question_vector(retrieved),
            encode=_encode,
        )
    recalled: Recall | None = None
    if conf.answer_memory if answer_memory is None else answer_memory:
        with timer.span("recall_ms"):
            recalled = recall(
                asked,
                retrieved,
                decision,
                min_similarity=conf.answer_memory_min_similarity,
                min_confidence=conf.retrieval_min_confidence,
            )
    learned = recalled is not None and recalled.accepted
    generation: Generation | None = None
    verdict: Verdict | None = None
    if decision.route is Route.GENERATE and not learned:
        generation = generate_answer(
            asked,
            decision,
            model=get_chat_model(),
            max_tokens=answer_max_tokens(conf.max_answer_tokens),
            deadline_s=conf.answer_timeout_s,
            timer=timer,
            on_delta=on_delta,
            should_stop=should_stop,
        )
        verdict = check(asked, generation)
    if learned:
        assert recalled is not None
        draft = cite_learned(retrieved, recalled)
    else:
        draft = cite(retrieved, decision, generation, verdict)
    timings = timer.finish()
    trace = trace_build(
        retrieved=retrieved,
        decision=decision,
        generation=generation,
        verdict=verdict,
        recalled=recalled,
        signals=decline_signals(asked, retrieved.search, dense_fact=decision.dense_fact),
        timings=timings,
        # The model and the embedder compute in this thread (one thread each by default).
        cpu_ms=(time.thread_time() - cpu_started) * 1000,
    )
    draft = dataclasses.replace(draft, timings=timings, trace=trace)
    if on_delta is not None and _quote_unshown(draft, generation):
        on_delta(draft.text)
    return draft


def fact_ranker_served() -> FactRanker | None:
    """The promoted fact ranker (None: SUPPORT_FACT_RANKER off or none promoted)."""
    conf = get_support_settings()
    return served_ranker(conf.fact_rankers_dir) if conf.fact_ranker else None


def _question_vector(retrieved: Retrieved) -> Callable[[str], NDArray[np.float32]]:
    """The question vector of the fact ranker and of decide's dense rescue: the configured
    embedder's (the ranker was trained with it); the search's own when retrieval used that
    embedder too."""
    search = retrieved.search

    def vector(text: str) -> NDArray[np.float32]:
        if (
            search.query_vector is not None
            and search.query == text
            and retrievers.current(get_support_settings().retrievers_dir) is None
        ):
            return search.query_vector
        return get_embedder().encode_query(text)

    return vector


def _encode(texts: list[str]) -> NDArray[np.float32]:
    """Sentence vectors from the configured embedder (built on first use only)."""
    return get_embedder().encode(texts)


def _quote_unshown(draft: Draft, generation: Generation | None) -> bool:
    """A quote the customer has not seen yet: the confident page, or the fallback when none of
    the model's words were shown (a quote asked for with generation off is not streamed); an
    answer from memory (never generated, so never shown)."""
    if draft.reason is AnswerReason.LEARNED:
        return True
    if draft.action is not AnswerAction.EXTRACTIVE:
        return False
    if generation is None:
        return draft.reason is AnswerReason.CONFIDENT_PAGE
    return not generation.shown


def tuned_constants() -> dict[str, object]:
    """The pipeline's tuned constants by name (benchmarks record them with their results)."""
    from . import citations, decide, facts, generate, grounding, leaks, prompt, recall

    names = {
        facts: (
            "MAX_PASSAGES",
            "MAX_FACTS",
            "FACT_RANK_PENALTY",
            "FACT_HEADING_WEIGHT",
            "FACTS_BEST_FIRST",
            "FACT_INTENT_WEIGHT",
        ),
        prompt: ("HISTORY_TURNS", "FACT_BIAS"),
        decide: ("MIN_FACT_SCORE", "FULL_COVERAGE", "NO_FACTS_QUOTE_CONFIDENCE"),
        generate: (
            "REPETITION_PENALTY",
            "PENALIZE_PROMPT",
            "ANSWER_MAX_TOKENS",
            "ANSWER_MAX_SENTENCES",
        ),
        grounding: ("SENTENCE_SUPPORT_MIN", "SENTENCE_BIGRAM_MIN"),
        citations: ("EXTRACTIVE_FACTS",),
        leaks: ("PROMPT_LEAK_WORDS",),
        recall: ("RECALL_PASSAGES",),
    }
    return {name: getattr(module, name) for module, keys in names.items() for name in keys}
