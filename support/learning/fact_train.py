"""`specialise --facts`: learn from approved examples which sentence a quote should quote.

Each approved example's question is searched as the answer pipeline searches it; its label is
the candidate sentence of the top passages (`facts.fact_candidates`) with the best token F1 to
the approved answer (none below MIN_LABEL_F1: the answer is not in those passages). A logistic
regression over `fact_ranker.FEATURES` learns to rank the label first; its regularisation (or
"keep the lexical ranking") is chosen by 2-fold cross-validation over the training examples,
split by conversation (`Example.split_key`). The gate: on the held-back examples (never trained
on), the answer F1 of the quotes with the ranker must beat that of the lexical ranking. A
promoted ranker is a new numbered folder under SUPPORT_DATA_DIR/fact_rankers, published
atomically (support/versioned.py); `specialise --rollback --facts` goes back.
docs/learning.md, "Fact selection", has the measured effect.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.utils import timezone
from numpy.typing import NDArray

from ..answers import fact_ranker
from ..answers.citations import citations_resolve, extractive_answer
from ..answers.fact_ranker import FactRanker, PastQuestions, candidate_features, sentence_key
from ..answers.facts import Candidate
from ..answers.measures import token_f1
from ..conf import get_support_settings
from ..models import Example, SpecialiseRun
from .specialise import (
    Progress,
    RunReport,
    SpecialiseBusy,
    SpecialiseCancelled,
    SpecialiseUnavailable,
    _finish,
    _Tracker,
    run_create,
)

logger = logging.getLogger(__name__)

# A question whose best candidate shares less F1 than this with the approved answer labels
# nothing (the answer is a question back, or about another page).
MIN_LABEL_F1 = 0.1
# Inverse regularisation strengths tried; None: keep the lexical ranking (the CV may refuse).
CS: tuple[float | None, ...] = (None, 0.01, 0.1, 1.0, 10.0)
# Fewer labelled training examples than this: nothing to learn from.
MIN_LABELLED = 20
KEEP_VERSIONS = 3


@dataclass(slots=True)
class Sample:
    """One approved exchange as the ranker sees it."""

    group: str  # its conversation (Example.split_key): CV folds and the memories split by it
    question: str
    answer: str
    quote: bool  # the pipeline quotes for it (not a decline)
    candidates: list[Candidate]
    today: int | None  # the candidate the lexical ranking quotes
    question_vector: NDArray[np.float32]
    sentence_vectors: NDArray[np.float32]
    quotes: list[str] = field(default_factory=list)  # each candidate's quote text
    f1s: list[float] = field(default_factory=list)  # each quote's token F1 to the answer

    def __post_init__(self) -> None:
        if not self.quotes:
            self.quotes = [quote_text(c) for c in self.candidates]
        if not self.f1s:
            self.f1s = [token_f1(q, self.answer) for q in self.quotes]


def quote_text(candidate: Candidate) -> str:
    """What the pipeline's quote says when it quotes this candidate."""
    fact = candidate.fact
    return citations_resolve(extractive_answer([fact]), [fact])[0]


def label_of(s: Sample) -> int | None:
    if not s.f1s:
        return None
    best = max(range(len(s.f1s)), key=lambda i: (s.f1s[i], -i))
    return best if s.f1s[best] >= MIN_LABEL_F1 else None


def past_build(samples: Sequence[Sample], dimension: int) -> PastQuestions:
    """The memories the ranker reads: every sample's question, answer and label."""
    if not samples:
        return PastQuestions.empty(dimension)
    keys = []
    for s in samples:
        label = label_of(s)
        keys.append(sentence_key(s.candidates[label].fact.text) if label is not None else "")
    return PastQuestions(
        np.stack([s.question_vector for s in samples]).astype(np.float32),
        tuple(s.answer for s in samples),
        tuple(keys),
        tuple(s.group for s in samples),
    )


def features_of(s: Sample, past: PastQuestions, *, own_group: bool) -> NDArray[np.float64]:
    return candidate_features(
        candidates=s.candidates,
        question_vector=s.question_vector,
        sentence_vectors=s.sentence_vectors,
        past=past,
        today=s.today,
        group=s.group if own_group else None,
    )


def ranker_fit(samples: Sequence[Sample], past: PastQuestions, c: float) -> FactRanker | None:
    """A logistic regression over the labelled samples' candidates (1: a best sentence); each
    sample reads only other conversations' exchanges in the memories. None: too few labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xs, ys = [], []
    for s in samples:
        label = label_of(s)
        if label is None or len(s.candidates) < 2:
            continue
        best = s.f1s[label]
        xs.append(features_of(s, past, own_group=True))
        ys.append(np.array([f >= best - 1e-9 for f in s.f1s], dtype=int))
    if len(xs) < MIN_LABELLED:
        return None
    x, y = np.vstack(xs), np.concatenate(ys)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x), y)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    return FactRanker(
        mean=scaler.mean_.astype(np.float64),
        scale=scale.astype(np.float64),
        coef=model.coef_[0].astype(np.float64),
        intercept=float(model.intercept_[0]),
        past=past,
        meta={"c": c, "labelled": len(xs), "samples": len(samples)},
    )


def pick(s: Sample, ranker: FactRanker | None) -> int | None:
    """The candidate quoted for the sample: the ranker's, else the lexical ranking's."""
    if ranker is None or not s.quote or s.today is None:
        return s.today
    # At answer time every past exchange counts (the question's own is not among them).
    features = features_of(s, ranker.past, own_group=False)
    return ranker.choose(features, [c.fact.text for c in s.candidates])


def quote_f1(samples: Sequence[Sample], ranker: FactRanker | None) -> tuple[float, int]:
    """Mean token F1 of the samples' answers (a decline scores 0) and how many quotes the
    ranker changed."""
    if not samples:
        return 0.0, 0
    total, changed = 0.0, 0
    for s in samples:
        if not s.quote or s.today is None:
            continue
        chosen = pick(s, ranker)
        assert chosen is not None
        total += s.f1s[chosen]
        changed += s.quotes[chosen] != s.quotes[s.today]
    return total / len(samples), changed


def _bucket(group: str) -> int:
    return int(hashlib.sha256(f"inner:{group}".encode()).hexdigest()[:8], 16)


def inner_halves(samples: Sequence[Sample]) -> tuple[list[Sample], list[Sample]]:
    groups = sorted({s.group for s in samples}, key=lambda g: (_bucket(g), g))
    first = set(groups[::2])
    return [s for s in samples if s.group in first], [s for s in samples if s.group not in first]


def ranker_cv(
    samples: Sequence[Sample], dimension: int, cs: Sequence[float | None] = CS
) -> tuple[float | None, dict[str, float]]:
    """The C with the best mean quote F1 over a 2-fold split by conversation (memories and
    model from one half, F1 on the other); ties go to the lexical ranking, then the stronger
    regularisation."""
    a, b = inner_halves(samples)
    scores: dict[str, list[float]] = {str(c): [] for c in cs}
    for fit_side, eval_side in ((a, b), (b, a)):
        past = past_build(fit_side, dimension)
        for c in cs:
            ranker = ranker_fit(fit_side, past, c) if c is not None else None
            scores[str(c)].append(quote_f1(eval_side, ranker)[0])
    mean = {k: sum(v) / len(v) for k, v in scores.items()}
    best = max(cs, key=lambda c: (round(mean[str(c)], 6), c is None, -(c or 0.0)))
    return best, mean


def with_sentences(
    ranker: FactRanker,
    samples: Sequence[Sample],
    more: Sequence[str] = (),
    encode: Callable[[list[str]], NDArray[np.float32]] | None = None,
) -> FactRanker:
    """The ranker carrying every candidate sentence of these samples, and `more` (encoded),
    with its vector: a serving process starts with them cached."""
    from dataclasses import replace

    seen: dict[str, NDArray[np.float32]] = {}
    for s in samples:
        for c, vector in zip(s.candidates, s.sentence_vectors, strict=True):
            seen.setdefault(c.fact.text, vector)
    rest = [t for t in dict.fromkeys(more) if t not in seen]
    if rest and encode is not None:
        seen.update(zip(rest, fact_ranker.sentence_vectors(rest, encode), strict=True))
    dimension = ranker.past.vectors.shape[1]
    matrix = (
        np.stack(list(seen.values())).astype(np.float32)
        if seen
        else np.zeros((0, dimension), dtype=np.float32)
    )
    return replace(ranker, sentences=tuple(seen), sentence_matrix=matrix)


def ranker_train(
    samples: Sequence[Sample], dimension: int, cs: Sequence[float | None] = CS
) -> tuple[FactRanker | None, dict[str, Any]]:
    """The ranker for these samples (None: the CV kept the lexical ranking, or too few labels)
    and what the CV measured."""
    c, per_c = ranker_cv(samples, dimension, cs)
    info: dict[str, Any] = {"chosen_c": c, "per_c": per_c}
    if c is None:
        return None, info
    past = past_build(samples, dimension)
    return ranker_fit(samples, past, c), info


# -- the service --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FactsReport(RunReport):
    """A fact-ranker run: `before` is the held-back answer F1 of the lexical quotes, `after`
    that with the ranker; `cv` what the cross-validation inside the training examples chose."""

    cv: dict[str, Any] = field(default_factory=dict)


def samples_build(examples: Sequence[Example], progress: Progress | None = None) -> list[Sample]:
    """The examples through the pipeline's search and decision (no generation), embedded with
    the configured embedder."""
    from ..answers.decide import decide
    from ..answers.facts import fact_candidates
    from ..answers.types import Question, Retrieved, Route
    from ..backends import get_embedder
    from ..retrieval import passages_search

    conf = get_support_settings()
    embedder = get_embedder()
    questions = [ex.question for ex in examples]
    encode_queries = getattr(embedder, "encode_queries", None)
    if encode_queries is not None:
        vectors = encode_queries(questions)
    else:
        vectors = np.stack(
            [embedder.encode_query(q) for q in questions]
            or [np.zeros(embedder.dimension, dtype=np.float32)]
        )
    out = []
    for i, ex in enumerate(examples):
        if progress is not None:
            progress("samples", i, len(examples))
        search = passages_search(query=ex.question, k=5)
        retrieved = Retrieved(search)
        decision = decide(
            Question(ex.question),
            retrieved,
            min_confidence=conf.retrieval_min_confidence,
            generate=False,
        )
        candidates = fact_candidates(question=ex.question, passages=search.passages)
        texts = [c.fact.text for c in candidates]
        sentence_vectors = (
            fact_ranker.sentence_vectors(texts, embedder.encode)
            if texts
            else np.zeros((0, embedder.dimension), dtype=np.float32)
        )
        quoted = decision.route is Route.QUOTE
        today = None
        if quoted:
            best = extractive_answer(decision.facts)
            today = next((j for j, c in enumerate(candidates) if c.fact.text == best), None)
        out.append(
            Sample(
                group=ex.split_key,
                question=ex.question,
                answer=ex.answer,
                quote=quoted and today is not None,
                candidates=candidates,
                today=today,
                question_vector=vectors[i],
                sentence_vectors=sentence_vectors,
            )
        )
    return out


def kb_sentences() -> list[str]:
    """Every candidate sentence of every chunk of the knowledge base (as `fact_candidates`
    cuts a passage into them)."""
    from types import SimpleNamespace

    from ..answers.facts import fact_candidates
    from ..models import Chunk
    from ..retrieval import passages_from_hits

    chunks = {c.pk: c for c in Chunk.objects.select_related("document")}
    texts: dict[str, None] = {}
    for pk in chunks:
        hit = SimpleNamespace(chunk_id=pk, score=0.0, dense_score=0.0, lexical_score=0.0)
        for c in fact_candidates(question="", passages=passages_from_hits([hit], chunks, 1)):
            texts.setdefault(c.fact.text, None)
    return list(texts)


# Share of the whole run done at the end of each stage (the admin's percent).
FACT_STAGES = {"samples": 85, "training": 92, "sentences": 100}


def facts_specialise(*, force: bool = False, progress: Progress | None = None) -> FactsReport:
    """Train the fact ranker on the approved examples, gate it on the held-back ones, promote
    it or not (holds the one-at-a-time specialisation lock; raises SpecialiseBusy)."""
    run = run_create(force=force, kind=SpecialiseRun.Kind.FACTS)
    return facts_run_execute(run_id=run.pk, progress=progress)


def facts_run_execute(*, run_id: int, progress: Progress | None = None) -> FactsReport:
    """Execute a queued fact-ranker run (the admin's button, the nightly job, `specialise
    --facts`): its report is stored on the run. Cancellable between examples (raises
    SpecialiseCancelled); on any failure nothing served has changed."""
    from ..backends import get_embedder

    started = time.perf_counter()
    conf = get_support_settings()
    run = SpecialiseRun.objects.get(pk=run_id)
    if run.kind != SpecialiseRun.Kind.FACTS:
        raise SpecialiseBusy(f"run {run_id} specialises the {run.get_kind_display().lower()}")
    if not run.holds_lock or run.status != SpecialiseRun.Status.QUEUED:
        raise SpecialiseBusy(f"run {run_id} is not queued ({run.status})")
    SpecialiseRun.objects.filter(pk=run_id).update(
        status=SpecialiseRun.Status.RUNNING, heartbeat_at=timezone.now()
    )
    track = _Tracker(run_id, progress, FACT_STAGES)
    force = run.force
    try:
        track.check()
        approved = Example.objects.filter(state=Example.State.APPROVED).order_by("pk")
        train_examples = list(approved.filter(held_back=False))
        held_examples = list(approved.filter(held_back=True))
        if not train_examples or not held_examples:
            raise SpecialiseUnavailable(
                "The fact ranker needs approved examples to train on and held-back ones to "
                "judge it by."
            )
        dimension = get_embedder().dimension
        total = len(train_examples) + len(held_examples)
        train = samples_build(train_examples, _offset(track, 0, total))
        held = samples_build(held_examples, _offset(track, len(train_examples), total))
        track("training", 0, 1)
        ranker, cv = ranker_train(train, dimension)
        before_f1, _ = quote_f1(held, None)
        after_f1, changed = quote_f1(held, ranker)
        before = {"answer_f1": round(before_f1, 4), "questions": len(held)}
        after = {"answer_f1": round(after_f1, 4), "questions": len(held), "changed": changed}
        if ranker is None:
            reason = "the cross-validation kept the lexical ranking (nothing learned beats it)"
            promote = False
        elif after_f1 > before_f1:
            reason = f"held-back answer F1 {before_f1:.3f} -> {after_f1:.3f}"
            promote = True
        else:
            reason = f"held-back answer F1 did not improve ({before_f1:.3f} -> {after_f1:.3f})"
            promote = False
        version = None
        if ranker is not None and (promote or force):
            # The whole knowledge base's sentences: a first question about a chunk then costs
            # no embedding either.
            track("sentences", 0, 1)
            ranker = with_sentences(ranker, [*train, *held], kb_sentences(), get_embedder().encode)
            track.check()  # the last chance to cancel: installing runs to the end
            if not promote:
                logger.warning("fact ranker promoted by --force: %s", reason)
            version = _install(ranker, conf.fact_rankers_dir, reason)
        report = FactsReport(
            run_id=run_id,
            promoted=version is not None,
            forced=force and not promote and version is not None,
            reason=reason,
            before=before,
            after=after,
            trained_on=len(train),
            held_back=len(held),
            seconds=time.perf_counter() - started,
            cv=cv,
            model_version=version,
        )
        status = SpecialiseRun.Status.PROMOTED if version else SpecialiseRun.Status.REFUSED
        _finish(
            run_id,
            status,
            message=reason,
            report=report.to_json(),
            model_version=version,
            progress=100,
        )
        return report
    except SpecialiseCancelled:
        _finish(run_id, SpecialiseRun.Status.CANCELLED, message="cancelled; nothing served changed")
        raise
    except BaseException as exc:
        _finish(run_id, SpecialiseRun.Status.FAILED, message=f"{type(exc).__name__}: {exc}")
        raise


def _offset(track: Progress, base: int, total: int) -> Progress:
    """One stage's progress over two calls (the training examples, then the held-back ones)."""
    return lambda stage, done, _n: track(stage, base + done, total)


def _install(ranker: FactRanker, root: Any, reason: str) -> int:
    from ..versioned import discard

    root.mkdir(parents=True, exist_ok=True)
    folders = fact_ranker.FACT_RANKERS
    version = folders.next_version(root)
    staging = folders.staging_dir(root, version)
    try:
        meta = {**ranker.meta, "reason": reason}
        from dataclasses import replace

        fact_ranker.ranker_save(replace(ranker, meta=meta), staging)
        folders.install(root, staging, version)
    except BaseException:
        discard(staging)
        raise
    folders.publish(root, version)
    folders.prune(root, keep=KEEP_VERSIONS)
    return version


def fact_ranker_rollback() -> int | None:
    """Serve the fact ranker version before the current one (None: the lexical ranking);
    raises SpecialiseUnavailable when there is none."""
    root = get_support_settings().fact_rankers_dir
    try:
        return fact_ranker.FACT_RANKERS.rollback(root)
    except LookupError as exc:
        raise SpecialiseUnavailable(str(exc)) from exc
