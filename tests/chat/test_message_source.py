"""The message object's `source` (docs/protocol.md): where a bot answer's words come from."""

from __future__ import annotations

import pytest

from support.events import message_payload
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "trace", "expected"),
    [
        ("bot", {"source": "learned"}, "learned"),
        ("bot", {"source": "knowledge_base"}, "knowledge_base"),
        ("bot", {}, None),  # stored before traces recorded a source
        ("customer", {"source": "learned"}, None),
        ("agent", {}, None),
    ],
)
def test_source_is_the_traced_source_of_bot_messages_only(
    role: str, trace: dict[str, str], expected: str | None
) -> None:
    message = MessageFactory(conversation=ConversationFactory(), role=role, text="x", trace=trace)
    assert message_payload(message)["source"] == expected
