"""A retriever specialised on the company (issue 14 item 5; docs/learning.md).

`specialise_run` fine-tunes the shipped embedding model on approved, non-held-back (question,
grounding chunk) pairs, embeds the knowledge base with it into a staged index (a directory of
its own: nothing served changes), evaluates the served and the staged retriever on the
held-back examples, and promotes the new model only when the gate allows it:

1. pairs: each training example's question with the embedding text of each of its grounding
   chunks; plus, per pair, the top-ranked chunks of the current index that ground nothing in
   the example (hard negatives). The other pairs of a batch are its in-batch negatives
   (MultipleNegativesRankingLoss).
2. training on the CPU with SUPPORT_SPECIALISE_THREADS torch threads, always from the shipped
   model (so a run never builds on an earlier run's mistakes); written to a temporary folder
   and renamed into place as SUPPORT_DATA_DIR/retrievers/retriever-vN (search.retrievers).
3. the knowledge base embedded with it into retrievers/retriever-vN/index.
4. the gate (`gate_decide` over support.golden.evaluate.gate_evaluate, the gate shared with
   knowledge-base changes): the held-back examples (their grounding chunk expected) and the
   golden questions run through the serving code on both versions; no slice may get worse
   (recall@5, MRR@10, a should-be-declined question answered) and the whole must improve.
5. promotion: the chunks' stored embeddings are replaced, retrievers/CURRENT is flipped and a
   new served index version is built (knowledge.index_rebuild), which records the model; every
   process's searches switch with the index's CURRENT. Refused, cancelled or failed runs delete
   their model folder and change nothing served.

One run at a time (`SpecialiseRun.holds_lock`, a partial unique constraint, with a heartbeat
so a killed run's lock expires); cancellable between steps (`run_cancel`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

import numpy as np
from django.db import IntegrityError, transaction
from django.utils import timezone
from numpy.typing import NDArray

from .. import jobs, knowledge
from ..backends import get_searcher
from ..conf import SupportSettings, get_support_settings
from ..exceptions import SupportError
from ..golden.evaluate import (
    GOLDEN,
    Case,
    GateEvaluation,
    SliceRun,
    Target,
    gate_evaluate,
    target_published,
)
from ..golden.gate import gate_report_held, gate_report_store
from ..golden.questions import golden_cases
from ..models import Chunk
from ..models_golden import GateReport
from ..models_learning import Example, SpecialiseRun
from ..search import index as search_index
from ..search import retrievers
from ..search.embedder import SentenceTransformerEmbedder, default_embedding_model_path
from ..search.index import IndexNotReady
from .examples import examples_for_training, examples_held_back
from .memory import memory_build

logger = logging.getLogger(__name__)

Status = SpecialiseRun.Status
HELD_BACK: Final = "held_back"
SEED: Final = 13
# Texts per encode call while embedding the knowledge base (a cancel check between calls).
EMBED_BLOCK: Final = 256
# Shares of the whole run's progress bar each stage takes (percent, cumulative end).
_STAGES: Final = {
    "pairs": 5,
    "training": 60,
    "embedding": 85,
    "evaluating": 95,
    "promoting": 100,
}


class SpecialiseBusy(SupportError):
    code = "specialise_busy"


class SpecialiseCancelled(SupportError):
    code = "specialise_cancelled"


class SpecialiseUnavailable(SupportError):
    """The run could not start (no knowledge base, no model): the command exits non-zero."""

    code = "specialise_unavailable"


# (stage, done, total): called between steps; `total` is 0 when unknown.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Pair:
    example_id: int
    question: str
    positive: str
    negatives: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class GateDecision:
    promote: bool
    reason: str
    regressions: tuple[str, ...] = ()
    worse: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class RunReport:
    """What every kind of run reports (`specialise --json` and the stored run): the fields of
    the issue 14 contract (promoted, before/after per slice, trained_on, held_back, seconds)
    and the served version it installed. Each kind adds its own fields after these."""

    run_id: int | None
    promoted: bool
    forced: bool
    reason: str
    before: dict[str, Any]
    after: dict[str, Any]
    trained_on: int
    held_back: int
    seconds: float
    model_version: int | None = None

    # Durations and sizes, rounded to two places in the JSON.
    ROUNDED: ClassVar[tuple[str, ...]] = ("seconds",)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        for key in self.ROUNDED:
            data[key] = round(data[key], 2)
        if isinstance(data.get("timings"), dict):
            data["timings"] = {k: round(v, 2) for k, v in data["timings"].items()}
        return data

    def headline(self) -> str:
        return f"{'promoted' if self.promoted else 'not promoted'}: {self.reason}"


@dataclass(frozen=True, slots=True)
class SpecialiseReport(RunReport):
    """A retriever run. Per slice ("held_back", "golden" when there are golden questions,
    "overall"), `before` and `after` hold recall@5, MRR@10 and the decline counts of
    support.golden.evaluate.SliceRun.measures."""

    training_seconds: float = 0.0
    steps: int = 0
    index_version: int | None = None
    worse: tuple[dict[str, Any], ...] = ()
    regressions: tuple[str, ...] = ()
    gate_report: int | None = None  # the stored GateReport (shown in the admin)
    timings: dict[str, float] = field(default_factory=dict)

    ROUNDED: ClassVar[tuple[str, ...]] = ("seconds", "training_seconds")


@dataclass(frozen=True, slots=True)
class RollbackResult:
    model_version: int | None  # None: the shipped model
    index_version: int
    seconds: float


# --- the lock and the run row -----------------------------------------------------------------


def _expire_stale_lock(conf: SupportSettings) -> None:
    cutoff = timezone.now() - timedelta(seconds=conf.specialise_lock_expiry_s)
    for run in SpecialiseRun.objects.filter(holds_lock=True, heartbeat_at__lt=cutoff):
        logger.warning("specialise run %s stopped reporting; its lock has expired", run.pk)
        _finish(run.pk, Status.FAILED, message="stopped reporting (worker killed?)")


def run_create(
    *, force: bool = False, by: Any = None, kind: str = SpecialiseRun.Kind.RETRIEVAL
) -> SpecialiseRun:
    """A queued run holding the one-at-a-time lock (shared by both kinds); raises
    SpecialiseBusy while another runs."""
    _expire_stale_lock(get_support_settings())
    try:
        with transaction.atomic():
            return SpecialiseRun.objects.create(
                kind=kind,
                holds_lock=True,
                force=force,
                requested_by=by if by is not None and by.pk else None,
                heartbeat_at=timezone.now(),
            )
    except IntegrityError as exc:
        raise SpecialiseBusy("Another specialisation run is queued or running.") from exc


def specialise_start(
    *, force: bool = False, by: Any = None, kind: str = SpecialiseRun.Kind.RETRIEVAL
) -> SpecialiseRun:
    """Queue a run of the retriever or the chat model on the `training` queue (the admin's
    buttons); raises SpecialiseBusy."""
    if kind == SpecialiseRun.Kind.MODEL:
        from .chat_specialise import model_run_check

        model_run_check()  # refuse at once what the run would refuse in the worker
    with transaction.atomic():
        run = run_create(force=force, by=by, kind=kind)
        if kind == SpecialiseRun.Kind.MODEL:
            jobs.specialise_model_enqueue(run_id=run.pk)
        else:
            jobs.specialise_enqueue(run_id=run.pk)
    return run


def run_cancel(*, run_id: int) -> bool:
    """Ask a queued or running run to stop at its next step; False when it already ended."""
    return bool(
        SpecialiseRun.objects.filter(pk=run_id, holds_lock=True).update(cancel_requested=True)
    )


def _finish(run_id: int, status: str, *, message: str = "", **values: Any) -> None:
    SpecialiseRun.objects.filter(pk=run_id).update(
        status=status,
        holds_lock=False,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
        message=message[:4000],
        **values,
    )


class _Tracker:
    """Progress into the run row (heartbeat, stage, percent) and to the caller; the cancel
    check between steps."""

    def __init__(
        self, run_id: int, callback: Progress | None, stages: dict[str, int] | None = None
    ) -> None:
        self.run_id = run_id
        self.callback = callback
        self.stages = stages or _STAGES
        self._last_write = 0.0
        self._stage_start: tuple[str, float, int] | None = None  # (stage, when, done then)

    def __call__(self, stage: str, done: int = 0, total: int = 0, *, check: bool = True) -> None:
        """Report progress; then honour a cancel (unless `check` is False: a step callback
        inside code that stops itself, after a checkpoint, when `cancelled()` says so)."""
        if self.callback is not None:
            self.callback(stage, done, total)
        now = time.monotonic()
        if self._stage_start is None or self._stage_start[0] != stage:
            self._stage_start = (stage, now, done)
        if now - self._last_write < 1.0 and done != total:
            return
        self._last_write = now
        keys = list(self.stages)
        start = self.stages[keys[keys.index(stage) - 1]] if keys.index(stage) else 0
        share = (done / total) if total else 0.0
        percent = int(start + (self.stages[stage] - start) * share)
        SpecialiseRun.objects.filter(pk=self.run_id).update(
            stage=stage,
            progress=percent,
            heartbeat_at=timezone.now(),
            message=self._eta(stage, done, total, now),
        )
        if check:
            self.check()

    def _eta(self, stage: str, done: int, total: int, now: float) -> str:
        """ "training 12/40, about 9 min left": the stage's steps so far at their pace so far
        (a resumed run's pace from where it resumed)."""
        if not total:
            return stage
        text = f"{stage} {done}/{total}"
        assert self._stage_start is not None
        _stage, since, first = self._stage_start
        if done > first and done < total:
            left = (now - since) / (done - first) * (total - done)
            text += f", about {_duration(left)} left"
        return text

    def cancelled(self) -> bool:
        return SpecialiseRun.objects.filter(pk=self.run_id, cancel_requested=True).exists()

    def check(self) -> None:
        if self.cancelled():
            raise SpecialiseCancelled("cancelled")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


# --- data -------------------------------------------------------------------------------------


def _grounding_chunks(examples: Sequence[Example]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for ex in examples:
        out[ex.pk] = [g.chunk_id for g in ex.grounding.all() if g.chunk_id is not None]
    return out


def _embedding_texts(chunk_ids: Sequence[int]) -> dict[int, str]:
    rows = Chunk.objects.filter(pk__in=list(chunk_ids)).values_list(
        "pk", "text", "heading_path", "document__title"
    )
    return {
        pk: knowledge._embedding_text(title or "", tuple(heading or ()), text)
        for pk, text, heading, title in rows
    }


def training_pairs(
    examples: Sequence[Example], *, hard_negatives: int, track: _Tracker | None = None
) -> list[Pair]:
    """(question, grounding chunk text) per grounding chunk, each with the current index's
    top-ranked chunks that ground nothing in the example as hard negatives."""
    chunks = _grounding_chunks(examples)
    negatives: dict[int, list[int]] = {}
    if hard_negatives:
        searcher = get_searcher()
        for i, ex in enumerate(examples):
            try:
                hits = searcher.search(ex.question, k=hard_negatives + len(chunks[ex.pk]) + 2).hits
            except IndexNotReady:
                hits = ()
            own = set(chunks[ex.pk])
            negatives[ex.pk] = [h.chunk_id for h in hits if h.chunk_id not in own][:hard_negatives]
            if track is not None:
                track("pairs", i + 1, len(examples))
    wanted = {c for ids in chunks.values() for c in ids} | {
        c for ids in negatives.values() for c in ids
    }
    texts = _embedding_texts(sorted(wanted))
    pairs = []
    for ex in examples:
        negs = tuple(texts[c] for c in negatives.get(ex.pk, []) if c in texts)
        for cid in chunks[ex.pk]:
            if cid in texts:
                pairs.append(Pair(ex.pk, ex.question, texts[cid], negs))
    return pairs


# --- training ---------------------------------------------------------------------------------


def base_model_path() -> str:
    """The shipped (configured) embedding model: every run starts from it."""
    return get_support_settings().embedding_model_path or default_embedding_model_path()


def model_train(
    *,
    pairs: Sequence[Pair],
    output: Path,
    conf: SupportSettings,
    on_step: Callable[[int, int], None] | None = None,
) -> int:
    """Fine-tune the shipped model on `pairs` (MultipleNegativesRankingLoss: in-batch and hard
    negatives) on the CPU and save it to `output`; returns the number of optimiser steps."""
    import torch  # imported here: seconds to import, never in the ASGI process

    try:
        from sentence_transformers.sentence_transformer.losses import (
            MultipleNegativesRankingLoss,
        )
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.losses import (  # type: ignore[no-redef]
            MultipleNegativesRankingLoss,
        )
    from sentence_transformers import SentenceTransformer

    if conf.specialise_threads:
        torch.set_num_threads(conf.specialise_threads)
    torch.manual_seed(SEED)
    rng = random.Random(SEED)  # noqa: S311 (shuffling, not secrets)
    model = SentenceTransformer(base_model_path(), device="cpu", local_files_only=True)
    loss = MultipleNegativesRankingLoss(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=conf.specialise_learning_rate)
    prepare = getattr(model, "preprocess", None) or model.tokenize
    pool = [p.positive for p in pairs]
    batch_size = conf.specialise_batch_size
    per_epoch = math.ceil(len(pairs) / batch_size)
    total = per_epoch * conf.specialise_epochs
    hard = conf.specialise_hard_negatives > 0
    model.train()
    step = 0
    for _epoch in range(conf.specialise_epochs):
        order = list(pairs)
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            columns = [[p.question for p in batch], [p.positive for p in batch]]
            if hard:
                # A pair without a hard negative gets a random other chunk's text, so every
                # row has one (the loss takes whole columns).
                columns.append(
                    [p.negatives[0] if p.negatives else _other(rng, pool, p) for p in batch]
                )
            features = [prepare(col) for col in columns]
            value = loss(features, None)
            value.backward()
            optimiser.step()
            optimiser.zero_grad()
            step += 1
            if on_step is not None:
                on_step(step, total)
    model.eval()
    model.save(str(output))
    return step


def _other(rng: random.Random, pool: Sequence[str], pair: Pair) -> str:
    choices = [t for t in pool if t != pair.positive]
    return rng.choice(choices) if choices else pair.positive


# --- evaluation (the gate) --------------------------------------------------------------------


def held_back_cases(examples: Sequence[Example]) -> list[Case]:
    """The held-back examples as gate cases: the question must find its grounding chunk."""
    chunks = _grounding_chunks(examples)
    return [
        Case(
            key=f"{HELD_BACK}:{ex.pk}",
            question=ex.question,
            expected_chunks=frozenset(chunks[ex.pk]),
            label=f"example #{ex.pk}'s chunk",
        )
        for ex in examples
        if chunks[ex.pk]
    ]


def gate_slices(held_back: list[Case]) -> dict[str, list[Case]]:
    """The held-back examples, and the active golden questions when there are any."""
    slices = {HELD_BACK: held_back}
    golden = golden_cases()
    if golden:
        slices[GOLDEN] = golden
    return slices


def _pooled_mrr(runs: Sequence[SliceRun]) -> float:
    answerable = [r for run in runs for r in run.results if r.answerable]
    if not answerable:
        return 0.0
    return sum(1.0 / r.rank for r in answerable if r.rank is not None) / len(answerable)


def _overall(runs: Sequence[SliceRun]) -> dict[str, Any]:
    answerable = [r for run in runs for r in run.results if r.answerable]
    hits = sum(r.hit for r in answerable)
    return {
        "questions": sum(len(run.results) for run in runs),
        "answerable": len(answerable),
        "recall_at_5": round(hits / len(answerable), 4) if answerable else 1.0,
        "mrr_at_10": round(_pooled_mrr(runs), 4),
    }


def gate_decide(evaluation: GateEvaluation) -> GateDecision:
    """Promote only when no slice got worse and the whole improved.

    Worse (support.golden.evaluate, the gate shared with knowledge-base changes): a question
    whose expected chunk or document left the top 5, a should-be-declined question now
    answered, or recall@5 lower on a slice; here also MRR@10 lower on a slice. Better:
    recall@5 or MRR@10 over all slices higher, or fewer should-be-declined questions answered.
    """
    eps = 1e-9
    regressions = list(evaluation.regressions)
    for comparison in evaluation.slices:
        was = float(comparison.before.measures()["mrr_at_10"])
        now = float(comparison.after.measures()["mrr_at_10"])
        if now < was - eps:
            regressions.append(f"{comparison.name}: MRR@10 dropped from {was:.3f} to {now:.3f}")
    worse = tuple(w.as_dict() for w in evaluation.worse)
    if regressions:
        return GateDecision(
            False, "worse: " + "; ".join(regressions[:5]), tuple(regressions), worse
        )
    mrr_before = _pooled_mrr([c.before for c in evaluation.slices])
    mrr_after = _pooled_mrr([c.after for c in evaluation.slices])
    if evaluation.gained or mrr_after > mrr_before + eps:
        return GateDecision(True, "better overall and not worse on any slice", (), worse)
    return GateDecision(False, "no better overall", (), worse)


def _summaries(evaluation: GateEvaluation) -> tuple[dict[str, Any], dict[str, Any]]:
    before = {
        **evaluation.before_summary(),
        "overall": _overall([c.before for c in evaluation.slices]),
    }
    after = {
        **evaluation.after_summary(),
        "overall": _overall([c.after for c in evaluation.slices]),
    }
    return before, after


# --- the run ----------------------------------------------------------------------------------


def specialise(
    *, force: bool = False, by: Any = None, progress: Progress | None = None
) -> SpecialiseReport:
    """Create a run and execute it here (the command); raises SpecialiseBusy."""
    run = run_create(force=force, by=by)
    return run_execute(run_id=run.pk, progress=progress)


def run_execute(*, run_id: int, progress: Progress | None = None) -> SpecialiseReport:
    """Execute a queued run (see the module docstring); the gate report is stored on the run.

    Raises SpecialiseCancelled when cancelled, SpecialiseUnavailable when it cannot run; in
    both cases and on any failure nothing served has changed."""
    started = time.perf_counter()
    conf = get_support_settings()
    run = SpecialiseRun.objects.get(pk=run_id)
    if run.kind != SpecialiseRun.Kind.RETRIEVAL:
        raise SpecialiseBusy(f"run {run_id} specialises the {run.get_kind_display().lower()}")
    if not run.holds_lock or run.status != Status.QUEUED:
        raise SpecialiseBusy(f"run {run_id} is not queued ({run.status})")
    SpecialiseRun.objects.filter(pk=run_id).update(
        status=Status.RUNNING, heartbeat_at=timezone.now()
    )
    track = _Tracker(run_id, progress)
    force = run.force
    root = conf.retrievers_dir
    version: int | None = None
    staging: Path | None = None
    try:
        track.check()
        train = list(examples_for_training().prefetch_related("grounding"))
        held_report = gate_report_held()
        if held_report is not None:
            raise SpecialiseUnavailable(
                f"A knowledge-base change is waiting for a decision (gate report "
                f"#{held_report.pk}): publish it or keep the old index first."
            )
        held = held_back_cases(list(examples_held_back().prefetch_related("grounding")))
        slices = gate_slices(held)
        pairs = training_pairs(train, hard_negatives=conf.specialise_hard_negatives, track=track)
        timings = {"pairs": time.perf_counter() - started}
        if len(pairs) < conf.specialise_min_pairs:
            report = SpecialiseReport(
                run_id,
                False,
                force,
                f"{len(pairs)} training pair(s), fewer than SUPPORT_SPECIALISE_MIN_PAIRS "
                f"({conf.specialise_min_pairs}): nothing trained",
                {},
                {},
                len(pairs),
                len(held),
                time.perf_counter() - started,
            )
            _finish(run_id, Status.REFUSED, message=report.reason, report=report.to_json())
            return report
        inputs = knowledge.index_inputs()
        if not inputs.ids:
            raise SpecialiseUnavailable("The knowledge base has no indexed chunks.")
        root.mkdir(parents=True, exist_ok=True)
        retrievers.prune(root)
        version = retrievers.next_version(root)
        staging = retrievers.staging_dir(root, version)
        t0 = time.perf_counter()
        steps = model_train(
            pairs=pairs, output=staging, conf=conf, on_step=lambda d, t: track("training", d, t)
        )
        training_seconds = time.perf_counter() - t0
        timings["training"] = training_seconds
        track.check()
        model = retrievers.install(
            root,
            staging,
            version,
            {
                "base": base_model_path(),
                "trained_on": len(pairs),
                "examples": len(train),
                "steps": steps,
                "created_at": timezone.now().isoformat(timespec="seconds"),
                "run": run_id,
            },
        )
        staging = None
        embedder = SentenceTransformerEmbedder(
            str(model.path), threads=conf.specialise_threads or None
        )
        t0 = time.perf_counter()
        vectors = _embed(embedder, inputs.embedding_texts, track)
        staged_dir = model.path / "index"
        staged_version = search_index.build(
            staged_dir,
            inputs.ids,
            vectors,
            texts=inputs.lexical_texts,
            opening_ids=inputs.opening_ids,
            hnsw_threshold=conf.hnsw_threshold,
            metadata={"embedding_model": model.label, "staged": True},
            # The question memory as the promoted version would carry it: keys embedded by the
            # new model.
            memory=memory_build(indexed_chunk_ids=set(inputs.ids), embedder=embedder),
            keep=1,
        )
        staged = search_index.load_snapshot(staged_dir, staged_version)
        timings["embedding"] = time.perf_counter() - t0
        track("evaluating", 0, 1)
        t0 = time.perf_counter()
        if not held:
            evaluation = None
            decision = GateDecision(False, "no held-back examples to evaluate on")
        else:
            before_target = target_published()
            evaluation = gate_evaluate(
                before=before_target,
                after=Target(staged, embedder, label=model.label),
                slices=slices,
                require_gain=True,
            )
            decision = gate_decide(evaluation)
        timings["evaluating"] = time.perf_counter() - t0
        promote = decision.promote or force
        track.check()  # the last point a cancel is honoured: promotion is not interrupted
        index_version = None
        if promote:
            track("promoting", 0, 1)
            t0 = time.perf_counter()
            index_version = _promote(model, inputs.ids, vectors)
            timings["promoting"] = time.perf_counter() - t0
            if force and not decision.promote:
                logger.warning(
                    "specialise run %s: promoted by force although the gate said: %s",
                    run_id,
                    decision.reason,
                )
        else:
            retrievers.discard(model.path)
        reason = decision.reason if decision.promote or not force else f"forced ({decision.reason})"
        before, after = _summaries(evaluation) if evaluation is not None else ({}, {})
        gate_report = gate_report_store(
            kind=GateReport.Kind.LEARNING,
            decision=(
                GateReport.Decision.PROMOTED
                if decision.promote
                else GateReport.Decision.FORCED
                if promote
                else GateReport.Decision.REFUSED
            ),
            evaluation=evaluation,
            regressions=() if evaluation is not None else (decision.reason,),
            before_version=_served_version(),
            after_version=index_version,
            changes={
                "retriever": model.label,
                "run": run_id,
                "trained_on": len(pairs),
                "held_back": len(held),
            },
            note=f"specialise run {run_id}: {reason}",
        )
        report = SpecialiseReport(
            run_id=run_id,
            promoted=promote,
            forced=force and not decision.promote,
            reason=reason,
            before=before,
            after=after,
            trained_on=len(pairs),
            held_back=len(held),
            seconds=time.perf_counter() - started,
            training_seconds=training_seconds,
            steps=steps,
            model_version=version if promote else None,
            index_version=index_version,
            worse=decision.worse,
            regressions=decision.regressions,
            gate_report=gate_report.pk,
            timings=timings,
        )
        _finish(
            run_id,
            Status.PROMOTED if promote else Status.REFUSED,
            message=reason,
            report=report.to_json(),
            model_version=report.model_version,
            index_version=index_version,
            progress=100,
        )
        return report
    except SpecialiseCancelled:
        _cleanup(root, version, staging)
        _finish(run_id, Status.CANCELLED, message="cancelled; nothing served changed")
        raise
    except BaseException as exc:
        _cleanup(root, version, staging)
        _finish(run_id, Status.FAILED, message=f"{type(exc).__name__}: {exc}")
        raise


def _cleanup(root: Path, version: int | None, staging: Path | None) -> None:
    if staging is not None:
        retrievers.discard(staging)
    current = retrievers.current(root)
    if version is not None and (current is None or current.version != version):
        retrievers.discard(retrievers.model_dir(root, version))


def _served_version() -> int | None:
    return search_index.current_version(get_support_settings().index_dir)


def _embed(
    embedder: SentenceTransformerEmbedder, texts: Sequence[str], track: _Tracker
) -> NDArray[np.float32]:
    # Longest first, in blocks (a cancel check between blocks), back in the caller's order.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    blocks = []
    for start in range(0, len(order), EMBED_BLOCK):
        part = order[start : start + EMBED_BLOCK]
        blocks.append(embedder.encode([texts[i] for i in part]))
        track("embedding", min(len(order), start + EMBED_BLOCK), len(order))
    matrix = np.empty((len(texts), blocks[0].shape[1]), dtype=np.float32)
    matrix[order] = np.vstack(blocks)
    return matrix


def _promote(
    model: retrievers.RetrieverModel, ids: Sequence[int], vectors: NDArray[np.float32]
) -> int:
    """Serve `model`: store its embeddings, flip retrievers/CURRENT, build the served index.

    CURRENT is flipped first, so an index rebuild that runs meanwhile embeds with the new model
    too (knowledge._reembed_stale); searches follow the index version, which names its model.
    """
    conf = get_support_settings()
    retrievers.publish(conf.retrievers_dir, model.version)
    knowledge.chunk_embeddings_store(chunk_ids=ids, vectors=vectors, model_name=model.label)
    return knowledge.index_publish_model().version


def retriever_rollback() -> RollbackResult:
    """Serve the retriever version before the current one (the shipped model at the bottom):
    flip retrievers/CURRENT back, embed the knowledge base with it and publish a new index
    version. Raises SpecialiseUnavailable when there is nothing to roll back to."""
    started = time.perf_counter()
    conf = get_support_settings()
    run = run_create()
    try:
        held_report = gate_report_held()
        if held_report is not None:
            raise LookupError(
                f"a knowledge-base change is waiting for a decision (gate report "
                f"#{held_report.pk}): publish it or keep the old index first"
            )
        version = retrievers.rollback(conf.retrievers_dir)
        index_version = knowledge.index_publish_model().version
    except LookupError as exc:
        SpecialiseRun.objects.filter(pk=run.pk).delete()
        raise SpecialiseUnavailable(str(exc)) from exc
    except BaseException as exc:
        _finish(run.pk, Status.FAILED, message=f"rollback failed: {type(exc).__name__}: {exc}")
        raise
    label = retrievers.label_of(version) if version else "the shipped model"
    _finish(
        run.pk,
        Status.ROLLED_BACK,
        message=f"rolled back to {label}",
        model_version=version,
        index_version=index_version,
        progress=100,
    )
    return RollbackResult(version, index_version, time.perf_counter() - started)
