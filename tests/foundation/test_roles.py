import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from support import roles
from tests.factories import (
    ConversationFactory,
    KnowledgeDocumentFactory,
    UserFactory,
    agent_user,
    knowledge_admin_user,
)

pytestmark = pytest.mark.django_db


def _client(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_groups_are_created_by_the_data_migration() -> None:
    names = set(Group.objects.values_list("name", flat=True))
    assert {roles.SUPPORT_AGENTS, roles.KNOWLEDGE_ADMINS} <= names
    for name, codenames in roles.ROLE_PERMISSIONS.items():
        got = set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))
        assert got == set(codenames)


def test_agent_works_conversations_but_cannot_edit_documents() -> None:
    conv = ConversationFactory()
    doc = KnowledgeDocumentFactory()
    client = _client(agent_user())
    assert client.get(reverse("admin:support_conversation_changelist")).status_code == 200
    url = reverse("admin:support_conversation_change", args=[conv.pk])
    assert client.get(url).status_code == 200
    assert client.get(reverse("admin:support_escalation_changelist")).status_code == 200
    # Read-only on the knowledge base: viewing works, adding/deleting does not.
    assert client.get(reverse("admin:support_knowledgedocument_changelist")).status_code == 200
    assert client.get(reverse("admin:support_knowledgedocument_add")).status_code == 403
    delete = reverse("admin:support_knowledgedocument_delete", args=[doc.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    doc.refresh_from_db()


def test_knowledge_admin_manages_documents_but_cannot_read_conversations() -> None:
    conv = ConversationFactory()
    client = _client(knowledge_admin_user())
    assert client.get(reverse("admin:support_knowledgedocument_upload")).status_code == 200
    assert client.get(reverse("admin:support_conversation_changelist")).status_code == 403
    url = reverse("admin:support_conversation_change", args=[conv.pk])
    assert client.get(url).status_code in (302, 403)
    assert client.get(reverse("admin:support_message_changelist")).status_code == 403
    assert client.get(reverse("admin:support_escalation_changelist")).status_code == 403


def test_knowledge_admin_who_is_also_an_agent_reads_conversations() -> None:
    user = UserFactory(groups=[roles.SUPPORT_AGENTS, roles.KNOWLEDGE_ADMINS])
    client = _client(user)
    assert client.get(reverse("admin:support_conversation_changelist")).status_code == 200
    assert client.get(reverse("admin:support_knowledgedocument_upload")).status_code == 200


def test_staff_without_a_role_sees_nothing() -> None:
    client = _client(UserFactory())
    assert client.get(reverse("admin:support_conversation_changelist")).status_code == 403
    assert client.get(reverse("admin:support_knowledgedocument_changelist")).status_code == 403
