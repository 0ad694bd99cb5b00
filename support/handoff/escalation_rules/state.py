"""Values the escalation decision works on: frozen, so the decision is a pure function."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

# Reason codes (the same strings as `Escalation.Reason`; kept here so the rules import no models).
CUSTOMER_REQUEST = "customer_request"
LOW_CONFIDENCE = "low_confidence"
UNGROUNDED = "ungrounded"
REPEATED_FAILURE = "repeated_failure"
FRUSTRATION = "frustration"
SENSITIVE_TOPIC = "sensitive_topic"
REASONS = (
    CUSTOMER_REQUEST,
    LOW_CONFIDENCE,
    UNGROUNDED,
    REPEATED_FAILURE,
    FRUSTRATION,
    SENSITIVE_TOPIC,
)


class LineKind(StrEnum):
    """System lines of the transcript (`Message.reason` of a system message), shown to the
    customer and to agents. None of them is an answer (support.answered) or a failure."""

    NOTICE = "notice"  # a rule's message (sensitive topic, busy, no answer in time)
    QUEUED = "queued"  # "Waiting for a person — you're in the queue"
    CLAIMED = "claimed"  # "You're now talking to <display name>"
    HANDED_BACK = "handed_back"  # "<name> handed you back to the assistant"
    ACK = "ack"  # "Thanks — a person will see this when they join" (a message sent while queued)
    ENDED = "ended"  # "This conversation has ended."


class CheckStage(StrEnum):
    """When the decision runs for a customer message; each stage runs once per message.

    - RECEIVED: in the web process as the message is stored; the rules only (no model).
    - PREPARED: in the worker before answering; the rules with the embedding model.
    - ANSWERED: in the worker once the answer is composed; the answer's outcome and the
      failures in a row (the message itself was judged by the two stages before).
    """

    RECEIVED = "received"
    PREPARED = "prepared"
    ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class PastTurn:
    """One earlier visible message of the conversation."""

    role: str  # customer / bot / agent / system
    text: str
    action: str = ""  # bot only: answer / extractive / escalate
    # bot: the answer pipeline's reason (low_confidence, grounded, ...); system: its LineKind.
    reason: str = ""
    feedback: str | None = None  # bot only: "up" / "down" / None


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """The bot answer just composed for the new message (None before answering)."""

    action: str  # answer / extractive / escalate
    reason: str  # low_confidence / grounded / ungrounded_generation / extractive_only / ...
    grounded: bool = True


@dataclass(frozen=True, slots=True)
class TopicRule:
    """An admin-configured sensitive topic, frozen for the decision."""

    name: str
    keywords: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()
    amount_threshold: Decimal | None = None
    customer_message: str = ""


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Tunable limits. Embedding thresholds are cosine similarities of all-MiniLM-L6-v2."""

    failures_in_a_row: int = 2
    # VADER compound score (-1..1) at or below which a message counts as strongly negative.
    negative_sentiment: float = -0.7
    # A customer message at least this similar to an earlier answered one is a repeat.
    repeat_similarity: float = 0.9
    # Closeness to the "asks for a person" example phrasings, and the lead it needs over the
    # closest near-miss phrasing ("contact hours", "user agent"...). Tuned in bench/escalation.py.
    request_similarity: float = 0.6
    request_margin: float = 0.1
    # Closeness to a sensitive topic's example phrasings.
    topic_similarity: float = 0.75


@dataclass(frozen=True, slots=True)
class ConversationState:
    """Everything the decision looks at: the new customer message and what came before."""

    text: str
    turns: tuple[PastTurn, ...] = ()
    topics: tuple[TopicRule, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    answer: AnswerOutcome | None = None


@dataclass(frozen=True, slots=True)
class EscalationDecision:
    escalate: bool
    reasons: tuple[str, ...]
    # Shown to the customer as a system message (sensitive topics); "" for none.
    customer_message: str = ""
    # Names of the matched sensitive topics (for agents and reports).
    topics: tuple[str, ...] = ()
