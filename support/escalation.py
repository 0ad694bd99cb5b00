"""When a person should take over: a pure decision, and the service that hands over."""

from __future__ import annotations

import re
import statistics
import unicodedata
from dataclasses import dataclass
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from . import events
from .models import Conversation, Escalation, Message
from .streaming import cancel_request

CUSTOMER_REQUEST = Escalation.Reason.CUSTOMER_REQUEST.value

# Asking for a person, in the languages we support. Each pattern needs a request verb or
# phrase AND a person noun, so "our agent network" or "human resources" do not trigger.
_PERSON = (
    r"(?:human|person|people|someone|somebody|agent|representative|rep|operator|advisor|"
    r"staff|employee|support team|customer service|live chat|real one)"
)
_REQUEST_PATTERNS = [
    rf"\b(?:talk|speak|chat|connect|transfer|put|get|give)\b[^.?!]{{0,30}}\b(?:to|with|me)\b[^.?!]{{0,20}}\b(?:a |an |the |your |some |real |live |actual )*{_PERSON}\b",  # noqa: E501
    r"\b(?:real|live|actual)\s+(?:human|person|agent|people|operator)\b",
    r"\b(?:want|need|request|prefer|demand)\b[^.?!]{0,20}\b(?:a |an |the |to talk to a |to speak to a |to speak with a )?(?:human|person|real person|agent|representative|operator)\b",  # noqa: E501
    r"^\s*(?:human|agent|operator|representative|person)(?:\s+please)?[\s!.]*$",
    r"\b(?:agent|human|operator|representative)\s+(?:please|pls|now)\b",
    r"\bnot\s+(?:a|this|the)\s+(?:bot|robot|machine)\b",
    r"\bstop\s+(?:the\s+)?bot\b",
    # German, French, Spanish, Dutch, Italian, Portuguese
    r"\b(?:mitarbeiter|menschen|mensch|kundendienst)\b.*\b(?:sprechen|reden|bitte)\b",
    r"\b(?:parler|discuter)\b.*\b(?:humain|conseiller|agent|personne)\b",
    r"\b(?:hablar|comunicar)\b.*\b(?:humano|persona|agente|asesor)\b",
    r"\b(?:spreken|praten)\b.*\b(?:mens|medewerker)\b",
    r"\b(?:parlare)\b.*\b(?:operatore|persona|umano)\b",
    r"\b(?:falar)\b.*\b(?:humano|atendente|pessoa)\b",
]
_REQUEST_RE = [re.compile(p, re.IGNORECASE) for p in _REQUEST_PATTERNS]
_NOT_A_REQUEST = re.compile(
    r"\b(?:human resources|travel agent|agent number|become an agent|user agent|"
    r"real estate agent|insurance agent)\b",
    re.IGNORECASE,
)


def _normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", text).strip()


def asks_for_person(text: str) -> bool:
    """True when the message asks to talk to a person (rules; pure)."""
    norm = _normalise(text)
    if not norm:
        return False
    stripped = _NOT_A_REQUEST.sub(" ", norm)
    return any(p.search(stripped) for p in _REQUEST_RE)


@dataclass(frozen=True, slots=True)
class EscalationDecision:
    escalate: bool
    reasons: tuple[str, ...]


def escalation_decide(*, text: str) -> EscalationDecision:
    """Escalation rules for one customer message (pure; no I/O)."""
    reasons: list[str] = []
    if asks_for_person(text):
        reasons.append(CUSTOMER_REQUEST)
    return EscalationDecision(bool(reasons), tuple(reasons))


DEFAULT_WAIT_MINUTES = 5


def usual_wait_minutes() -> int:
    """Median wait of the last 20 claimed escalations, in whole minutes (at least 1)."""
    recent = Escalation.objects.filter(claimed_at__isnull=False).order_by("-claimed_at")[:20]
    waits = [(e.claimed_at - e.created_at).total_seconds() / 60 for e in recent if e.claimed_at]
    if not waits:
        return DEFAULT_WAIT_MINUTES
    return max(1, round(statistics.median(waits)))


def queue_position(escalation: Escalation) -> int:
    return (
        Escalation.objects.filter(
            state=Escalation.State.OPEN, created_at__lte=escalation.created_at
        )
        .exclude(pk=escalation.pk)
        .count()
        + 1
    )


def queued_status_payload(escalation: Escalation) -> dict[str, object]:
    position = queue_position(escalation)
    wait = usual_wait_minutes()
    return {
        "status": Conversation.Status.QUEUED.value,
        "queue_position": position,
        "wait_minutes": wait,
        "agent_name": None,
        "text": (
            f"A person will join shortly — you are number {position} in the queue, "
            f"usual wait about {wait} minute{'s' if wait != 1 else ''}."
        ),
    }


def conversation_escalate(
    *, conversation_id: UUID, reasons: tuple[str, ...], trigger_message_id: int | None = None
) -> Escalation:
    """Queue the conversation for a person (idempotent while one is live); the bot goes silent."""
    with transaction.atomic():
        conv = Conversation.objects.select_for_update().get(pk=conversation_id)
        live = conv.escalations.filter(
            state__in=(Escalation.State.OPEN, Escalation.State.CLAIMED)
        ).first()
        if live is not None:
            merged = list(dict.fromkeys([*live.reasons, *reasons]))
            if merged != live.reasons:
                live.reasons = merged
                live.save(update_fields=["reasons"])
            return live
        escalation = Escalation.objects.create(
            conversation=conv, reasons=list(reasons), trigger_message_id=trigger_message_id
        )
        conv.status = Conversation.Status.QUEUED
        conv.save(update_fields=["status", "updated_at"])
        # An answer still being written stops at its next token.
        transaction.on_commit(lambda: cancel_request(conversation_id=conversation_id))
        payload = queued_status_payload(escalation)
        events.group_send_on_commit(
            events.conversation_group(conv.pk), events.status_changed(payload)
        )
        events.group_send_on_commit(
            events.AGENTS_GROUP,
            {
                "type": events.QUEUE_CHANGED,
                "payload": {"type": "queue", "at": timezone.now().isoformat()},
            },
        )
    return escalation


def status_payload(conversation: Conversation) -> dict[str, object]:
    """What the customer sees about who has the conversation now."""
    if conversation.status == Conversation.Status.QUEUED:
        live = conversation.escalations.filter(state=Escalation.State.OPEN).first()
        if live is not None:
            return queued_status_payload(live)
    agent = conversation.assigned_agent
    agent_name = (agent.get_short_name() or agent.get_username()) if agent else None
    texts = {
        Conversation.Status.BOT: "",
        Conversation.Status.QUEUED: "A person will join shortly.",
        Conversation.Status.AGENT: f"{agent_name or 'An agent'} joined the conversation.",
        Conversation.Status.RESOLVED: "This conversation is resolved.",
    }
    return {
        "status": conversation.status,
        "queue_position": None,
        "wait_minutes": None,
        "agent_name": agent_name if conversation.status == Conversation.Status.AGENT else None,
        "text": texts.get(Conversation.Status(conversation.status), ""),
    }


def bot_may_answer(conversation: Conversation, message: Message) -> bool:
    return conversation.status == Conversation.Status.BOT and message.role == Message.Role.CUSTOMER
