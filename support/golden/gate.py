"""The gate's stored reports, and the gate in front of every knowledge-base change.

A change to the knowledge base (a document added, re-indexed, enabled, disabled or deleted)
reaches customers when a new index version is published (support.knowledge.index_rebuild).
With active golden questions that version is first only staged; `kb_change_gate` runs the
golden questions against it and against the version being served. Without a regression it is
published; with one it is **held**: nothing served changes, the report is shown on the pages
of the documents in the change, and a person decides: `gate_publish_anyway` (logged with who)
or `gate_keep_old` (the staged version is discarded; the documents the change brought in are
disabled and pending removals are cancelled, so the database agrees with what is served).

Removals wait too: with golden questions, disabling or deleting an indexed document only marks
it (`KnowledgeDocument.pending_removal`); it is served until the version without it is
published, and applied then (support.knowledge).

Every decision is a `GateReport`; the learning gate stores its own with `gate_report_store`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from django.db import IntegrityError, transaction
from django.utils import timezone

from .. import jobs
from ..conf import get_support_settings
from ..exceptions import SupportError
from ..models import Chunk, GateReport, KnowledgeDocument
from ..search import index as search_index
from ..search.index import IndexSnapshot
from .evaluate import GOLDEN, GateEvaluation, gate_evaluate, target_published, target_version
from .questions import golden_cases

logger = logging.getLogger(__name__)

Decision = GateReport.Decision
Kind = GateReport.Kind


class GateDecisionStale(SupportError):
    """The report is no longer waiting for a decision (decided, or superseded)."""

    code = "gate_decision_stale"


def gate_report_store(
    *,
    kind: str,
    decision: str,
    evaluation: GateEvaluation | None,
    regressions: Sequence[str] = (),
    summaries: tuple[dict[str, Any], dict[str, Any]] | None = None,
    worse: Sequence[dict[str, Any]] = (),
    before_version: int | None = None,
    after_version: int | None = None,
    fingerprint: str = "",
    changes: dict[str, Any] | None = None,
    document_ids: Iterable[int] = (),
    decided_by: Any = None,
    note: str = "",
) -> GateReport:
    """Store one gate decision with what was measured: `evaluation` (the retrieval gate's), or
    `summaries` (before, after per slice) and `worse` measured otherwise (the chat model's
    gate); with neither, `regressions` says why nothing was measured."""
    if evaluation is not None:
        before, after = evaluation.before_summary(), evaluation.after_summary()
        worse_rows = [w.as_dict() for w in evaluation.worse]
    else:
        before, after = summaries or ({}, {})
        worse_rows = list(worse)
    report = GateReport.objects.create(
        kind=kind,
        decision=decision,
        before=before,
        after=after,
        worse=worse_rows,
        regressions=[*(evaluation.regressions if evaluation else ()), *regressions],
        before_version=before_version,
        after_version=after_version,
        fingerprint=fingerprint,
        changes=changes or {},
        decided_by=decided_by,
        decided_at=timezone.now() if decided_by is not None else None,
        note=note[:300],
    )
    ids = list(dict.fromkeys(document_ids))
    if ids:
        report.documents.set(KnowledgeDocument.objects.filter(pk__in=ids))
    return report


# -- reads -------------------------------------------------------------------------------------

KbPriorVerdict = Literal["evaluate", "approved", "held"]


@dataclass(frozen=True, slots=True)
class KbPrior:
    """What was decided already about one database state (by its fingerprint)."""

    verdict: KbPriorVerdict
    report: GateReport | None = None


def kb_change_prior(*, fingerprint: str) -> KbPrior:
    """What to do with a database state: "held" (a report waits for a person), "approved"
    (it passed or was published anyway: another machine need not evaluate it again) or
    "evaluate" (nothing decided yet; also after the old index was kept, when someone asks for
    the same state again, say by disabling the document again)."""
    report = (
        GateReport.objects.filter(kind=Kind.KB_CHANGE, fingerprint=fingerprint)
        .exclude(decision=Decision.SUPERSEDED)
        .order_by("-created_at", "-pk")
        .first()
    )
    if report is None:
        return KbPrior("evaluate")
    verdicts: dict[str, KbPriorVerdict] = {
        Decision.HELD: "held",
        Decision.PROMOTED: "approved",
        Decision.FORCED: "approved",
    }
    return KbPrior(verdicts.get(report.decision, "evaluate"), report)


def gate_report_held(*, document_id: int | None = None) -> GateReport | None:
    """The held knowledge-base change (of `document_id`'s change when given), if any."""
    rows = GateReport.objects.filter(kind=Kind.KB_CHANGE, decision=Decision.HELD)
    if document_id is not None:
        rows = rows.filter(documents=document_id)
    return rows.first()


# -- the knowledge-base gate -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KbGateResult:
    publish: bool
    report: GateReport | None


def _doc_row(doc: KnowledgeDocument, **extra: str) -> dict[str, Any]:
    return {"id": doc.pk, "title": str(doc), **extra}


def _changes(
    published: IndexSnapshot, staged: IndexSnapshot, removal_ids: Sequence[int]
) -> dict[str, Any]:
    """The documents whose chunks the staged version adds (new, re-indexed or re-enabled) and
    those it leaves out because their removal is pending."""
    served = published.ids()
    added_ids: set[int] = set()
    staged_ids = staged.ids()
    for chunk_id, document_id in Chunk.objects.filter(
        document__status=KnowledgeDocument.Status.READY
    ).values_list("pk", "document_id"):
        if chunk_id in staged_ids and chunk_id not in served:
            added_ids.add(document_id)
    added = KnowledgeDocument.objects.filter(pk__in=added_ids).order_by("pk")
    removed = KnowledgeDocument.objects.filter(pk__in=list(removal_ids)).order_by("pk")
    return {
        "added": [_doc_row(d) for d in added],
        "removed": [_doc_row(d, removal=d.pending_removal) for d in removed],
    }


def _versions_discard(versions: Iterable[int]) -> None:
    directory = get_support_settings().index_dir
    for version in versions:
        # Best effort: the files may be on another machine's disk (it prunes them itself).
        try:
            search_index.discard(directory, version)
        except OSError:
            logger.exception("discarding staged index version %s failed", version)


def _published_target(version: int) -> Any:
    target = target_published()
    return target if target.version == version else target_version(version, label="published")


def kb_change_gate(
    *, staged_version: int, published_version: int, fingerprint: str, removal_ids: Sequence[int]
) -> KbGateResult:
    """Run the golden questions on the staged and the published version and decide.

    Without active golden questions: publish, no report. Otherwise a report is stored either
    way: PROMOTED (publish) or HELD (do not publish; an older held change is superseded, its
    staged version discarded). Fails closed: when the questions cannot be run the version is
    held with the error as the regression, so a person can still publish it.
    """
    cases = golden_cases()
    if not cases:
        return KbGateResult(True, None)
    staged = target_version(staged_version, label="staged")
    published = _published_target(published_version)
    changes = _changes(published.snapshot, staged.snapshot, removal_ids)
    evaluation: GateEvaluation | None = None
    failure: list[str] = []
    try:
        evaluation = gate_evaluate(before=published, after=staged, slices={GOLDEN: cases})
    except Exception as exc:
        logger.exception("golden questions could not run on index version %s", staged_version)
        failure.append(f"the golden questions could not be run: {type(exc).__name__}: {exc}")
    passed = evaluation is not None and evaluation.passed
    document_ids = [d["id"] for d in (*changes["added"], *changes["removed"])]
    try:
        with transaction.atomic():
            previous = list(
                GateReport.objects.select_for_update().filter(
                    kind=Kind.KB_CHANGE, decision=Decision.HELD
                )
            )
            for old in previous:
                old.decision = Decision.SUPERSEDED
                old.note = "a newer change of the knowledge base replaced it"
                old.save(update_fields=["decision", "note", "updated_at"])
            report = gate_report_store(
                kind=Kind.KB_CHANGE,
                decision=Decision.PROMOTED if passed else Decision.HELD,
                evaluation=evaluation,
                regressions=failure,
                before_version=published.version,
                after_version=staged_version,
                fingerprint=fingerprint,
                changes=changes,
                document_ids=document_ids,
            )
            stale = [
                o.after_version
                for o in previous
                if o.after_version is not None and o.after_version != staged_version
            ]
            transaction.on_commit(lambda: _versions_discard(stale))
    except IntegrityError:
        # Another process held a change at the same moment: that one waits for a decision.
        held = gate_report_held()
        _versions_discard([staged_version])
        return KbGateResult(False, held)
    if passed:
        logger.info("gate report #%s: index version %s passed", report.pk, staged_version)
    else:
        logger.warning(
            "gate report #%s: index version %s held back: %s",
            report.pk,
            staged_version,
            "; ".join(report.regressions),
        )
    return KbGateResult(passed, report)


def _held_for_update(report_id: int) -> GateReport:
    report = GateReport.objects.select_for_update().filter(pk=report_id).first()
    if report is None or report.kind != Kind.KB_CHANGE or report.decision != Decision.HELD:
        state = "gone" if report is None else report.get_decision_display().lower()
        raise GateDecisionStale(
            f"Gate report #{report_id} is not waiting for a decision ({state})."
        )
    return report


@transaction.atomic
def gate_publish_anyway(*, report_id: int, user: Any) -> GateReport:
    """Publish a held index version despite its regressions (logged with who); the version
    is published, and the removals it includes applied, by the rebuild queued on commit."""
    report = _held_for_update(report_id)
    report.decision = Decision.FORCED
    report.decided_by = user
    report.decided_at = timezone.now()
    report.save(update_fields=["decision", "decided_by", "decided_at", "updated_at"])
    logger.warning(
        "gate report #%s: index version %s published anyway by %s despite: %s",
        report.pk,
        report.after_version,
        getattr(user, "username", user),
        "; ".join(report.regressions),
    )
    jobs.index_rebuild_enqueue()
    return report


@dataclass(frozen=True, slots=True)
class KeptOld:
    report: GateReport
    disabled: tuple[str, ...]  # documents the change brought in, now disabled
    restored: tuple[str, ...]  # documents whose pending removal was cancelled


@transaction.atomic
def gate_keep_old(*, report_id: int, user: Any) -> KeptOld:
    """Keep serving the old index: discard the held version (on commit), disable the documents
    the change brought in and cancel its pending removals, so the database says what is
    served; enabling a document again re-runs the gate."""
    report = _held_for_update(report_id)
    changes = report.changes or {}
    added = [int(d["id"]) for d in changes.get("added", [])]
    removed = [int(d["id"]) for d in changes.get("removed", [])]
    now = timezone.now()
    to_disable = (
        KnowledgeDocument.objects.select_for_update()
        .filter(pk__in=added)
        .exclude(status=KnowledgeDocument.Status.DISABLED)
    )
    disabled = tuple(str(d) for d in to_disable)
    to_disable.update(status=KnowledgeDocument.Status.DISABLED, pending_removal="", updated_at=now)
    to_restore = (
        KnowledgeDocument.objects.select_for_update()
        .filter(pk__in=removed)
        .exclude(pending_removal="")
    )
    restored = tuple(str(d) for d in to_restore)
    to_restore.update(pending_removal="", updated_at=now)
    report.decision = Decision.KEPT_OLD
    report.decided_by = user
    report.decided_at = now
    report.save(update_fields=["decision", "decided_by", "decided_at", "updated_at"])
    logger.info(
        "gate report #%s: %s kept the old index (disabled %s; removal cancelled for %s)",
        report.pk,
        getattr(user, "username", user),
        list(disabled),
        list(restored),
    )
    version = report.after_version
    if version is not None:
        transaction.on_commit(lambda: _versions_discard([version]))
    # Machines that never held the change (another disk) catch up on the database as it is now.
    jobs.index_rebuild_enqueue()
    return KeptOld(report, disabled, restored)
