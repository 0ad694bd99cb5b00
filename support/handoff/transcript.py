"""The transcript's system lines: what the customer is told about who has the conversation.

Every hand-over, claim, hand back and end is a visible system message (`Message.role` SYSTEM,
`Message.reason` its `LineKind`), written in the transaction of the change it reports and
broadcast on commit to the customer and to agents. None of them is an answer
(`support.answered`), a customer turn or history for the model (`support.replies`), a
failure (`escalation_rules.failures_in_a_row`) or a `message.created` webhook
(`support.webhooks.outbox`).
"""

from __future__ import annotations

from typing import Any

from .. import events
from ..models import Conversation, Message
from .escalation_rules import LineKind

__all__ = [
    "ACK_TEXT",
    "ENDED_TEXT",
    "QUEUED_TEXT",
    "LineKind",
    "ack_due",
    "claimed_text",
    "handed_back_text",
    "transcript_line_post",
]

QUEUED_TEXT = "Waiting for a person — you're in the queue."
ACK_TEXT = "Thanks — a person will see this when they join."
ENDED_TEXT = "This conversation has ended."


def claimed_text(agent_name: str) -> str:
    return f"You're now talking to {agent_name}."


def handed_back_text(agent_name: str) -> str:
    return f"{agent_name} handed you back to the assistant."


def transcript_line_post(
    *, conversation: Conversation, kind: LineKind, text: str, author: Any = None
) -> Message:
    """A system line the customer and agents see (broadcast on commit). Call it inside the
    transaction that holds the conversation's lock, so lines keep the order of the changes."""
    line = Message.objects.create(
        conversation=conversation,
        role=Message.Role.SYSTEM,
        text=text,
        reason=kind.value,
        author=author,
    )
    created = events.message_created(line)
    events.group_send_on_commit(events.conversation_group(conversation.pk), created)
    events.group_send_on_commit(events.AGENTS_GROUP, created)
    return line


def ack_due(*, conversation: Conversation, message: Message) -> bool:
    """True when customer `message`, sent while the conversation waits in the queue, opens a
    run of queued messages: the latest visible line before it that is not the customer's is no
    acknowledgement. One acknowledgement per run; an agent's message or another line (claimed,
    queued again...) ends the run."""
    if conversation.status != Conversation.Status.QUEUED:
        return False
    previous = (
        conversation.messages.filter(internal=False, pk__lt=message.pk)
        .exclude(role=Message.Role.CUSTOMER)
        .order_by("-pk")
        .values_list("role", "reason")
        .first()
    )
    return previous != (Message.Role.SYSTEM, LineKind.ACK)
