"""`escalation_decide`: should a person take over? A pure function of the conversation state."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from support.answers.reasons import (
    ANSWERED_ACTIONS,
    UNGROUNDED_REASONS,
    AnswerAction,
    AnswerReason,
)

from .frustration import is_abusive, is_complaint, strongly_negative
from .request import (
    NOT_REQUEST_EXAMPLES,
    REQUEST_EXAMPLES,
    asks_for_person,
    has_person_cue,
)
from .similarity import EmbeddingSimilarity, Encoder, Similarity
from .state import (
    CUSTOMER_REQUEST,
    FRUSTRATION,
    LOW_CONFIDENCE,
    REPEATED_FAILURE,
    SENSITIVE_TOPIC,
    UNGROUNDED,
    ConversationState,
    EscalationDecision,
    PastTurn,
    Thresholds,
    TopicRule,
)
from .text import normalise, words
from .topics import amounts, keyword_match

# The answer pipeline's named outcomes (support.answers.reasons, a leaf without Django).
_UNGROUNDED_REASONS = UNGROUNDED_REASONS
_ANSWERED = ANSWERED_ACTIONS
# Shorter messages ("ok", "thanks", "yes please") repeat naturally; they are never "the same
# question again".
_MIN_REPEAT_WORDS = 4


def _process_encoder() -> Encoder:
    from support.backends import get_embedder  # the Django-side backend registry

    return get_embedder()


# The process-wide default: example phrasings are embedded once, lazily, on first use.
embedding_similarity = EmbeddingSimilarity(_process_encoder)


def _max(values: NDArray[np.float32]) -> float:
    return float(values.max()) if values.size else -1.0


def request_score(text: str, similarity: Similarity) -> tuple[float, float]:
    """(closest request example, closest near-miss example), cosine similarities."""
    sims = similarity(text, (*REQUEST_EXAMPLES, *NOT_REQUEST_EXAMPLES))
    n = len(REQUEST_EXAMPLES)
    return _max(sims[:n]), _max(sims[n:])


def customer_requests_person(
    text: str, thresholds: Thresholds, similarity: Similarity | None
) -> bool:
    if asks_for_person(text):
        return True
    if similarity is None or not has_person_cue(text):
        return False
    best, near_miss = request_score(text, similarity)
    return best >= thresholds.request_similarity and best - near_miss >= thresholds.request_margin


def _answered_questions(turns: Sequence[PastTurn]) -> list[str]:
    """Customer messages that a bot answer (not a decline) came after."""
    last_answer = max(
        (i for i, t in enumerate(turns) if t.role == "bot" and t.action in _ANSWERED), default=-1
    )
    return [t.text for t in turns[:last_answer] if t.role == "customer"]


def repeats_answered_question(
    text: str, turns: Sequence[PastTurn], thresholds: Thresholds, similarity: Similarity | None
) -> bool:
    if len(words(normalise(text))) < _MIN_REPEAT_WORDS:
        return False
    earlier = [
        q for q in _answered_questions(turns) if len(words(normalise(q))) >= _MIN_REPEAT_WORDS
    ]
    if not earlier:
        return False
    # Same words, whatever the case, accents or punctuation.
    norm = words(normalise(text))
    if any(words(normalise(q)) == norm for q in earlier):
        return True
    if similarity is None:
        return False
    return _max(similarity(text, earlier)) >= thresholds.repeat_similarity


def is_frustrated(state: ConversationState, similarity: Similarity | None) -> bool:
    text = state.text
    if is_complaint(text) or is_abusive(text):
        return True
    if strongly_negative(text, state.thresholds.negative_sentiment):
        return True
    return repeats_answered_question(text, state.turns, state.thresholds, similarity)


def topic_matches(
    topic: TopicRule, text: str, thresholds: Thresholds, similarity: Similarity | None
) -> bool:
    has_words = bool(topic.keywords or topic.examples)
    matched = keyword_match(topic.keywords, text) if topic.keywords else False
    if not matched and topic.examples and similarity is not None:
        matched = _max(similarity(text, topic.examples)) >= thresholds.topic_similarity
    if has_words and not matched:
        return False
    if topic.amount_threshold is not None:
        return any(a > topic.amount_threshold for a in amounts(text))
    return has_words


def failures_in_a_row(state: ConversationState) -> int:
    """Declined or thumbs-down bot answers, counted back from the latest; a good answer (or
    one without feedback) or an agent message ends the run."""
    count = 0
    if state.answer is not None:
        if state.answer.action not in _ANSWERED:
            count += 1
        else:
            return 0
    for turn in reversed(state.turns):
        if turn.role == "agent":
            break
        if turn.role != "bot":
            continue
        if turn.action == AnswerAction.ESCALATE or turn.feedback == "down":
            count += 1
        else:
            break
    return count


def escalation_decide(
    state: ConversationState, *, similarity: Similarity | None = embedding_similarity
) -> EscalationDecision:
    """Should a person take over, and why (pure: no I/O but the injected `similarity`).

    `similarity=None` runs the rules only (no embedding model), for processes that must not
    load one. With `state.answer` set, the answer's outcome counts as well.
    """
    reasons: list[str] = []
    matched_topics: list[TopicRule] = []
    th = state.thresholds
    if state.text.strip():
        if customer_requests_person(state.text, th, similarity):
            reasons.append(CUSTOMER_REQUEST)
        if is_frustrated(state, similarity):
            reasons.append(FRUSTRATION)
        matched_topics = [t for t in state.topics if topic_matches(t, state.text, th, similarity)]
        if matched_topics:
            reasons.append(SENSITIVE_TOPIC)
    answer = state.answer
    if answer is not None:
        declined = (
            answer.action == AnswerAction.ESCALATE and answer.reason != AnswerReason.CANCELLED
        )
        if declined and answer.reason not in _UNGROUNDED_REASONS:
            reasons.append(LOW_CONFIDENCE)
        # When generation fails the check the pipeline either declines ("ungrounded") or
        # falls back to a quoted, grounded passage ("ungrounded_generation", extractive): only
        # the decline, or an answer shown ungrounded, leaves the customer without one.
        if (declined and answer.reason in _UNGROUNDED_REASONS) or (
            answer.action in _ANSWERED and not answer.grounded
        ):
            reasons.append(UNGROUNDED)
    if failures_in_a_row(state) >= th.failures_in_a_row:
        reasons.append(REPEATED_FAILURE)
    messages = list(dict.fromkeys(t.customer_message for t in matched_topics if t.customer_message))
    return EscalationDecision(
        escalate=bool(reasons),
        reasons=tuple(reasons),
        customer_message="\n\n".join(messages),
        topics=tuple(t.name for t in matched_topics),
    )
