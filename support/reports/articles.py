"""Knowledge gaps in the admin: computing a period's topics in a worker, drafting an article
(an FAQ entry) from a topic's agent answers, and publishing it as a knowledge-base document.

- `gaps_run_request` / `gaps_run_execute`: a run is requested (the page's "Recompute"), then a
  worker (`support.gaps_run`, queue support.ingest) embeds and clusters (support.reports.gaps).
- `article_draft_request` / `article_draft_write`: a draft is created from one topic of a run,
  then a worker (`support.article_draft_write`, queue support.generation) lets the chat model
  propose the text; if it gives none the most typical agent answer stands in.
- `article_save` / `article_publish`: a person edits and publishes; publishing uploads the
  article as a Markdown document through `knowledge.document_upload`, so it is ingested,
  indexed and checked by the golden questions (when there are any) like any other upload.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Final

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from .. import jobs, knowledge
from ..answers.words import content_words
from ..backends import get_chat_model
from ..conf import get_support_settings
from ..exceptions import SupportError
from ..llm import GenerationParams
from ..llm.base import ChatModel
from ..models_gaps import ArticleDraft, GapRun
from ..text import light_stem
from .gaps import GapTopic, gaps_build, period_of

logger = logging.getLogger(__name__)

DRAFT_PROMPT_VERSION: Final = "faq_v1"
DRAFT_MAX_TOKENS: Final = 220
# Answers given to the model, each cut to this many characters (a small model's window).
PROMPT_ANSWERS: Final = 3
PROMPT_ANSWER_CHARS: Final = 600
PROMPT_QUESTIONS: Final = 3
MAX_TITLE_CHARS: Final = 300
MAX_BODY_CHARS: Final = 20_000
# A proposal must stay with what the agents wrote: the share of its distinct content words
# (light-stemmed) found in the topic's answers and questions. The shipped small SmolLM2 model
# wanders off on its own (a password topic drew "no such thing in this world ... day or
# night": 0.24 of its words; a good FAQ answer written from the same answers scores 0.86).
# Below this share the most typical agent answer stands in.
MIN_SUPPORTED_WORDS: Final = 0.75
SYSTEM_PROMPT: Final = (
    "You write entries for a customer-support FAQ. Use only facts from the support agents' "
    "answers. Write two to four plain sentences that answer the question for any customer: "
    "no greeting, no names, no order numbers."
)


class DraftRefused(SupportError):
    code = "draft_refused"


# --- runs -------------------------------------------------------------------------------------
def gaps_run_request(*, days: int | None = None, user: Any = None) -> GapRun:
    """Queue a computation of the last `days` (SUPPORT_GAPS_PERIOD_DAYS) of knowledge gaps."""
    start, end = period_of(days=days)
    with transaction.atomic():
        run = GapRun.objects.create(start=start, end=end, requested_by=user)
        jobs.gaps_run_enqueue(run_id=run.pk)
    return run


def gaps_run_execute(*, run_id: int) -> GapRun | None:
    """Compute a queued run (a worker: it embeds). A failure is stored on the run, not raised."""
    claimed = GapRun.objects.filter(pk=run_id, state=GapRun.State.QUEUED).update(
        state=GapRun.State.RUNNING
    )
    run = GapRun.objects.filter(pk=run_id).first()
    if run is None or not claimed:
        return run
    try:
        report = gaps_build(start=run.start, end=run.end)
    except Exception as exc:  # stored for the page; the worker goes on
        logger.exception("knowledge gaps run %s failed", run_id)
        GapRun.objects.filter(pk=run_id).update(
            state=GapRun.State.FAILED,
            error=(str(exc) or type(exc).__name__)[:2000],
            finished_at=timezone.now(),
        )
        if isinstance(exc, SoftTimeLimitExceeded):
            raise
    else:
        GapRun.objects.filter(pk=run_id).update(
            state=GapRun.State.DONE,
            topics=[t.as_dict() for t in report.topics],
            questions=report.questions,
            previous_questions=report.previous_questions,
            distance_threshold=report.distance_threshold,
            embedder=report.embedder[:200],
            finished_at=timezone.now(),
        )
    run.refresh_from_db()
    return run


def gaps_run_scheduled() -> GapRun | None:
    """Beat's nightly run: queue the default period's computation, unless SUPPORT_GAPS_NIGHTLY
    is off or a run is already queued or running (None then)."""
    if not get_support_settings().gaps_nightly:
        return None
    pending = gaps_run_pending()
    if pending is not None:
        logger.info("nightly knowledge gaps skipped: run %s is %s", pending.pk, pending.state)
        return None
    return gaps_run_request()


def gaps_run_latest() -> GapRun | None:
    """The newest finished run (what the page shows)."""
    return GapRun.objects.filter(state=GapRun.State.DONE).first()


def gaps_run_pending() -> GapRun | None:
    """A run still queued or running, if any (the page says so instead of queuing another)."""
    return GapRun.objects.filter(state__in=(GapRun.State.QUEUED, GapRun.State.RUNNING)).first()


def run_topics(run: GapRun) -> list[GapTopic]:
    return [GapTopic.from_dict(t) for t in run.topics if isinstance(t, Mapping)]


# --- drafting ---------------------------------------------------------------------------------
def article_draft_request(*, run_id: int, topic_index: int, user: Any = None) -> ArticleDraft:
    """Start a draft from one topic of a finished run; the model's proposal follows on commit.

    Raises DraftRefused for an unknown run or topic."""
    run = GapRun.objects.filter(pk=run_id, state=GapRun.State.DONE).first()
    topics = run_topics(run) if run is not None else []
    if run is None or not 0 <= topic_index < len(topics):
        raise DraftRefused("That topic is no longer on the page: recompute and try again.")
    topic = topics[topic_index]
    with transaction.atomic():
        draft = ArticleDraft.objects.create(
            run=run,
            topic=topic.as_dict(),
            title=_title_of(topic.name),
            body=fallback_text(topic),
            state=ArticleDraft.State.WRITING if topic.answers else ArticleDraft.State.DRAFT,
            written_by="" if topic.answers else ArticleDraft.Writer.NONE,
            created_by=user,
        )
        if topic.answers:
            jobs.article_draft_write_enqueue(draft_id=draft.pk)
    return draft


def _title_of(question: str) -> str:
    title = " ".join(question.split())
    return (title[:1].upper() + title[1:])[:MAX_TITLE_CHARS] or "Untitled"


def fallback_text(topic: GapTopic) -> str:
    """The most typical agent answer (the answer to the question closest to the centroid)."""
    return topic.answers[0] if topic.answers else ""


def draft_messages(topic: GapTopic, *, answers: int = PROMPT_ANSWERS) -> list[dict[str, str]]:
    """The short chat prompt (DRAFT_PROMPT_VERSION) that asks for one FAQ answer."""
    asked = "\n".join(f"- {q}" for q in topic.questions[:PROMPT_QUESTIONS])
    answered = "\n".join(f"- {a[:PROMPT_ANSWER_CHARS]}" for a in topic.answers[:answers])
    user = (
        f"Customers asked:\n{asked}\n\nOur support agents answered:\n{answered}\n\n"
        f"Write the FAQ answer to: {topic.name}"
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def article_text_generate(topic: GapTopic, *, model: ChatModel) -> str:
    """The model's proposal for a topic ('' when it wrote nothing usable); raises what the
    backend raises."""
    ids: list[int] = []
    for answers in range(min(PROMPT_ANSWERS, len(topic.answers)), 0, -1):
        prompt = model.render_chat(draft_messages(topic, answers=answers))
        ids = model.tokenize(prompt)
        if len(ids) + DRAFT_MAX_TOKENS <= model.context_length:
            break
    else:  # no answer to draft from, or none fits the window
        return ""
    params = GenerationParams(
        max_tokens=DRAFT_MAX_TOKENS, deadline_s=get_support_settings().answer_timeout_s * 2
    )
    with model.stream(ids, params) as stream:
        text = stream.text()
    return _clean(text)


def _clean(text: str) -> str:
    text = re.sub(r"\[\d+\]", "", text)  # citation markers the answer prompts teach
    lines = [" ".join(line.split()) for line in text.strip().splitlines()]
    out = "\n".join(lines).strip()
    return out if len(out.split()) >= 3 else ""


def _stems(text: str) -> set[str]:
    return {light_stem(w) for w in content_words(text)}


def proposal_support(text: str, topic: GapTopic) -> float:
    """Share of the proposal's distinct content words that the topic's answers or questions
    use (1.0 for a proposal without content words)."""
    words = _stems(text)
    if not words:
        return 1.0
    known = _stems(" ".join((*topic.answers, *topic.questions, topic.name)))
    return len(words & known) / len(words)


def article_draft_write(*, draft_id: int, model: ChatModel | None = None) -> ArticleDraft | None:
    """Fill a draft being written with the model's proposal, or the most typical agent answer
    when generation fails or gives nothing; a draft no longer being written is left alone."""
    draft = ArticleDraft.objects.filter(pk=draft_id).first()
    if draft is None or draft.state != ArticleDraft.State.WRITING:
        return draft
    topic = GapTopic.from_dict(draft.topic)
    note = ""
    timed_out: SoftTimeLimitExceeded | None = None
    try:
        text = article_text_generate(topic, model=model or get_chat_model())
        support = proposal_support(text, topic)
        if not text:
            note = "The model wrote nothing usable."
        elif support < MIN_SUPPORTED_WORDS:
            note = (
                f"The model's proposal was set aside: only {support:.0%} of its words come "
                f"from the agents' answers. It was: {text}"
            )[:2000]
            text = ""
    except Exception as exc:  # any backend failure falls back; the draft must not stay stuck
        logger.warning("article draft %s: generation failed: %s", draft_id, exc)
        text, note = "", f"Generation failed: {exc or type(exc).__name__}"[:500]
        if isinstance(exc, SoftTimeLimitExceeded):
            timed_out = exc
    writer = ArticleDraft.Writer.MODEL if text else ArticleDraft.Writer.FALLBACK
    ArticleDraft.objects.filter(pk=draft_id, state=ArticleDraft.State.WRITING).update(
        body=(text or fallback_text(topic))[:MAX_BODY_CHARS],
        written_by=writer,
        note=note,
        state=ArticleDraft.State.DRAFT,
        updated_at=timezone.now(),
    )
    if timed_out is not None:
        raise timed_out
    draft.refresh_from_db()
    return draft


# --- editing and publishing -------------------------------------------------------------------
def _editable(draft_id: int) -> ArticleDraft:
    draft = ArticleDraft.objects.select_for_update().filter(pk=draft_id).first()
    if draft is None:
        raise DraftRefused("No such draft.", code="not_found")
    if draft.state == ArticleDraft.State.PUBLISHED:
        raise DraftRefused("This article is already published.")
    return draft


def _checked(title: str, body: str) -> tuple[str, str]:
    title = " ".join(title.split())[:MAX_TITLE_CHARS]
    body = body.strip().replace("\r\n", "\n")
    if not title or not body:
        raise DraftRefused("An article needs a title and a text.")
    if len(body) > MAX_BODY_CHARS:
        raise DraftRefused(f"The text is longer than {MAX_BODY_CHARS} characters.")
    return title, body


@transaction.atomic
def article_save(*, draft_id: int, title: str, body: str) -> ArticleDraft:
    """Store a person's edit of a draft (it stops any proposal still being written)."""
    draft = _editable(draft_id)
    draft.title, draft.body = _checked(title, body)
    draft.state = ArticleDraft.State.DRAFT
    draft.written_by = ArticleDraft.Writer.PERSON
    draft.save(update_fields=["title", "body", "state", "written_by", "updated_at"])
    return draft


def article_markdown(*, title: str, body: str) -> bytes:
    """The document an article becomes: an FAQ entry whose heading is the question."""
    return f"# {title}\n\n{body.strip()}\n".encode()


@transaction.atomic
def article_publish(*, draft_id: int, title: str, body: str, user: Any = None) -> ArticleDraft:
    """Publish a draft: upload it as a Markdown document, queued for ingestion on commit (and so
    indexed and gated like any upload). Raises DraftRefused, or DocumentRejected (a duplicate)."""
    draft = _editable(draft_id)
    title, body = _checked(title, body)
    slug = slugify(title)[:60] or "article"
    document = knowledge.document_upload(
        filename=f"faq-{draft.pk}-{slug}.md",
        data=article_markdown(title=title, body=body),
        title=title,
        uploaded_by=user,
    )
    draft.title, draft.body = title, body
    draft.state = ArticleDraft.State.PUBLISHED
    draft.document = document
    draft.published_by = user
    draft.published_at = timezone.now()
    draft.save()
    return draft
