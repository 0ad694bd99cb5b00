"""Cases run against an index version through the serving code, and two runs compared.

A case is a question with what must happen: an expected document (or chunks) among the top
TOP_K passages, or a decline. `slice_run` answers every case of a slice with the code that
serves customers, pinned to one index version (`retrieval.index_pinned`): the hybrid search,
then the answer decision without generation (`answer_compose(..., generate=False)`: decline or
not is decided before the model would write, so a run costs a search and a few string checks
per case). `gate_evaluate(before=..., after=...)` runs every slice on both targets and lists
what got worse; a blocking change (BLOCKING) or a drop of recall@5 on any slice fails the gate.

The golden questions are one slice ("golden"); the learning gate adds its held-back examples
as another (cases with expected chunks), over the same code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from ..answers.pipeline import answer_compose
from ..answers.reasons import AnswerAction
from ..backends import embedder_for_manifest, get_index_reader
from ..conf import get_support_settings
from ..retrieval import index_pinned, passages_search
from ..search.embedder import Embedder
from ..search.index import IndexSnapshot, load_snapshot

TOP_K: Final = 5
# Ranks are reported this deep, so a report can say how far an expected document fell.
RANK_DEPTH: Final = 10
GOLDEN: Final = "golden"

# Why a case is worse, and whether that alone fails the gate.
LEFT_TOP_K: Final = "left_top_5"  # the expected document was in the top 5 and is no more
NOW_ANSWERED: Final = "now_answered"  # a should-be-declined question is answered
RANK_DROPPED: Final = "rank_dropped"  # still in the top 5, lower
NOW_DECLINED: Final = "now_declined"  # an answerable question the bot answered is declined
BLOCKING: Final = frozenset({LEFT_TOP_K, NOW_ANSWERED})


@dataclass(frozen=True, slots=True)
class Case:
    """One question and what must happen to it."""

    key: str  # stable within its slice ("golden:12")
    question: str
    expected_documents: frozenset[int] = frozenset()
    expected_chunks: frozenset[int] = frozenset()
    should_decline: bool = False
    label: str = ""  # what is expected, for people ("Billing and payments")

    @property
    def answerable(self) -> bool:
        return bool(self.expected_documents or self.expected_chunks)


@dataclass(frozen=True, slots=True)
class Target:
    """What a run searches: one loaded index version, and the embedder its vectors were made
    with (None: the one its manifest names, backends.embedder_for_manifest)."""

    snapshot: IndexSnapshot
    embedder: Embedder | None = None
    label: str = ""

    @property
    def version(self) -> int:
        return self.snapshot.version


def target_published() -> Target:
    """The version this machine serves now. Raises IndexNotReady before the first build."""
    return Target(get_index_reader().snapshot(), label="published")


def target_version(version: int, *, embedder: Embedder | None = None, label: str = "") -> Target:
    """A version on disk, published or only staged (loaded into memory for the run)."""
    snapshot = load_snapshot(get_support_settings().index_dir, version)
    return Target(snapshot, embedder, label or f"version {version}")


@dataclass(frozen=True, slots=True)
class CaseResult:
    key: str
    question: str
    answerable: bool
    should_decline: bool
    rank: int | None  # of the first expected passage (at most RANK_DEPTH), None when absent
    declined: bool
    reason: str  # the answer pipeline's reason (support.answers.reasons.AnswerReason)
    top_documents: tuple[int, ...]  # document ids of the top TOP_K passages
    label: str = ""

    @property
    def hit(self) -> bool:
        return self.rank is not None and self.rank <= TOP_K

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "question": self.question,
            "expected": self.label,
            "should_decline": self.should_decline,
            "rank": self.rank,
            "in_top_5": self.hit,
            "declined": self.declined,
            "reason": self.reason,
            "top_documents": list(self.top_documents),
        }


@dataclass(frozen=True, slots=True)
class SliceRun:
    name: str
    version: int
    results: tuple[CaseResult, ...]

    def measures(self) -> dict[str, float | int]:
        """recall@5 and MRR@10 over the answerable cases; of the should-be-declined ones, the
        share declined and how many were answered; how many answerable ones were declined."""
        answerable = [r for r in self.results if r.answerable]
        declinable = [r for r in self.results if r.should_decline]
        hits = sum(r.hit for r in answerable)
        mrr = sum(1.0 / r.rank for r in answerable if r.rank is not None)
        declined = sum(r.declined for r in declinable)
        return {
            "questions": len(self.results),
            "answerable": len(answerable),
            "recall_at_5": round(hits / len(answerable), 4) if answerable else 1.0,
            "mrr_at_10": round(mrr / len(answerable), 4) if answerable else 1.0,
            "should_decline": len(declinable),
            "declined_when_should": round(declined / len(declinable), 4) if declinable else 1.0,
            "answered_when_should_decline": len(declinable) - declined,
            "answerable_declined": sum(r.declined for r in answerable),
        }

    def summary(self) -> dict[str, Any]:
        return {"version": self.version, **self.measures()}


class _QueryCache:
    """The embedder with its query vectors remembered: the before and after runs of one
    evaluation embed each question once."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self._vectors: dict[str, NDArray[np.float32]] = {}

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    @property
    def model_name(self) -> str:
        return self._inner.model_name

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> NDArray[np.float32]:
        return self._inner.encode(texts, batch_size=batch_size)

    def encode_query(self, text: str) -> NDArray[np.float32]:
        vector = self._vectors.get(text)
        if vector is None:
            vector = self._vectors[text] = self._inner.encode_query(text)
        return vector

    def prefill(self, texts: Sequence[str]) -> None:
        """Embed `texts` as queries in one batched pass when the embedder can (several times
        faster than one forward pass per question)."""
        many = getattr(self._inner, "encode_queries", None)
        wanted = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if many is None or not wanted:
            return
        for text, vector in zip(wanted, many(wanted), strict=True):
            self._vectors[text] = np.ascontiguousarray(vector, dtype=np.float32)


def _case_run(case: Case) -> CaseResult:
    deep = passages_search(query=case.question, k=RANK_DEPTH)
    # The first TOP_K of a deeper search are exactly the search the answer pipeline makes for a
    # question without history (answers.retrieve: passages_search(k=5)).
    top = dataclasses.replace(deep, passages=deep.passages[:TOP_K])
    draft = answer_compose(question=case.question, search=top, generate=False)
    rank = next(
        (
            p.rank
            for p in deep.passages
            if p.document_id in case.expected_documents or p.chunk_id in case.expected_chunks
        ),
        None,
    )
    return CaseResult(
        key=case.key,
        question=case.question,
        answerable=case.answerable,
        should_decline=case.should_decline,
        rank=rank,
        declined=draft.action is AnswerAction.ESCALATE,
        reason=str(draft.reason),
        top_documents=tuple(p.document_id for p in top.passages),
        label=case.label,
    )


def slice_run(
    *, name: str, cases: Sequence[Case], target: Target, embedder: Embedder | None = None
) -> SliceRun:
    """Every case answered (without generation) against `target`; reads only."""
    query_embedder = embedder or target.embedder or embedder_for_manifest(target.snapshot.manifest)
    with index_pinned(target.snapshot, embedder=query_embedder):
        results = tuple(_case_run(case) for case in cases)
    return SliceRun(name, target.version, results)


@dataclass(frozen=True, slots=True)
class Worse:
    """A case that got worse between two runs."""

    slice: str
    before: CaseResult
    after: CaseResult
    reasons: tuple[str, ...]

    @property
    def blocking(self) -> bool:
        return bool(BLOCKING.intersection(self.reasons))

    def as_dict(self) -> dict[str, Any]:
        return {
            "slice": self.slice,
            "key": self.after.key,
            "question": self.after.question,
            "expected": self.after.label,
            "reasons": list(self.reasons),
            "blocking": self.blocking,
            "before": {"rank": self.before.rank, "declined": self.before.declined},
            "after": {"rank": self.after.rank, "declined": self.after.declined},
        }


def _worse_reasons(before: CaseResult, after: CaseResult) -> tuple[str, ...]:
    reasons: list[str] = []
    if before.answerable:
        if before.hit and not after.hit:
            reasons.append(LEFT_TOP_K)
        elif before.hit and after.rank is not None and after.rank > (before.rank or 0):
            reasons.append(RANK_DROPPED)
        if not before.declined and after.declined:
            reasons.append(NOW_DECLINED)
    if before.should_decline and before.declined and not after.declined:
        reasons.append(NOW_ANSWERED)
    return tuple(reasons)


@dataclass(frozen=True, slots=True)
class SliceComparison:
    name: str
    before: SliceRun
    after: SliceRun
    worse: tuple[Worse, ...]
    regressions: tuple[str, ...]


def runs_compare(before: SliceRun, after: SliceRun) -> SliceComparison:
    """What got worse from `before` to `after` (cases matched by key), and the regressions: a
    blocking case, or recall@5 lower than before."""
    earlier = {r.key: r for r in before.results}
    worse = []
    for result in after.results:
        previous = earlier.get(result.key)
        if previous is None:
            continue
        reasons = _worse_reasons(previous, result)
        if reasons:
            worse.append(Worse(after.name, previous, result, reasons))
    regressions = []
    for w in worse:
        if LEFT_TOP_K in w.reasons:
            expected = w.after.label or "its source"
            regressions.append(
                f"{after.name}: “{w.after.question}” no longer finds {expected} in the top"
                f" {TOP_K} (rank {w.before.rank} → {_rank_text(w.after.rank)})"
            )
        if NOW_ANSWERED in w.reasons:
            regressions.append(
                f"{after.name}: “{w.after.question}” should be declined and is now answered"
            )
    old, new = before.measures()["recall_at_5"], after.measures()["recall_at_5"]
    if new < old:
        regressions.append(f"{after.name}: recall@5 dropped from {old:.3f} to {new:.3f}")
    return SliceComparison(after.name, before, after, tuple(worse), tuple(regressions))


def _rank_text(rank: int | None) -> str:
    return f"{rank}" if rank is not None else f"not in the top {RANK_DEPTH}"


@dataclass(frozen=True, slots=True)
class GateEvaluation:
    """Both runs of every slice, what got worse, and whether the gate lets the change through."""

    slices: tuple[SliceComparison, ...]
    regressions: tuple[str, ...]
    gained: bool  # pooled recall@5 rose, or fewer should-be-declined questions were answered
    require_gain: bool = False

    @property
    def passed(self) -> bool:
        return not self.regressions and (self.gained or not self.require_gain)

    @property
    def worse(self) -> tuple[Worse, ...]:
        return tuple(w for s in self.slices for w in s.worse)

    def before_summary(self) -> dict[str, Any]:
        return {s.name: s.before.summary() for s in self.slices}

    def after_summary(self) -> dict[str, Any]:
        return {s.name: s.after.summary() for s in self.slices}

    def as_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "before": self.before_summary(),
            "after": self.after_summary(),
            "worse": [w.as_dict() for w in self.worse],
            "regressions": list(self.regressions),
        }


def _pooled(runs: Sequence[SliceRun]) -> tuple[float, int]:
    results = [r for run in runs for r in run.results]
    answerable = [r for r in results if r.answerable]
    recall = sum(r.hit for r in answerable) / len(answerable) if answerable else 1.0
    answered = sum(not r.declined for r in results if r.should_decline)
    return recall, answered


def gate_evaluate(
    *,
    before: Target,
    after: Target,
    slices: Mapping[str, Sequence[Case]] | None = None,
    require_gain: bool = False,
) -> GateEvaluation:
    """Run every slice (default: the active golden questions) on `before` and `after` and
    compare. It fails on any regression of any slice, and with `require_gain` also when
    nothing improved (a learned change must earn its promotion). Reads only; the caller stores
    the report (`gate.gate_report_store`) and publishes or not."""
    if slices is None:
        from .questions import golden_cases

        slices = {GOLDEN: golden_cases()}
    # A target without its own embedder embeds with the model that made its vectors.
    before_inner = before.embedder or embedder_for_manifest(before.snapshot.manifest)
    after_inner = after.embedder or embedder_for_manifest(after.snapshot.manifest)
    before_embedder = _QueryCache(before_inner)
    # One cache when both sides embed queries with the same model.
    after_embedder = before_embedder if after_inner is before_inner else _QueryCache(after_inner)
    questions = [c.question for cases in slices.values() for c in cases]
    before_embedder.prefill(questions)
    after_embedder.prefill(questions)
    comparisons = []
    for name, cases in slices.items():
        first = slice_run(name=name, cases=cases, target=before, embedder=before_embedder)
        second = slice_run(name=name, cases=cases, target=after, embedder=after_embedder)
        comparisons.append(runs_compare(first, second))
    old_recall, old_answered = _pooled([c.before for c in comparisons])
    new_recall, new_answered = _pooled([c.after for c in comparisons])
    return GateEvaluation(
        slices=tuple(comparisons),
        regressions=tuple(r for c in comparisons for r in c.regressions),
        gained=new_recall > old_recall or new_answered < old_answered,
        require_gain=require_gain,
    )
