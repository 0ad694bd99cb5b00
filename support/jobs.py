"""Background work, queued by task name once the surrounding transaction commits.

Services queue work only through these typed functions, so imports run one way:
`support.tasks` -> services -> `support.jobs` (a leaf: it imports no service and no task
module; the import contract in pyproject.toml and tests/foundation/test_imports.py hold it).
Each task is looked up by its pinned name in the Celery app's registry, so eager mode (tests)
and routing (CELERY_TASK_ROUTES) apply as to any task call.

A broker that refuses a task is logged, not raised (`on_commit(robust=True)`): the change is
committed, and each kind of work has its own way of being picked up again (the outcome
watchdog re-queues answers, a document stays PENDING and can be re-indexed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celery import current_app
from django.db import transaction

# The pinned task names (`name=` in support.tasks): queued work survives a module move.
DOCUMENT_INGEST = "support.tasks.document_ingest_task"
DOCUMENTS_INGEST = "support.tasks.documents_ingest_task"
INDEX_REBUILD = "support.tasks.index_rebuild_task"
REPLY_GENERATE = "support.tasks.reply_generate_task"
OUTCOMES_CHECK = "support.tasks.outcomes_check_task"
SUGGESTED_REPLY = "support.tasks.suggested_reply_task"
# Integrations (issue 17).
WEBHOOK_DELIVER = "support.webhook_deliver"
WEBHOOKS_SWEEP = "support.webhooks_sweep"
MAIL_SEND = "support.mail_send"
MAIL_OUTBOX_SWEEP = "support.mail_outbox_sweep"
IMAP_POLL = "support.imap_poll"
ASK_ANSWER = "support.ask_answer"
# Learning (issue 14).
EXAMPLES_FROM_CONVERSATION = "support.examples_from_conversation"
EXAMPLE_FROM_FEEDBACK = "support.example_from_feedback"
SPECIALISE = "support.specialise"
SPECIALISE_NIGHTLY = "support.specialise_nightly"
SPECIALISE_MODEL = "support.specialise_model"
# Reports (issue 16).
REPORT_ROLLUP = "support.report_rollup"
GAPS_RUN = "support.gaps_run"
GAPS_NIGHTLY = "support.gaps_nightly"
ARTICLE_DRAFT_WRITE = "support.article_draft_write"


def _send(name: str, kwargs: dict[str, Any], countdown: float | None) -> None:
    app = current_app
    if name not in app.tasks:
        # A process that is no worker (the web process, a command) has not imported the task
        # modules yet: Celery's autodiscovery does, once (chatbot/celery.py).
        app.loader.import_default_modules()
    options: dict[str, Any] = {"countdown": countdown} if countdown else {}
    app.tasks[name].apply_async(kwargs=kwargs, **options)


def _on_commit(name: str, countdown: float | None = None, **kwargs: Any) -> None:
    transaction.on_commit(lambda: _send(name, kwargs, countdown), robust=True)


def document_ingest_enqueue(*, document_id: int) -> None:
    """Parse, chunk, embed and index one document."""
    _on_commit(DOCUMENT_INGEST, document_id=document_id)


def documents_ingest_enqueue(*, document_ids: Sequence[int]) -> None:
    """Ingest a group of documents in one embedding pass (see knowledge.documents_ingest)."""
    _on_commit(DOCUMENTS_INGEST, document_ids=list(document_ids))


def index_rebuild_enqueue() -> None:
    """Rebuild and publish the search index from the database."""
    _on_commit(INDEX_REBUILD)


def reply_generate_enqueue(*, message_id: int, countdown: float = 0.0) -> None:
    """Answer a customer message (after `countdown` seconds: the debounce)."""
    _on_commit(REPLY_GENERATE, countdown=countdown or None, message_id=message_id)


def suggested_reply_enqueue(*, conversation_id: str, agent_id: int) -> None:
    """Draft a reply for an agent (conversation id as hex)."""
    _on_commit(SUGGESTED_REPLY, conversation_id=conversation_id, agent_id=agent_id)


def examples_from_conversation_enqueue(*, conversation_id: str) -> None:
    """Make an example of a resolved conversation's agent reply (conversation id as hex)."""
    _on_commit(EXAMPLES_FROM_CONVERSATION, conversation_id=conversation_id)


def example_from_feedback_enqueue(*, message_id: int) -> None:
    """Follow a customer's rating of a bot answer (an example of a helpful one)."""
    _on_commit(EXAMPLE_FROM_FEEDBACK, message_id=message_id)


# --- integrations: webhooks, e-mail, answers over the API ------------------------------------
def webhook_deliver_enqueue(*, delivery_id: int, manual: bool = False) -> None:
    """One attempt at a webhook delivery (`manual`: the redeliver button, no order check)."""
    _on_commit(WEBHOOK_DELIVER, delivery_id=delivery_id, manual=manual)


def mail_send_enqueue(*, email_id: int) -> None:
    """Send a queued e-mail of the e-mail channel."""
    _on_commit(MAIL_SEND, email_id=email_id)


def ask_answer_enqueue(*, request_id: str, question: str, history: list[dict[str, str]]) -> None:
    """Answer a question for a waiting API request. Not deferred to a commit: the request
    waits for the answer on the channel layer and writes nothing."""
    _send(ASK_ANSWER, {"request_id": request_id, "question": question, "history": history}, None)


def specialise_enqueue(*, run_id: int) -> None:
    """Run a queued retriever specialisation (queue `training`)."""
    _on_commit(SPECIALISE, run_id=run_id)


def specialise_model_enqueue(*, run_id: int) -> None:
    """Run a queued chat-model specialisation (queue `training`)."""
    _on_commit(SPECIALISE_MODEL, run_id=run_id)


def gaps_run_enqueue(*, run_id: int) -> None:
    """Embed and cluster the knowledge-gap questions of a requested run."""
    _on_commit(GAPS_RUN, run_id=run_id)


def article_draft_write_enqueue(*, draft_id: int) -> None:
    """Let the chat model propose the text of an article draft."""
    _on_commit(ARTICLE_DRAFT_WRITE, draft_id=draft_id)
