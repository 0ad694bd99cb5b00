"""Celery tasks: retry and time-limit wrappers around one service call each."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from celery import shared_task
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import jobs, knowledge, outcomes, replies, reports
from .conf import get_support_settings
from .exceptions import GenerationUnavailable
from .handoff import agents

# Transient failures worth another try: the model backend, a restarting PostgreSQL or Redis.
TRANSIENT_ERRORS = (
    GenerationUnavailable,
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
)


# Ingestion tasks: redelivered if the worker dies, retried on I/O errors (a document is
# re-runnable: a half-done one is never left indexed).
_INGEST_TASK: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (OSError,),
    "retry_backoff": True,
    "max_retries": 3,
}


@shared_task(name=jobs.DOCUMENT_INGEST, soft_time_limit=600, time_limit=660, **_INGEST_TASK)
def document_ingest_task(*, document_id: int) -> str:
    return knowledge.document_ingest(document_id=document_id).status


# A batch of up to knowledge.INGEST_TASK_DOCUMENTS documents: a longer limit than one
# document's. Documents stored before a time-out stay READY; the rest stay re-runnable.
@shared_task(name=jobs.DOCUMENTS_INGEST, soft_time_limit=1800, time_limit=1860, **_INGEST_TASK)
def documents_ingest_task(*, document_ids: list[int]) -> list[str]:
    return [o.status for o in knowledge.documents_ingest(document_ids=document_ids)]


@shared_task(name=jobs.INDEX_REBUILD, acks_late=True, soft_time_limit=600, time_limit=660)
def index_rebuild_task() -> int:
    return knowledge.index_rebuild().version


# Redelivered when its worker dies (acks_late + reject_on_worker_lost) and retried on transient
# errors: reply_generate is idempotent. The time limits hold under the prefork pool only; the
# outcome watchdog covers a hung thread. docs/operations.md has the whole picture.
@shared_task(
    name=jobs.REPLY_GENERATE,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=120,
    time_limit=150,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=30,
    max_retries=3,
)
def reply_generate_task(self: Any, *, message_id: int) -> str:
    return replies.reply_generate(
        message_id=message_id,
        delta_interval_s=get_support_settings().delta_interval_s,
        attempt=self.request.id,
    )


# Periodic (CELERY_BEAT_SCHEDULE); safe to run concurrently, so a duplicate beat does no harm.
@shared_task(name=jobs.OUTCOMES_CHECK, acks_late=True, soft_time_limit=60, time_limit=90)
def outcomes_check_task() -> dict[str, object]:
    return outcomes.outcomes_check().as_dict()


@shared_task(name=jobs.SUGGESTED_REPLY, acks_late=True, soft_time_limit=120, time_limit=150)
def suggested_reply_task(*, conversation_id: str, agent_id: int) -> bool:
    suggestion = agents.suggested_reply_publish(
        conversation_id=UUID(hex=conversation_id), agent_id=agent_id
    )
    return suggestion is not None


# --- Integrations (issue 17): webhooks, e-mail, answers over the API ------------------------
# A delivery attempt holds a lease; a redelivered task of a killed worker finds the lease and
# leaves the retry to the sweep, so one Webhook-Id is never sent twice at once.
@shared_task(name=jobs.WEBHOOK_DELIVER, acks_late=True, soft_time_limit=90, time_limit=120)
def webhook_deliver_task(*, delivery_id: int, manual: bool = False) -> str:
    from .webhooks.delivery import delivery_attempt

    return delivery_attempt(delivery_id=delivery_id, manual=manual).outcome


@shared_task(name=jobs.WEBHOOKS_SWEEP, acks_late=True, soft_time_limit=60, time_limit=90)
def webhooks_sweep_task() -> int:
    from .api.idempotency import idempotency_purge
    from .webhooks.delivery import deliveries_sweep

    idempotency_purge()
    return deliveries_sweep()


@shared_task(
    name=jobs.MAIL_SEND,
    acks_late=True,
    soft_time_limit=120,
    time_limit=150,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    max_retries=3,
)
def mail_send_task(*, email_id: int) -> str:
    from .mail.outbound import email_send

    return email_send(email_id=email_id)


@shared_task(name=jobs.MAIL_OUTBOX_SWEEP, acks_late=True, soft_time_limit=60, time_limit=90)
def mail_outbox_sweep_task() -> int:
    from .mail.outbound import mail_outbox_sweep

    return mail_outbox_sweep()


# One poll at a time per mailbox (a cache lock); a failed poll is simply the next one's work.
@shared_task(name=jobs.IMAP_POLL, acks_late=True, soft_time_limit=120, time_limit=150)
def imap_poll_task() -> dict[str, object] | None:
    from .mail.imap import imap_poll

    result = imap_poll()
    return result.as_dict() if result is not None else None


@shared_task(name=jobs.ASK_ANSWER, soft_time_limit=120, time_limit=150)
def ask_answer_task(*, request_id: str, question: str, history: list[dict[str, str]]) -> str:
    from .ask import ask_publish

    return ask_publish(request_id=request_id, question=question, history=history)


# --- Learning (issue 14): examples from resolved conversations and rated answers ------------
# Idempotent (one example per answer message), so redelivery and retries are harmless. They
# embed the answer to infer its grounding: routed with ingestion (support.ingest).
_EXAMPLE_TASK: dict[str, Any] = {
    "acks_late": True,
    "soft_time_limit": 120,
    "time_limit": 150,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "max_retries": 3,
}


@shared_task(name=jobs.EXAMPLES_FROM_CONVERSATION, **_EXAMPLE_TASK)
def examples_from_conversation_task(*, conversation_id: str) -> int | None:
    from .learning.examples import examples_from_conversation

    example = examples_from_conversation(conversation_id=UUID(hex=conversation_id))
    return example.pk if example is not None else None


@shared_task(name=jobs.EXAMPLE_FROM_FEEDBACK, **_EXAMPLE_TASK)
def example_from_feedback_task(*, message_id: int) -> int | None:
    from .learning.examples import example_from_feedback

    example = example_from_feedback(message_id=message_id)
    return example.pk if example is not None else None


# Periodic (CELERY_BEAT_SCHEDULE): the report's daily rollup; a repeated run only recomputes.
@shared_task(name=jobs.REPORT_ROLLUP, acks_late=True, soft_time_limit=300, time_limit=360)
def report_rollup_task() -> dict[str, object]:
    return reports.report_rollup_run().as_dict()


# Queue "training" (its own worker, concurrency 1, niced). Not acks_late: a run whose worker
# died is not redelivered (its lock expires; the next run starts afresh). A soft time-out fails
# the run like any error: nothing served changes before its promotion step.
@shared_task(name=jobs.SPECIALISE, soft_time_limit=3600, time_limit=3660)
def specialise_task(*, run_id: int) -> str:
    # Any kind of run (dispatched by the run's kind): here, niced, in a training worker; in a
    # child process when this process also serves the chat (support/learning/training_process).
    from .learning.training_process import training_run

    return training_run(run_id=run_id)


# Periodic (CELERY_BEAT_SCHEDULE, nightly): starts a run when on and enough examples are new;
# skips while a run holds the lock. Light (a few queries): the default queue.
@shared_task(name=jobs.SPECIALISE_NIGHTLY, acks_late=True, soft_time_limit=60, time_limit=90)
def specialise_nightly_task() -> dict[str, object]:
    from .learning.nightly import specialise_nightly

    return specialise_nightly().as_dict()


# The chat model (docs/learning.md): training (<= 60 min for 1,000 examples), two exports and
# their checks, and the gate answering every held-back question with both models. Not retried,
# not redelivered, as above; a killed run's checkpoints let the next run resume the training.
@shared_task(name=jobs.SPECIALISE_MODEL, soft_time_limit=7200, time_limit=7260)
def specialise_model_task(*, run_id: int) -> str:
    from .learning.training_process import training_run

    return training_run(run_id=run_id)


# Knowledge gaps (docs/reports.md): a failure is stored on the run or the draft, not raised.
@shared_task(name=jobs.GAPS_RUN, acks_late=True, soft_time_limit=600, time_limit=660)
def gaps_run_task(*, run_id: int) -> str | None:
    from .reports.articles import gaps_run_execute

    run = gaps_run_execute(run_id=run_id)
    return run.state if run is not None else None


# Periodic (CELERY_BEAT_SCHEDULE, nightly): queues a gaps run unless off or one is pending.
@shared_task(name=jobs.GAPS_NIGHTLY, acks_late=True, soft_time_limit=60, time_limit=90)
def gaps_nightly_task() -> int | None:
    from .reports.articles import gaps_run_scheduled

    run = gaps_run_scheduled()
    return run.pk if run is not None else None


@shared_task(name=jobs.ARTICLE_DRAFT_WRITE, acks_late=True, soft_time_limit=300, time_limit=330)
def article_draft_write_task(*, draft_id: int) -> str | None:
    from .reports.articles import article_draft_write

    draft = article_draft_write(draft_id=draft_id)
    return draft.state if draft is not None else None
