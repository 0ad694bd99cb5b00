"""A chat model specialised on the company (issue 15; docs/learning.md, "A chat model specialised
on the company" and "The gate for the chat model, promotion and rollback").

`model_run_execute` runs one SpecialiseRun of kind "model" (the lock, heartbeat, cancel and
progress of support.learning.specialise, shared with retriever runs: one training job at a time):

1. samples: each approved, grounded, not held-back example's prompt exactly as the answer
   pipeline builds it, with the approved answer as the target (chat_train.chat_samples).
2. training from the configured GGUF (SUPPORT_MODEL_PATH, else the shipped one; never from an
   earlier specialised version, so a run does not build on an earlier run's mistakes), with
   checkpoints in SUPPORT_DATA_DIR/chat_models/work/<key>: a cancelled or killed run's next run
   with the same examples and settings resumes there (chat_train.chat_train).
3. export: the merged model written as GGUF at Q8_0 and at the source's own type (Q4_1 for the
   shipped SmolLM2), each checked against the torch model's greedy tokens
   (chat_export.export_verify); a failed check fails the run. Served: the export agreeing best
   with the torch model, the faster of two within QTYPE_NEAR of each other.
4. the gate (`chat_gate_evaluate`, `chat_gate_decide`): the held-back examples and the golden
   questions answered by the FULL answer pipeline (answers.pipeline.answer_compose: retrieval,
   fact selection, fact-biased decoding, the groundedness check, citations) with the served
   model and with the candidate, case by case. Promoted only when the held-back answers' token
   F1 against the approved answers improves, the answers' content-word support in their facts
   stays >= SUPPORT_CHAT_GATE_MIN_SUPPORT, should-be-declined questions are declined at least as
   often, and time to first token and tokens/s stay within SUPPORT_CHAT_GATE_SPEED_TOLERANCE.
   `--force` promotes anyway, logged.
5. promotion: the version folder model-vN is installed (support.llm.chat_models) and CURRENT
   flipped; every process switches at its next answer (backends.get_chat_model). A refused,
   cancelled, failed or killed run changes nothing served: its folder is deleted (a killed
   run's by the next run's prune) and its lock expires like a retriever run's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final

from django.utils import timezone

from .. import backends
from ..answers import words
from ..answers.measures import token_f1
from ..answers.pipeline import answer_compose
from ..answers.reasons import AnswerAction
from ..answers.types import Turn
from ..conf import SupportSettings, get_support_settings
from ..golden.evaluate import GOLDEN
from ..golden.gate import gate_report_store
from ..golden.questions import golden_cases
from ..llm import GenerationParams, chat_models
from ..llm.base import ChatModel
from ..llm.gguf_compat import compat_copy_forget, ensure_compatible_gguf
from ..llm.gguf_file import read_gguf
from ..models_golden import GateReport
from ..models_learning import Example, SpecialiseRun
from .examples import examples_for_training, examples_held_back
from .specialise import (
    GateDecision,
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

Status = SpecialiseRun.Status
HELD_BACK: Final = "held_back"
SEED: Final = 13
# Shares of the run's progress bar (percent, cumulative end): training dominates.
STAGES: Final = {
    "samples": 5,
    "training": 65,
    "exporting": 72,
    "verifying": 80,
    "evaluating": 98,
    "promoting": 100,
}
SERVED_QTYPE: Final = "Q8_0"
# Two exports whose export checks agree within this share are equally faithful: the faster serves.
QTYPE_NEAR: Final = 0.02
# Prompts and tokens of the speed probe of each export (the qtype choice, not the gate).
SPEED_PROMPTS: Final = 4
SPEED_TOKENS: Final = 24
EPS: Final = 1e-9


# --- the tools the run uses (chat_train and chat_export; fakes in unit tests) -------------------


@dataclass(frozen=True)
class Tools:
    """The issue 15 module contract (docs/learning.md): samples, training, export, its check."""

    samples: Callable[..., tuple[list[Any], dict[str, int]]]
    config: Callable[[], Any]
    train: Callable[..., Any]
    export: Callable[..., Path]
    verify: Callable[..., Any]
    # (model, prompts, eos_ids) -> the torch model's greedy tokens per prompt, computed once
    # for both exports' checks; None: each check computes them itself.
    reference: Callable[..., list[list[int]]] | None = None


def tools() -> Tools:
    """The real training and export code (imported here: torch, transformers and peft take
    seconds to import and never load in a serving process)."""
    from . import chat_export, chat_train

    return Tools(
        samples=chat_train.chat_samples,
        config=chat_train.ChatTrainConfig,
        train=chat_train.chat_train,
        export=chat_export.export_gguf,
        verify=chat_export.export_verify,
        reference=lambda model, prompts, eos_ids: chat_export.torch_reference(
            model, prompts, eos_ids=eos_ids
        ),
    )


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModelReport(RunReport):
    """A chat-model run. Per slice ("held_back", "golden" when there are golden questions,
    "overall"), `before` and `after` hold answer F1, support, declines, time to first token
    and tokens/s (ChatGateEvaluation.summary)."""

    kind: str = "model"
    training_seconds: float = 0.0
    steps: int = 0
    peak_rss_mb: float = 0.0
    skipped: dict[str, int] = field(default_factory=dict)
    served_qtype: str | None = None
    exports: tuple[dict[str, Any], ...] = ()
    worse: tuple[dict[str, Any], ...] = ()
    regressions: tuple[str, ...] = ()
    gate_report: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    ROUNDED: ClassVar[tuple[str, ...]] = ("seconds", "training_seconds", "peak_rss_mb")


@dataclass(frozen=True, slots=True)
class ModelRollback:
    model_version: int | None  # None: the configured (shipped) model
    seconds: float


# --- measures ---------------------------------------------------------------------------------

# --- the gate ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GateCase:
    """A question the gate answers with both models: a held-back example (its approved answer
    is the reference) or a golden question (should be declined, or answered from a document)."""

    key: str
    slice: str
    question: str
    history: tuple[Turn, ...] = ()
    reference: str | None = None
    should_decline: bool = False
    label: str = ""

    @property
    def answerable(self) -> bool:
        return not self.should_decline


@dataclass(frozen=True, slots=True)
class AnswerResult:
    key: str
    declined: bool
    answer: str  # the final text, citations stripped ("" when declined)
    action: str
    reason: str
    f1: float | None  # against the reference (declined: 0), None without one
    support: float | None  # content-word support in the facts shown; None when declined
    ttft_ms: float | None  # None when the model was not asked (declined, quoted)
    tokens_per_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "declined": self.declined,
            "answer": self.answer[:500],
            "reason": self.reason,
            "f1": None if self.f1 is None else round(self.f1, 4),
            "support": None if self.support is None else round(self.support, 4),
        }


def _median(values: Sequence[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def measures(cases: Sequence[GateCase], results: dict[str, AnswerResult]) -> dict[str, Any]:
    """One slice's (or all slices') measures on one model."""
    rows = [(c, results[c.key]) for c in cases if c.key in results]
    graded = [r for c, r in rows if c.reference is not None]
    declinable = [r for c, r in rows if c.should_decline]
    answerable = [r for c, r in rows if c.answerable]
    answered = [r for _c, r in rows if not r.declined and r.support is not None]
    timed = [r for _c, r in rows if r.ttft_ms is not None]
    declined_when_should = sum(r.declined for r in declinable)
    return {
        "questions": len(rows),
        "graded": len(graded),
        "answer_f1": _mean([r.f1 or 0.0 for r in graded]),
        "support": _mean([r.support or 0.0 for r in answered]),
        "answered": len(answered),
        "should_decline": len(declinable),
        "declined_when_should": (
            round(declined_when_should / len(declinable), 4) if declinable else None
        ),
        "answered_when_should_decline": len(declinable) - declined_when_should,
        "answerable_declined": sum(r.declined for r in answerable),
        "generated": len(timed),
        "ttft_ms": _median([r.ttft_ms for r in timed if r.ttft_ms is not None]),
        "tokens_per_s": _median([r.tokens_per_s for r in timed if r.tokens_per_s is not None]),
    }


@dataclass
class ChatGateEvaluation:
    slices: dict[str, list[GateCase]]
    before: dict[str, AnswerResult]
    after: dict[str, AnswerResult]
    seconds: float = 0.0

    @property
    def cases(self) -> list[GateCase]:
        return [c for cases in self.slices.values() for c in cases]

    def summary(self, side: str) -> dict[str, Any]:
        results = self.before if side == "before" else self.after
        out = {name: measures(cases, results) for name, cases in self.slices.items()}
        out["overall"] = measures(self.cases, results)
        return out

    def worse(self) -> list[dict[str, Any]]:
        """The questions that got worse: now answered although they should be declined, now
        declined although answerable, or a lower F1 against the approved answer."""
        rows = []
        for case in self.cases:
            was, now = self.before.get(case.key), self.after.get(case.key)
            if was is None or now is None:
                continue
            reasons = []
            if case.should_decline and was.declined and not now.declined:
                reasons.append("now_answered")
            if case.answerable and now.declined and not was.declined:
                reasons.append("now_declined")
            if was.f1 is not None and now.f1 is not None and now.f1 < was.f1 - 0.1:
                reasons.append("f1_dropped")
            if reasons:
                rows.append(
                    {
                        "slice": case.slice,
                        "key": case.key,
                        "question": case.question,
                        "expected": case.label,
                        "reasons": reasons,
                        "blocking": "now_answered" in reasons,
                        "before": was.as_dict(),
                        "after": now.as_dict(),
                    }
                )
        return rows


def example_turns(example: Example) -> tuple[Turn, ...]:
    """An example's history as the pipeline's turns (examples say "user" for the customer)."""
    return tuple(
        Turn("customer" if t.get("role") == "user" else "agent", str(t.get("text", "")))
        for t in example.history or []
    )


def gate_cases(held_back: Sequence[Example], *, limit: int) -> dict[str, list[GateCase]]:
    """The held-back examples (a seeded sample of `limit` when there are more) and the active
    golden questions."""
    chosen = sorted(held_back, key=lambda e: e.pk)
    if len(chosen) > limit:
        chosen = sorted(random.Random(SEED).sample(chosen, limit), key=lambda e: e.pk)  # noqa: S311
    slices = {
        HELD_BACK: [
            GateCase(
                key=f"{HELD_BACK}:{ex.pk}",
                slice=HELD_BACK,
                question=ex.question,
                history=example_turns(ex),
                reference=ex.answer,
                label=f"example #{ex.pk}",
            )
            for ex in chosen
        ]
    }
    golden = [
        GateCase(
            key=case.key,
            slice=GOLDEN,
            question=case.question,
            should_decline=case.should_decline,
            label=case.label,
        )
        for case in golden_cases()
    ]
    if golden:
        slices[GOLDEN] = golden
    return slices


def answer_case(case: GateCase) -> AnswerResult:
    """One case through the full answer pipeline with whatever model serves this thread.

    Answer memory is off: an approved example's answer comes from neither model, and a
    held-back question close to a training example would get it with both (docs/learning.md)."""
    draft = answer_compose(question=case.question, history=case.history, answer_memory=False)
    declined = draft.action == AnswerAction.ESCALATE
    answer = "" if declined else words.strip_citations(draft.text)
    timings = draft.timings
    ttft = timings.get("ttft_ms") if draft.generated or timings.get("tokens") else None
    tokens, generate_ms = timings.get("tokens") or 0, timings.get("generate_ms") or 0.0
    rate = None
    if ttft is not None and tokens >= 2 and generate_ms > ttft:
        rate = (tokens - 1) / ((generate_ms - ttft) / 1000.0)
    return AnswerResult(
        key=case.key,
        declined=declined,
        answer=answer,
        action=str(draft.action),
        reason=str(draft.reason),
        f1=None
        if case.reference is None
        else (0.0 if declined else token_f1(answer, case.reference)),
        support=None if declined else words.content_support(answer, [f.text for f in draft.facts]),
        ttft_ms=ttft,
        tokens_per_s=rate,
    )


def chat_gate_evaluate(
    *,
    served: ChatModel,
    candidate: ChatModel,
    slices: dict[str, list[GateCase]],
    on_case: Callable[[int, int], None] | None = None,
) -> ChatGateEvaluation:
    """Answer every case with the served model and with the candidate, alternating which goes
    first (so a machine's changing load favours neither side's timings). The candidate answers
    only in this thread (backends.chat_model_override): customers keep the served model."""
    started = time.perf_counter()
    evaluation = ChatGateEvaluation(slices, {}, {})
    cases = evaluation.cases
    for i, case in enumerate(cases):
        order = [("before", served), ("after", candidate)]
        if i % 2:
            order.reverse()
        for side, model in order:
            with backends.chat_model_override(model):
                result = answer_case(case)
            (evaluation.before if side == "before" else evaluation.after)[case.key] = result
        if on_case is not None:
            on_case(i + 1, len(cases))
    evaluation.seconds = time.perf_counter() - started
    return evaluation


def chat_gate_decide(
    evaluation: ChatGateEvaluation, *, min_support: float, speed_tolerance: float
) -> GateDecision:
    """Promote only when every rule holds (see the module docstring); the reasons otherwise."""
    before, after = evaluation.summary("before"), evaluation.summary("after")
    held_was, held_now = before.get(HELD_BACK, {}), after.get(HELD_BACK, {})
    overall_was, overall_now = before["overall"], after["overall"]
    regressions = []
    f1_was, f1_now = held_was.get("answer_f1"), held_now.get("answer_f1")
    if f1_was is None or f1_now is None:
        regressions.append("no held-back examples to measure answer F1 on")
    elif f1_now <= f1_was + EPS:
        regressions.append(f"held-back answer F1 did not improve ({f1_was:.3f} -> {f1_now:.3f})")
    support = overall_now["support"]
    if support is not None and support < min_support - EPS:
        regressions.append(
            f"content-word support {support:.3f} is below {min_support:.2f} "
            f"(served model: {overall_was['support']})"
        )
    for name in evaluation.slices:
        was = before[name]["answered_when_should_decline"]
        now = after[name]["answered_when_should_decline"]
        if now > was:
            regressions.append(
                f"{name}: {now} should-be-declined question(s) answered, {was} before"
            )
    ttft_was, ttft_now = overall_was["ttft_ms"], overall_now["ttft_ms"]
    if ttft_was and ttft_now and ttft_now > ttft_was * (1 + speed_tolerance):
        regressions.append(
            f"time to first token {ttft_now:.0f} ms, above {ttft_was:.0f} ms +{speed_tolerance:.0%}"
        )
    tps_was, tps_now = overall_was["tokens_per_s"], overall_now["tokens_per_s"]
    if tps_was and tps_now and tps_now < tps_was * (1 - speed_tolerance):
        regressions.append(f"{tps_now:.1f} tokens/s, below {tps_was:.1f} -{speed_tolerance:.0%}")
    worse = tuple(evaluation.worse())
    if regressions:
        return GateDecision(
            False, "refused: " + "; ".join(regressions[:5]), tuple(regressions), worse
        )
    return GateDecision(
        True,
        f"held-back answer F1 {f1_was:.3f} -> {f1_now:.3f}, support {support}, declines and "
        "speed kept",
        (),
        worse,
    )


# --- export -----------------------------------------------------------------------------------


def source_qtype(path: Path) -> str:
    """The quantization most of a GGUF's 2-D weights use ("Q4_1" for the shipped SmolLM2)."""
    info = read_gguf(path)
    counts = Counter(t.ggml_type.name for t in info.tensors if len(t.shape) >= 2)
    return counts.most_common(1)[0][0] if counts else SERVED_QTYPE


def speed_probe(model: ChatModel, prompts: Sequence[Sequence[int]]) -> dict[str, float | None]:
    """Median time to first token and tokens/s of a few greedy continuations."""
    ttft, rates = [], []
    for prompt in list(prompts)[:SPEED_PROMPTS]:
        with model.stream(list(prompt), GenerationParams(max_tokens=SPEED_TOKENS)) as stream:
            stream.text()
        stats = stream.stats
        if stats is not None and stats.ttft_s is not None:
            ttft.append(stats.ttft_s * 1000)
            if stats.decode_tokens_per_s:
                rates.append(stats.decode_tokens_per_s)
    return {"ttft_ms": _median(ttft), "tokens_per_s": _median(rates)}


def export_choose(exports: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The export to serve: of those whose check passed, the one agreeing best with the torch
    model; between two within QTYPE_NEAR, the faster. None when every check failed."""
    ok = [e for e in exports if e["ok"]]
    if not ok:
        return None
    best = max(e["agreement"] for e in ok)
    near = [e for e in ok if e["agreement"] >= best - QTYPE_NEAR]
    return max(near, key=lambda e: (e.get("tokens_per_s") or 0.0, e["agreement"]))


# --- the run ----------------------------------------------------------------------------------


def model_run_check(conf: SupportSettings | None = None) -> None:
    """Raise SpecialiseUnavailable when a chat-model run cannot serve what it trains."""
    conf = conf or get_support_settings()
    if conf.model_path:
        raise SpecialiseUnavailable(
            "SUPPORT_MODEL_PATH pins the chat model: a specialised model would never be served. "
            "Unset it to serve the shipped model and its specialised versions."
        )


def model_specialise(
    *, force: bool = False, by: Any = None, progress: Progress | None = None
) -> ModelReport:
    """Create a chat-model run and execute it here (the command); raises SpecialiseBusy."""
    model_run_check()
    run = run_create(force=force, by=by, kind=SpecialiseRun.Kind.MODEL)
    return model_run_execute(run_id=run.pk, progress=progress)


def _workdir_key(base: Path, samples: Sequence[Any], config: Any) -> str:
    """Checkpoints are resumed only by a run training the same base on the same samples with
    the same settings (chat_train also checks its config hash)."""
    st = base.stat()
    digest = hashlib.sha256()
    digest.update(f"{base.resolve()}|{st.st_size}|{st.st_mtime_ns}|{config!r}".encode())
    for s in samples:
        digest.update(repr((s.example_id, tuple(s.prompt_ids), tuple(s.target_ids))).encode())
    return digest.hexdigest()[:16]


def _refused(run_id: int, report: ModelReport) -> ModelReport:
    _finish(run_id, Status.REFUSED, message=report.reason, report=report.to_json(), progress=100)
    return report


def model_run_execute(
    *, run_id: int, progress: Progress | None = None, use: Tools | None = None
) -> ModelReport:
    """Execute a queued chat-model run (see the module docstring); its report is stored on the
    run and as a GateReport. Raises SpecialiseCancelled when cancelled, SpecialiseUnavailable
    when it cannot run; then, and on any failure, nothing served has changed."""
    started = time.perf_counter()
    conf = get_support_settings()
    run = SpecialiseRun.objects.get(pk=run_id)
    if run.kind != SpecialiseRun.Kind.MODEL:
        raise SpecialiseBusy(f"run {run_id} specialises the {run.get_kind_display().lower()}")
    if not run.holds_lock or run.status != Status.QUEUED:
        raise SpecialiseBusy(f"run {run_id} is not queued ({run.status})")
    SpecialiseRun.objects.filter(pk=run_id).update(
        status=Status.RUNNING, heartbeat_at=timezone.now()
    )
    track = _Tracker(run_id, progress, STAGES)
    force = run.force
    root = conf.chat_models_dir
    staging: Path | None = None
    installed: chat_models.ChatModelVersion | None = None
    timings: dict[str, float] = {}
    try:
        model_run_check(conf)
        tk = use or tools()
        track("samples", 0, 1)
        train = list(examples_for_training().order_by("pk"))
        held = list(examples_held_back().order_by("pk"))
        slices = gate_cases(held, limit=conf.chat_gate_max_questions)
        served = backends.get_chat_model()
        base = conf.configured_model_path()
        samples, skipped = tk.samples(train, model=served) if train else ([], {})
        track("samples", 1, 1)
        timings["samples"] = time.perf_counter() - started
        held_n = len(slices[HELD_BACK])
        if len(samples) < conf.chat_specialise_min_examples:
            return _refused(
                run_id,
                ModelReport(
                    run_id,
                    False,
                    force,
                    f"{len(samples)} training example(s), fewer than "
                    f"SUPPORT_CHAT_SPECIALISE_MIN_EXAMPLES ({conf.chat_specialise_min_examples})"
                    ": nothing trained",
                    {},
                    {},
                    len(samples),
                    held_n,
                    time.perf_counter() - started,
                    skipped=dict(skipped),
                ),
            )
        if not held_n and not force:
            return _refused(
                run_id,
                ModelReport(
                    run_id,
                    False,
                    force,
                    "no held-back examples to evaluate on: nothing trained",
                    {},
                    {},
                    len(samples),
                    0,
                    time.perf_counter() - started,
                    skipped=dict(skipped),
                ),
            )
        root.mkdir(parents=True, exist_ok=True)
        for gone in chat_models.prune(root):
            compat_copy_forget(gone, conf.model_cache_dir)
        config = tk.config()
        key = _workdir_key(base, samples, config)
        work_root = root / "work"
        work_root.mkdir(exist_ok=True)
        for old in work_root.iterdir():
            if old.name != key:  # an earlier run's checkpoints no later run can resume
                shutil.rmtree(old, ignore_errors=True)
        workdir = work_root / key
        t0 = time.perf_counter()
        result = tk.train(
            samples,
            base_gguf=base,
            workdir=workdir,
            config=config,
            on_step=lambda d, t: track("training", d, t, check=False),
            should_stop=track.cancelled,
        )
        timings["training"] = time.perf_counter() - t0
        track.check()
        version = chat_models.next_version(root)
        staging = chat_models.staging_dir(root, version)
        staging.mkdir(parents=True)
        base_sha = _sha256(base)
        hyper = dict(getattr(result, "hyperparameters", {}) or {})
        metadata: dict[str, str | int | float] = {
            "base_model": base.name,
            "base_sha256": base_sha,
            "examples": len(samples),
            "example_ids": json.dumps([s.example_id for s in samples]),
            "hyperparameters": json.dumps(hyper, sort_keys=True, default=str),
            "run": run_id,
            "version": version,
        }
        prompts = _verify_prompts(samples, conf.chat_export_verify_prompts)
        exports = []
        qtypes = list(dict.fromkeys([SERVED_QTYPE, source_qtype(base)]))
        t0 = time.perf_counter()
        verify_options: dict[str, Any] = {}
        if tk.reference is not None:
            track("verifying", 0, len(qtypes))
            verify_options["reference"] = tk.reference(result.model, prompts, served.eos_token_ids)
        for n, qtype in enumerate(qtypes):
            track("exporting", n, len(qtypes))
            out = staging / f"model.{qtype}.gguf"
            tk.export(result.model, source=base, out=out, qtype=qtype, metadata=metadata)
            track("verifying", n, len(qtypes))
            check = tk.verify(result.model, out, prompts, qtype=qtype, **verify_options)
            entry: dict[str, Any] = {
                "qtype": qtype,
                "ok": bool(check.ok),
                "agreement": round(float(check.agreement), 4),
                "prompts": int(check.prompts),
                "exact": int(check.exact),
                "backend": str(check.backend),
                "bytes": out.stat().st_size,
            }
            if check.ok:
                probe = backends.chat_model_load(out)
                entry.update(speed_probe(probe, prompts))
                del probe
                # Its ctransformers copy is keyed by this temporary path: let it go now (the
                # gate's load of the installed file makes the one that is kept).
                compat_copy_forget(out, conf.model_cache_dir)
            exports.append(entry)
        timings["export"] = time.perf_counter() - t0
        chosen = export_choose(exports)
        if chosen is None:
            raise ExportFailed(
                "the export check failed for "
                + ", ".join(f"{e['qtype']} (agreement {e['agreement']})" for e in exports)
            )
        for e in exports:
            path = staging / f"model.{e['qtype']}.gguf"
            if e is chosen:
                path.rename(staging / chat_models.MODEL_FILE)
            else:
                path.unlink(missing_ok=True)
        installed = chat_models.install(
            root,
            staging,
            version,
            {
                "base": str(base),
                "base_sha256": base_sha,
                "qtype": chosen["qtype"],
                "exports": exports,
                "trained_on": len(samples),
                "example_ids": [s.example_id for s in samples],
                "hyperparameters": hyper,
                "steps": int(getattr(result, "steps", 0)),
                "peak_rss_mb": float(getattr(result, "peak_rss_mb", 0.0)),
                "run": run_id,
                "created_at": timezone.now().isoformat(timespec="seconds"),
            },
        )
        staging = None
        steps = int(getattr(result, "steps", 0))
        peak_rss_mb = float(getattr(result, "peak_rss_mb", 0.0))
        track("evaluating", 0, 1)
        t0 = time.perf_counter()
        candidate = backends.chat_model_load(installed.model_file)
        evaluation = chat_gate_evaluate(
            served=served,
            candidate=candidate,
            slices=slices,
            on_case=lambda d, t: track("evaluating", d, t),
        )
        timings["evaluating"] = time.perf_counter() - t0
        decision = chat_gate_decide(
            evaluation,
            min_support=conf.chat_gate_min_support,
            speed_tolerance=conf.chat_gate_speed_tolerance,
        )
        promote = decision.promote or force
        track.check()  # the last point a cancel is honoured: promotion is not interrupted
        reason = decision.reason if decision.promote or not force else f"forced ({decision.reason})"
        before_version = chat_models.current_version(root) or None
        gate_report = gate_report_store(
            kind=GateReport.Kind.LEARNING,
            decision=(
                GateReport.Decision.PROMOTED
                if decision.promote
                else GateReport.Decision.FORCED
                if promote
                else GateReport.Decision.REFUSED
            ),
            evaluation=None,
            summaries=(evaluation.summary("before"), evaluation.summary("after")),
            worse=decision.worse,
            regressions=decision.regressions,
            before_version=before_version,
            after_version=version if promote else None,
            changes={
                "chat_model": installed.label,
                "run": run_id,
                "trained_on": len(samples),
                "held_back": held_n,
                "qtype": chosen["qtype"],
            },
            note=f"specialise --model run {run_id}: {reason}",
        )
        report = ModelReport(
            run_id=run_id,
            promoted=promote,
            forced=force and not decision.promote,
            reason=reason,
            before=evaluation.summary("before"),
            after=evaluation.summary("after"),
            trained_on=len(samples),
            held_back=held_n,
            seconds=time.perf_counter() - started,
            training_seconds=timings["training"],
            steps=steps,
            peak_rss_mb=peak_rss_mb,
            skipped=dict(skipped),
            model_version=version if promote else None,
            served_qtype=chosen["qtype"],
            exports=tuple(exports),
            worse=decision.worse,
            regressions=decision.regressions,
            gate_report=gate_report.pk,
            hyperparameters=hyper,
            timings=timings,
        )
        if promote:
            track("promoting", 0, 1)
            t0 = time.perf_counter()
            _gate_report_embed(
                tk,
                result.model,
                installed,
                base=base,
                qtype=chosen["qtype"],
                metadata={**metadata, "gate_report": json.dumps(report.to_json(), sort_keys=True)},
                conf=conf,
            )
            timings["promoting"] = time.perf_counter() - t0
            chat_models.meta_update(installed, gate=report.to_json())
            chat_models.publish(root, version)
            if force and not decision.promote:
                logger.warning(
                    "specialise --model run %s: %s promoted by force although the gate said: %s",
                    run_id,
                    installed.label,
                    decision.reason,
                )
            logger.info("specialise --model run %s: serving %s", run_id, installed.label)
        else:
            _discard(installed, conf)
        shutil.rmtree(workdir, ignore_errors=True)  # trained and decided: nothing to resume
        _finish(
            run_id,
            Status.PROMOTED if promote else Status.REFUSED,
            message=reason,
            report=report.to_json(),
            model_version=report.model_version,
            progress=100,
        )
        return report
    except SpecialiseCancelled:
        _cleanup(conf, staging, installed)
        _finish(run_id, Status.CANCELLED, message="cancelled; nothing served changed")
        raise
    except BaseException as exc:
        _cleanup(conf, staging, installed)
        _finish(run_id, Status.FAILED, message=f"{type(exc).__name__}: {exc}")
        raise


class ExportFailed(SpecialiseUnavailable):
    code = "specialise_export_failed"


def _gate_report_embed(
    tk: Tools,
    model: Any,
    installed: chat_models.ChatModelVersion,
    *,
    base: Path,
    qtype: str,
    metadata: dict[str, str | int | float],
    conf: SupportSettings,
) -> None:
    """Export the promoted weights once more with the gate's report among the file's metadata
    (the same weights and quantization: only metadata differs from the file the gate measured)
    and put it in place of the unpublished version's model.gguf; its ctransformers copy is made
    here, so serving processes do not convert it."""
    staged = installed.path / f"{chat_models.MODEL_FILE}.with-report"
    try:
        tk.export(model, source=base, out=staged, qtype=qtype, metadata=metadata)
        compat_copy_forget(installed.model_file, conf.model_cache_dir)
        staged.replace(installed.model_file)
    finally:
        staged.unlink(missing_ok=True)
    if conf.generator_backend.endswith("CTransformersChatModel"):
        ensure_compatible_gguf(installed.model_file, conf.model_cache_dir)


def _verify_prompts(samples: Sequence[Any], n: int) -> list[list[int]]:
    """The export check's prompts: the training samples' prompts (the answer pipeline's prompts
    for real questions), up to `n`, spread over the samples."""
    chosen = list(samples)
    if len(chosen) > n:
        chosen = random.Random(SEED).sample(chosen, n)  # noqa: S311
    return [list(s.prompt_ids) for s in chosen]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def _discard(model: chat_models.ChatModelVersion, conf: SupportSettings) -> None:
    compat_copy_forget(model.model_file, conf.model_cache_dir)
    chat_models.discard(model.path)


def _cleanup(
    conf: SupportSettings, staging: Path | None, installed: chat_models.ChatModelVersion | None
) -> None:
    if staging is not None:
        chat_models.discard(staging)
    if (
        installed is not None
        and chat_models.current_version(conf.chat_models_dir) != installed.version
    ):
        _discard(installed, conf)


def model_rollback(*, by: Any = None) -> ModelRollback:
    """Serve the chat-model version before the current one (the configured model at the
    bottom): CURRENT flipped back; every process switches at its next answer. Takes the
    specialisation lock; raises SpecialiseUnavailable when there is nothing to roll back to."""
    started = time.perf_counter()
    conf = get_support_settings()
    run = run_create(by=by, kind=SpecialiseRun.Kind.MODEL)
    try:
        model_run_check(conf)
        version = chat_models.rollback(conf.chat_models_dir)
    except (LookupError, SpecialiseUnavailable) as exc:
        SpecialiseRun.objects.filter(pk=run.pk).delete()
        raise SpecialiseUnavailable(str(exc)) from exc
    except BaseException as exc:
        _finish(run.pk, Status.FAILED, message=f"rollback failed: {type(exc).__name__}: {exc}")
        raise
    label = chat_models.label_of(version) if version else "the shipped chat model"
    logger.info("chat model rolled back to %s", label)
    _finish(
        run.pk,
        Status.ROLLED_BACK,
        message=f"rolled back to {label}",
        model_version=version,
        progress=100,
    )
    return ModelRollback(version, time.perf_counter() - started)
