"""Celery tasks: retry and time-limit wrappers around one service call each."""

from __future__ import annotations

from uuid import UUID

from celery import shared_task

from . import agents, knowledge, replies
from .conf import get_support_settings
from .exceptions import GenerationUnavailable


@shared_task(
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
)
def document_ingest_task(*, document_id: int) -> str:
    return knowledge.document_ingest(document_id=document_id).status


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def index_rebuild_task() -> int:
    return knowledge.index_rebuild().version


@shared_task(
    acks_late=True,
    soft_time_limit=120,
    time_limit=150,
    autoretry_for=(GenerationUnavailable,),
    retry_backoff=2,
    retry_backoff_max=30,
    max_retries=3,
)
def reply_generate_task(*, message_id: int) -> str:
    return replies.reply_generate(
        message_id=message_id, delta_interval_s=get_support_settings().delta_interval_s
    )


@shared_task(acks_late=True, soft_time_limit=120, time_limit=150)
def suggested_reply_task(*, conversation_id: str, agent_id: int) -> bool:
    suggestion = agents.suggested_reply_publish(
        conversation_id=UUID(hex=conversation_id), agent_id=agent_id
    )
    return suggestion is not None
