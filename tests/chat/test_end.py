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


# --- the end-of-chat rating: the service ---------------------------------------------------------
def _resolved(**kw: Any) -> Conversation:
    return ConversationFactory(status=Conversation.Status.RESOLVED, **kw)


@pytest.mark.django_db
def test_a_rating_of_an_ended_conversation_is_stored_with_its_comment() -> None:
    conv = _resolved()
    rated = conversations.conversation_rate(
        conversation_id=conv.pk, rating=4, comment="  Quick and friendly.\r\nThanks  "
    )
    conv.refresh_from_db()
    assert (conv.rating, conv.rating_comment) == (4, "Quick and friendly.\nThanks")
    assert conv.rated_at is not None and rated.rated_at == conv.rated_at


@pytest.mark.django_db
def test_rating_again_replaces_the_earlier_rating() -> None:
    conv = _resolved()
    conversations.conversation_rate(conversation_id=conv.pk, rating=2, comment="slow")
    first = Conversation.objects.get(pk=conv.pk).rated_at
    conversations.conversation_rate(conversation_id=conv.pk, rating=5)
    conv.refresh_from_db()
    assert (conv.rating, conv.rating_comment) == (5, "")
    assert conv.rated_at is not None and first is not None and conv.rated_at >= first


@pytest.mark.django_db
@pytest.mark.parametrize("rating", [0, 6, -1, True, 3.5, "4", None])
def test_a_rating_outside_1_to_5_is_refused(rating: Any) -> None:
    conv = _resolved()
    with pytest.raises(SupportError) as info:
        conversations.conversation_rate(conversation_id=conv.pk, rating=rating)
    assert info.value.code == "invalid_rating"
    assert "1 to 5" in info.value.message
    assert Conversation.objects.get(pk=conv.pk).rating is None


@pytest.mark.django_db
def test_a_too_long_or_control_character_comment_is_refused() -> None:
    conv = _resolved()
    cap = conversations.RATING_COMMENT_MAX_CHARS
    conversations.conversation_rate(conversation_id=conv.pk, rating=3, comment="x" * cap)
    for comment in ("x" * (cap + 1), "bad\x07bell"):
        with pytest.raises(SupportError) as info:
            conversations.conversation_rate(conversation_id=conv.pk, rating=1, comment=comment)
        assert info.value.code == "invalid_rating"
    conv.refresh_from_db()
    assert (conv.rating, len(conv.rating_comment)) == (3, cap)  # the refused ones changed nothing


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["bot", "queued", "agent"])
def test_a_conversation_that_has_not_ended_cannot_be_rated(status: str) -> None:
    conv = ConversationFactory(status=status)
    with pytest.raises(SupportError) as info:
        conversations.conversation_rate(conversation_id=conv.pk, rating=5)
    assert info.value.code == "not_resolved"
    assert Conversation.objects.get(pk=conv.pk).rating is None


@pytest.mark.django_db
def test_the_welcome_frame_carries_the_rating() -> None:
    conv = _resolved()
    token = conversations.conversation_token(conv.pk)
    assert conversations.conversation_open(token=token).frame["rating"] is None
    conversations.conversation_rate(conversation_id=conv.pk, rating=4)
    welcome = conversations.conversation_open(token=token).frame
    assert welcome["status"] == "resolved" and welcome["rating"] == 4


# --- the end-of-chat rating: the socket ----------------------------------------------------------
async def _end(conversation_id: str) -> None:
    await Conversation.objects.filter(pk=UUID(hex=conversation_id)).aupdate(
        status=Conversation.Status.RESOLVED
    )


@pytest.mark.django_db(transaction=True)
async def test_rate_frame_is_stored_and_acknowledged() -> None:
    comm = await ws.connect()
    welcome = await _hello(comm)
    await _end(welcome["conversation_id"])
    await comm.send_json_to({"type": "rate", "rating": 4, "comment": "Sorted in minutes"})
    assert await comm.receive_json_from(timeout=5) == {"type": "ack", "for": "rate", "rating": 4}
    await comm.send_json_to({"type": "rate", "rating": 5})
    assert await comm.receive_json_from(timeout=5) == {"type": "ack", "for": "rate", "rating": 5}
    assert await comm.receive_nothing(timeout=0.3)
    conv = await Conversation.objects.aget(pk=UUID(hex=welcome["conversation_id"]))
    assert (conv.rating, conv.rating_comment) == (5, "")
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_bad_rate_frames_get_error_frames_and_the_socket_keeps_serving() -> None:
    comm = await ws.connect()
    await comm.send_json_to({"type": "rate", "rating": 5})
    assert (await comm.receive_json_from(timeout=5))["code"] == "not_started"
    welcome = await _hello(comm)
    # Before the end: refused.
    await comm.send_json_to({"type": "rate", "rating": 5})
    err = await comm.receive_json_from(timeout=5)
    assert (err["type"], err["code"], err["for"]) == ("error", "not_resolved", "rate")
    await _end(welcome["conversation_id"])
    bad: list[tuple[dict[str, Any], str]] = [
        ({"type": "rate"}, "bad_frame"),
        ({"type": "rate", "rating": "5"}, "bad_frame"),
        ({"type": "rate", "rating": True}, "bad_frame"),
        ({"type": "rate", "rating": 4.5}, "bad_frame"),
        ({"type": "rate", "rating": 9}, "invalid_rating"),
        ({"type": "rate", "rating": 0}, "invalid_rating"),
        ({"type": "rate", "rating": 3, "comment": 12}, "bad_frame"),
        ({"type": "rate", "rating": 3, "comment": "y" * 1001}, "invalid_rating"),
        ({"type": "rate", "rating": 3, "comment": "nul\x00"}, "bad_frame"),
    ]
    for frame, code in bad:
        await comm.send_json_to(frame)
        err = await comm.receive_json_from(timeout=5)
        assert err["type"] == "error" and err["code"] == code, (frame, err)
        assert err["for"] == "rate" and err["message"], err
    await comm.send_json_to({"type": "ping"})
    assert (await comm.receive_json_from(timeout=5))["type"] == "pong"
    assert (await Conversation.objects.aget(pk=UUID(hex=welcome["conversation_id"]))).rating is None
    await comm.disconnect()
