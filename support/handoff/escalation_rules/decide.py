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
    LineKind,
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

# A reply to the decline's offer ("could you rephrase, or shall I get a person?") that accepts
# it: every word is one of these, at least one of them says yes or names a person, and the
# reply is short. "yes but how do I ..." has other words: it is a question, answered as one;
# "ok" or "thanks" alone may mean "never mind", and "no" is not a yes.
_YES_WORDS = frozenset(
    {
        # yes, in the languages the request rules read
        "yes", "yeah", "yea", "yep", "yup", "ya", "y", "sure", "ok", "okay", "k", "please",
        "ja", "jawohl", "gerne", "bitte", "oui", "si", "claro", "vale", "graag", "sim", "certo",
        "affirmative", "definitely", "absolutely", "alright", "right",
        "do", "it", "go", "ahead", "that", "would", "be", "great", "good", "fine", "thanks",
        "thank", "you", "a", "an", "the", "person", "human", "someone", "somebody", "agent",
        "get", "me", "one", "real", "now", "svp", "por", "favor", "s'il", "vous", "plait",
        "per", "favore", "de", "mais", "muito", "obrigado", "danke", "merci", "gracias", "ik",
        "het", "doe", "maar", "and", "then", "want", "i", "need", "that'd", "i'd",
        "like", "id", "so", "much", "let's", "lets",
    }
)  # fmt: skip
_YES_CORE = frozenset(
    {
        "yes", "yeah", "yea", "yep", "yup", "ya", "y", "sure", "please", "ja", "gerne",
        "bitte", "oui", "si", "claro", "vale", "graag", "sim", "definitely", "absolutely",
        "person", "human", "someone", "somebody", "agent",
    }
)  # fmt: skip
_YES_MAX_WORDS = 8


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


def accepts_person_offer(text: str) -> bool:
    """True when `text` reads as "yes" (or "a person please") and nothing else (pure)."""
    tokens = words(normalise(text))
    if not tokens or len(tokens) > _YES_MAX_WORDS:
        return False
    return all(t in _YES_WORDS for t in tokens) and any(t in _YES_CORE for t in tokens)


def _is_decline(turn: PastTurn) -> bool:
    return (
        turn.role == "bot"
        and turn.action == AnswerAction.ESCALATE
        and turn.reason != AnswerReason.CANCELLED
    )


def offer_pending(turns: Sequence[PastTurn]) -> bool:
    """The bot's latest word is a decline, which offers a person; nobody answered since."""
    for turn in reversed(turns):
        if turn.role in ("customer", "system"):
            continue
        return _is_decline(turn)
    return False


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
    one without feedback), an agent message or a hand back to the bot ends the run. System
    lines (queue notices, acknowledgements) count for nothing."""
    count = 0
    if state.answer is not None:
        if state.answer.action not in _ANSWERED:
            count += 1
        else:
            return 0
    for turn in reversed(state.turns):
        if turn.role == "agent":
            break
        if turn.role == "system" and turn.reason == LineKind.HANDED_BACK:
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

    A decline does not hand over by itself: it offers a person, and the conversation goes to
    one when the customer accepts ("yes", "a person please") or asks, when the bot has failed
    `failures_in_a_row` times in a row, or when another rule says so. The decline's kind
    (LOW_CONFIDENCE, UNGROUNDED) is then listed with the reasons, for agents and reports.
    """
    reasons: list[str] = []
    matched_topics: list[TopicRule] = []
    th = state.thresholds
    if state.text.strip():
        if customer_requests_person(state.text, th, similarity) or (
            offer_pending(state.turns) and accepts_person_offer(state.text)
        ):
            reasons.append(CUSTOMER_REQUEST)
        if is_frustrated(state, similarity):
            reasons.append(FRUSTRATION)
        matched_topics = [t for t in state.topics if topic_matches(t, state.text, th, similarity)]
        if matched_topics:
            reasons.append(SENSITIVE_TOPIC)
    answer = state.answer
    # What a decline adds to a hand-over that happens for another reason (it never hands over
    # by itself: it offers a person).
    decline_kind: str | None = None
    if answer is not None:
        declined = (
            answer.action == AnswerAction.ESCALATE and answer.reason != AnswerReason.CANCELLED
        )
        if declined:
            decline_kind = UNGROUNDED if answer.reason in _UNGROUNDED_REASONS else LOW_CONFIDENCE
        # An answer shown although it failed the check leaves the customer with a wrong one.
        # (When generation fails the check the pipeline quotes a grounded passage instead,
        # "ungrounded_generation", extractive: that is an answer.)
        if answer.action in _ANSWERED and not answer.grounded:
            reasons.append(UNGROUNDED)
    if failures_in_a_row(state) >= th.failures_in_a_row:
        reasons.append(REPEATED_FAILURE)
    if reasons and decline_kind is not None and decline_kind not in reasons:
        # After the message's own reasons, before the failures in a row.
        at = reasons.index(REPEATED_FAILURE) if REPEATED_FAILURE in reasons else len(reasons)
        reasons.insert(at, decline_kind)
    messages = list(dict.fromkeys(t.customer_message for t in matched_topics if t.customer_message))
    return EscalationDecision(
        escalate=bool(reasons),
        reasons=tuple(reasons),
        customer_message="\n\n".join(messages),
        topics=tuple(t.name for t in matched_topics),
    )
