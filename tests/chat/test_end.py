"""The end of a conversation: no thumbs on declines (service and socket)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from channels.db import database_sync_to_async

from support import conversations
from support.exceptions import SupportError
from support.models import Conversation, Feedback, Message
from tests import ws
from tests.factories import ConversationFactory, MessageFactory


def _answer_and_decline(conv: Conversation) -> tuple[Message, Message]:
    q1 = MessageFactory(conversation=conv, text="How do I reset my router?")
    answer = MessageFactory(
        conversation=conv, role="bot", text="Hold reset.", action="answer", in_reply_to=q1
    )
    q2 = MessageFactory(conversation=conv, text="What is the capital of France?")
    decline = MessageFactory(
        conversation=conv,
        role="bot",
        text="I'm not sure about that — could you rephrase, or shall I get a person?",
        action="escalate",
        in_reply_to=q2,
    )
    return answer, decline


# --- feedback on declines: the service -----------------------------------------------------------
@pytest.mark.django_db
def test_feedback_on_a_decline_is_refused_and_nothing_is_stored() -> None:
    conv = ConversationFactory()
    answer, decline = _answer_and_decline(conv)
    with pytest.raises(SupportError) as info:
        conversations.feedback_set(conversation_id=conv.pk, message_id=decline.pk, value="down")
    assert info.value.code == "not_an_answer"
    assert not Feedback.objects.exists()
    # An answer of the same conversation still takes thumbs.
    conversations.feedback_set(conversation_id=conv.pk, message_id=answer.pk, value="up")
    assert Feedback.objects.get().message_id == answer.pk


# --- feedback on declines: the socket ------------------------------------------------------------
async def _hello(comm: Any) -> dict[str, Any]:
    return await ws.hello(comm)


@pytest.mark.django_db(transaction=True)
async def test_feedback_frame_on_a_decline_gets_an_error_frame() -> None:
    comm = await ws.connect()
    welcome = await _hello(comm)
    conv = await Conversation.objects.aget(pk=UUID(hex=welcome["conversation_id"]))
    answer, decline = await database_sync_to_async(_answer_and_decline)(conv)

    await comm.send_json_to({"type": "feedback", "message_id": decline.pk, "value": "up"})
    err = await comm.receive_json_from(timeout=5)
    assert err["type"] == "error" and err["code"] == "not_an_answer", err
    assert "cannot be rated" in err["message"]
    await comm.send_json_to({"type": "feedback", "message_id": answer.pk, "value": "up"})
    ack = await comm.receive_json_from(timeout=5)
    assert ack == {"type": "ack", "for": "feedback", "message_id": answer.pk}
    assert await comm.receive_nothing(timeout=0.3)
    assert [f.message_id async for f in Feedback.objects.all()] == [answer.pk]
    await comm.disconnect()
