"""Celery tasks: retry and time-limit wrappers around one service call each."""

from __future__ import annotations

from celery import shared_task

from . import knowledge


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
