"""The escalation decision: rules, example phrasings and thresholds, free of I/O.

`escalation_decide(state, similarity=...)` is pure given its injected similarity; the selector
that builds `ConversationState` from the database and the services that act on a decision live
in `support.escalation`.
"""

from .decide import (
    accepts_person_offer,
    embedding_similarity,
    escalation_decide,
    failures_in_a_row,
    offer_pending,
)
from .frustration import is_abusive, is_complaint, sentiment
from .request import NOT_REQUEST_EXAMPLES, REQUEST_EXAMPLES, asks_for_person
from .similarity import EmbeddingSimilarity, Similarity
from .state import (
    CUSTOMER_REQUEST,
    FRUSTRATION,
    LOW_CONFIDENCE,
    REASONS,
    REPEATED_FAILURE,
    SENSITIVE_TOPIC,
    UNGROUNDED,
    AnswerOutcome,
    CheckStage,
    ConversationState,
    EscalationDecision,
    LineKind,
    PastTurn,
    Thresholds,
    TopicRule,
)
from .topics import amounts, keyword_match

__all__ = [
    "CUSTOMER_REQUEST",
    "FRUSTRATION",
    "LOW_CONFIDENCE",
    "NOT_REQUEST_EXAMPLES",
    "REASONS",
    "REPEATED_FAILURE",
    "REQUEST_EXAMPLES",
    "SENSITIVE_TOPIC",
    "UNGROUNDED",
    "AnswerOutcome",
    "CheckStage",
    "ConversationState",
    "EmbeddingSimilarity",
    "EscalationDecision",
    "LineKind",
    "PastTurn",
    "Similarity",
    "Thresholds",
    "TopicRule",
    "accepts_person_offer",
    "amounts",
    "asks_for_person",
    "embedding_similarity",
    "escalation_decide",
    "failures_in_a_row",
    "is_abusive",
    "is_complaint",
    "keyword_match",
    "offer_pending",
    "sentiment",
]
