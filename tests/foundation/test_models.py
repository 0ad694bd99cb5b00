import pytest
from django.db import IntegrityError, transaction

from support.models import Escalation, Message
from tests.factories import ConversationFactory, KnowledgeDocumentFactory, MessageFactory

pytestmark = pytest.mark.django_db


def test_conversation_public_id_is_random_uuid4() -> None:
    a, b = ConversationFactory(), ConversationFactory()
    assert a.id != b.id
    assert a.id.version == 4
    assert a.status == "bot"


def test_duplicate_client_id_in_one_conversation_is_rejected() -> None:
    conv = ConversationFactory()
    MessageFactory(conversation=conv, client_id="c-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(conversation=conv, client_id="c-1")
    assert Message.objects.filter(conversation=conv).count() == 1


def test_same_client_id_in_other_conversation_and_missing_ids_are_allowed() -> None:
    MessageFactory(client_id="c-1")
    MessageFactory(client_id="c-1")
    conv = ConversationFactory()
    MessageFactory(conversation=conv, client_id=None)
    MessageFactory(conversation=conv, client_id=None)
    assert Message.objects.filter(client_id="c-1").count() == 2
    assert Message.objects.filter(conversation=conv).count() == 2


def test_at_most_one_bot_reply_per_customer_message() -> None:
    question = MessageFactory()
    MessageFactory(conversation=question.conversation, role="bot", in_reply_to=question)
    with pytest.raises(IntegrityError), transaction.atomic():
        MessageFactory(conversation=question.conversation, role="bot", in_reply_to=question)
    # An agent may still answer the same question.
    MessageFactory(conversation=question.conversation, role="agent", in_reply_to=question)


def test_one_live_escalation_per_conversation() -> None:
    conv = ConversationFactory()
    Escalation.objects.create(conversation=conv, reasons=["customer_request"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Escalation.objects.create(conversation=conv, reasons=["frustration"])
    Escalation.objects.filter(conversation=conv).update(state="resolved")
    Escalation.objects.create(conversation=conv, reasons=["frustration"])
    assert conv.escalations.count() == 2


def test_duplicate_document_checksum_is_rejected() -> None:
    doc = KnowledgeDocumentFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        KnowledgeDocumentFactory(checksum=doc.checksum)


def test_uploaded_file_is_stored_under_a_generated_name() -> None:
    doc = KnowledgeDocumentFactory(original_filename="../../etc/passwd.md")
    assert doc.file.name.startswith("documents/")
    assert "passwd" not in doc.file.name and ".." not in doc.file.name
    assert doc.file.name.endswith(".md")
