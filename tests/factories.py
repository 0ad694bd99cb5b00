from __future__ import annotations

import hashlib

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile

from support import roles
from support.models import Conversation, KnowledgeDocument, Message
from support.retrieval import Passage


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @factory.post_generation
    def groups(self, create: bool, extracted: list[str] | None, **kwargs: object) -> None:
        if create and extracted:
            roles.roles_ensure()
            for name in extracted:
                self.groups.add(Group.objects.get(name=name))
        self.save()


def agent_user(**kwargs: object):  # type: ignore[no-untyped-def]
    return UserFactory(groups=[roles.SUPPORT_AGENTS], **kwargs)


def knowledge_admin_user(**kwargs: object):  # type: ignore[no-untyped-def]
    return UserFactory(groups=[roles.KNOWLEDGE_ADMINS], **kwargs)


class ConversationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Conversation


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    conversation = factory.SubFactory(ConversationFactory)
    role = Message.Role.CUSTOMER
    text = factory.Sequence(lambda n: f"Question number {n}?")


class KnowledgeDocumentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KnowledgeDocument

    class Params:
        content = factory.Sequence(lambda n: f"# Doc {n}\n\nSome text {n}.\n".encode())

    title = factory.Sequence(lambda n: f"Doc {n}")
    original_filename = factory.Sequence(lambda n: f"doc{n}.md")
    file = factory.LazyAttribute(lambda d: ContentFile(d.content, name=d.original_filename))
    checksum = factory.LazyAttribute(lambda d: hashlib.sha256(d.content).hexdigest())
    size_bytes = factory.LazyAttribute(lambda d: len(d.content))
    file_format = "md"


def passage(
    n: int,
    text: str,
    *,
    rank: int | None = None,
    heading: tuple[str, ...] = (),
    score: float | None = None,
) -> Passage:
    """A retrieved passage of document n (chunk n) for pipeline tests: rank n unless given, the
    fused score 1/rank unless given, a middling dense score and a lexical match."""
    rank = n if rank is None else rank
    return Passage(
        chunk_id=n,
        document_id=n,
        filename=f"d{n}.md",
        title=f"Doc {n}",
        source_url="",
        heading_path=heading,
        page=None,
        anchor="",
        text=text,
        score=1.0 / rank if score is None else score,
        dense_score=0.5,
        lexical_score=1.0,
        rank=rank,
    )
