"""Several quick messages get one answer; a redelivered task never stores a second one."""

from __future__ import annotations

import pytest

from support import replies
from support.conversations import conversation_start
from support.models import Message
from tests.fakes import FakeChatModel

pytestmark = pytest.mark.django_db(transaction=True)


def test_burst_of_messages_gets_one_answer_covering_all(chat_env: FakeChatModel) -> None:
    conv = conversation_start()
    first = Message.objects.create(
        conversation=conv, role="customer", text="Hi, my router", client_id="m1"
    )
    second = Message.objects.create(
        conversation=conv, role="customer", text="how do I reset it?", client_id="m2"
    )
    # The earlier task finds a newer message and leaves the answer to that one's task.
    assert replies.reply_generate(message_id=first.pk) == "superseded"
    assert replies.reply_generate(message_id=second.pk) == "stored"
    assert chat_env.calls == 1
    assert "Hi, my router how do I reset it?" in chat_env.prompts[-1]
    # Redelivery of either task changes nothing.
    assert replies.reply_generate(message_id=second.pk) == "superseded"
    assert replies.reply_generate(message_id=first.pk) == "superseded"
    assert Message.objects.filter(conversation=conv, role="bot").count() == 1
