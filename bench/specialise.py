"""The chat model specialised on the company (issue 15 item 5): 2-fold on the doc2dial dialogues.

Usage (from the repository root, with the project venv)::

    python bench/specialise.py                      # both folds, every reply of a half
    python bench/specialise.py --quick              # one fold, 60 replies, 40 questions, 12 steps
    python bench/specialise.py --examples 300 --questions 80 --steps 60 --folds 1 --out r.json
    python bench/specialise.py --inner --questions 40 \
        --recipe defaults:steps=30 --recipe gentle:lr=5e-5,modules=qv,support=0.6,steps=30

`--inner` tunes training recipes without touching half B: half A is split again by dialogue,
the first part's replies are imported and turned into samples once, each `--recipe` trains on
them (`support=` keeps the samples whose answer's content-word support in the prompt's facts is
at least that, `grounded=1` those the pipeline's check would keep; `target=best_fact` trains on
the prompt's fact that agrees best with each approved answer instead, SUPPORT_CHAT_TRAIN_TARGET),
is exported at Q8_0 and answers the second part's questions through the full pipeline (answer
memory off); reported:
F1, support, declines, and what the groundedness check did (generations kept, F1 of the kept
ones, of the quotes instead, and of every generation as if kept). The training loss shown is
the mean of the first and the last fifth of the steps' batches (other samples: a rough sign).

The dev dialogues of ../shared/eval/doc2dial are split by dialogue into two halves
(bench/learning.py's `halves`, the same split as the learning benchmark). One half's agent
replies are imported as a help desk would have them (question, history, answer: no span, no
document; `examples_import --approve`, grounding inferred from the answer), and the chat model is
specialised on them through the product's own path, `specialise --model --force`
(support.learning.chat_specialise.model_specialise: samples built as the answer pipeline builds
its prompt, LoRA training, GGUF export and its check, the gate; `--force` serves the new model
whatever the gate says, so its effect can be measured, and the gate's verdict is recorded). The
other half's questions (first turns and follow-ups with their history; the graded ones are the
agent replies that are statements, plus the unanswerable first turns) are then answered through
the full pipeline (`answer_compose`: retrieval, fact selection, fact-biased decoding, the
groundedness check) by the shipped model (before) and by the specialised one (after). Then the
halves swap. Reported per fold and pooled:

- token F1 and ROUGE-L against the agents' replies (declines score 0), the extractive baseline
  (the top passage's best sentence, bench/answers.py) on the same questions;
- content-word support of the answers in their facts; unanswerable and answerable declined;
- time to first token (p50) and tokens/s of generation for both GGUF files, on the same prompts;
- training time, steps, samples, peak RSS of the run, and the gate's verdict.

Targets (issue 15): F1 >= 0.40 with support >= 0.95 and unanswerable declined >= 85 %.

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import answers as answers_bench
import learning as learning_bench

QUICK = {"examples": 60, "questions": 40, "steps": 12}
TARGET_F1 = 0.40
TARGET_SUPPORT = 0.95
TARGET_UNANSWERABLE_DECLINED = 0.85


def _order(key: str) -> str:
    return hashlib.sha256(f"specialise:{key}".encode()).hexdigest()


def eval_questions(test_half: set[str], limit: int | None) -> list[common.EvalQuestion]:
    """The evaluated half's graded questions and unanswerable first turns, in a stable order
    (a hash of the id), the unanswerable ones kept in proportion when `limit` cuts."""
    questions = [
        *common.load_questions(),
        *common.load_questions(name="questions_multiturn.jsonl"),
    ]
    mine = [q for q in questions if learning_bench.dialogue_of(q.id) in test_half]
    graded = sorted((q for q in mine if q.graded), key=lambda q: _order(q.id))
    unanswerable = sorted((q for q in mine if not q.answerable), key=lambda q: _order(q.id))
    if limit is not None:
        share = len(unanswerable) / max(1, len(graded) + len(unanswerable))
        n_una = max(1, round(limit * share)) if unanswerable else 0
        graded, unanswerable = graded[: limit - n_una], unanswerable[:n_una]
    return graded + unanswerable


def evaluate(questions: list[common.EvalQuestion], log: Any, label: str) -> dict[str, Any]:
    """Every question through the full answer pipeline with the served chat model."""
    t0 = time.perf_counter()
    rows = [answers_bench.run_one(q) for q in questions]
    summary = answers_bench.summarize(rows) | check_split(rows)
    generated = [r for r in rows if r["generated"] and r.get("generate_ms")]
    tokens = sum(r["tokens"] or 0 for r in generated)
    seconds = sum((r["generate_ms"] or 0) - (r["ttft_ms"] or 0) for r in generated) / 1000
    summary["tokens_per_s"] = round(tokens / seconds, 1) if seconds > 0 else None
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    log(
        f"  {label}: F1 {common.fmt(summary['f1'])}, ROUGE-L {common.fmt(summary['rouge_l'])}, "
        f"baseline F1 {common.fmt(summary['baseline_f1'])}, support "
        f"{common.fmt(summary['support_prompt'])}, unanswerable declined "
        f"{common.fmt(summary['unanswerable_declined'])}, answerable declined "
        f"{common.fmt(summary['answerable_declined'])}, TTFT p50 {summary['ttft_ms_p50']} ms, "
        f"{summary['tokens_per_s']} tokens/s ({summary['seconds']} s)"
    )
    return {"summary": summary, "rows": [_slim(r) for r in rows]}


def check_split(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What the groundedness check did to the model's answers on the graded questions: how many
    it kept, their F1, the F1 of the quotes it fell back to, and the F1 the model's own text
    would have scored had every generation been kept (docs/learning.md, the recipe sweep)."""
    from support.answers import words

    graded = [r for r in rows if r["graded"] and r["generated"]]
    kept = [r for r in graded if r["action"] == "answer"]
    quoted = [r for r in graded if r["action"] == "extractive"]
    return {
        "graded_generated": len(graded),
        "kept": len(kept),
        "kept_f1": common.mean(r["f1"] for r in kept),
        "fallback_f1": common.mean(r["f1"] for r in quoted),
        "generated_f1": common.mean(
            answers_bench.token_f1(words.strip_citations(r["generated"]), r["reference"] or "")
            for r in graded
        ),
        "generated_words": common.mean(
            len(words.strip_citations(r["generated"]).split()) for r in graded
        ),
        "generated_questions": sum(r["generated"].rstrip().endswith("?") for r in graded),
    }


def _slim(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "answerable", "graded", "action", "reason", "declined", "f1", "rouge_l")
    return {k: row.get(k) for k in keys} | {
        "answer": (row.get("answer") or "")[:300],
        "generated": (row.get("generated") or "")[:300],
    }


def fold(
    name: str,
    train_turns: list[learning_bench.Turn],
    questions: list[common.EvalQuestion],
    log: Any,
) -> dict[str, Any]:
    from support import backends
    from support.learning.chat_specialise import model_rollback, model_specialise
    from support.learning.examples import ImportSummary, examples_import
    from support.models_learning import Example, SpecialiseRun

    started = time.perf_counter()
    backends.reset_backends()
    before = evaluate(questions, log, "shipped model")
    summary = ImportSummary()
    lines = [learning_bench.import_line(t) for t in train_turns if t.reply]
    t0 = time.perf_counter()
    for _ in examples_import(lines=lines, approve=True, summary=summary):
        pass
    import_s = time.perf_counter() - t0
    log(f"  imported {len(lines)} replies in {import_s:.0f} s: {summary.render()}")
    report = model_specialise(force=True)
    data = report.to_json()
    log(
        f"  trained on {report.trained_on} samples, {report.steps} steps in "
        f"{report.training_seconds:.0f} s (peak RSS {report.peak_rss_mb:.0f} MB); served "
        f"{report.served_qtype}; gate: {report.reason}"
    )
    after = evaluate(questions, log, "specialised model")
    result = {
        "fold": name,
        "imported": len(lines),
        "import_s": round(import_s, 1),
        "questions": len(questions),
        "trained_on": report.trained_on,
        "skipped": data.get("skipped"),
        "held_back": report.held_back,
        "steps": report.steps,
        "training_s": round(report.training_seconds, 1),
        "specialise_s": round(report.seconds, 1),
        "peak_rss_mb": round(report.peak_rss_mb, 1),
        "served_qtype": report.served_qtype,
        "exports": data.get("exports"),
        "hyperparameters": data.get("hyperparameters"),
        "timings": data.get("timings"),
        "gate_promoted": report.promoted and not report.forced,
        "gate": report.reason,
        "gate_before": data.get("before"),
        "gate_after": data.get("after"),
        "before": before["summary"],
        "after": after["summary"],
        "rows_before": before["rows"],
        "rows_after": after["rows"],
    }
    # Back to the shipped model and no examples, for the other fold.
    model_rollback()
    Example.objects.all().delete()
    SpecialiseRun.objects.all().delete()
    backends.reset_backends()
    result["fold_s"] = round(time.perf_counter() - started, 1)
    return result


# -- tuning on an inner split (--inner) ------------------------------------------------------------
MODULES = {
    "all": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    "qv": ("q_proj", "v_proj"),
    "attn": ("q_proj", "k_proj", "v_proj", "o_proj"),
}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One training configuration of the sweep: `name:lr=1e-4,r=4,modules=qv,grounded=1,steps=40`
    (unset keys keep the SUPPORT_CHAT_TRAIN_* settings; alpha defaults to 2 r)."""

    name: str
    values: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Recipe:
        name, _, rest = text.partition(":")
        values = dict(kv.split("=", 1) for kv in rest.split(",") if kv.strip())
        unknown = set(values) - {
            "lr",
            "r",
            "alpha",
            "modules",
            "grounded",
            "support",
            "steps",
            "target",
        }
        if unknown:
            raise SystemExit(f"recipe {name}: unknown keys {sorted(unknown)}")
        return cls(name, values)

    @property
    def target(self) -> str:
        """What the samples teach: "answer" (the approved answer) or "best_fact"."""
        return self.values.get("target", "answer")

    @property
    def grounded(self) -> bool:
        return self.values.get("grounded", "0") in ("1", "true", "yes")

    def chosen(self, samples: list[Any]) -> list[Any]:
        """The samples this recipe trains on: all, the grounded ones, or those whose answer's
        content-word support in the prompt's facts is at least `support`."""
        least = float(self.values.get("support", 0))
        return [s for s in samples if (s.grounded or not self.grounded) and s.support >= least]

    def config(self, default_steps: int | None) -> Any:
        from support.learning.chat_train import ChatTrainConfig

        kw: dict[str, Any] = {"checkpoint_every": 10_000}
        if "lr" in self.values:
            kw["learning_rate"] = float(self.values["lr"])
        if "r" in self.values:
            kw["lora_r"] = int(self.values["r"])
            kw["lora_alpha"] = int(self.values.get("alpha", 2 * kw["lora_r"]))
        elif "alpha" in self.values:
            kw["lora_alpha"] = int(self.values["alpha"])
        if "modules" in self.values:
            kw["target_modules"] = MODULES[self.values["modules"]]
        steps = int(self.values["steps"]) if "steps" in self.values else default_steps
        if steps is not None:
            kw["steps"] = steps
        return ChatTrainConfig(**kw)


def sample_diagnosis(examples: list[Any], samples: list[Any]) -> dict[str, Any]:
    """Do the targets (approved answers) agree with the facts their prompts show?"""
    by_id = {e.pk: e for e in examples}
    answers = [(by_id[s.example_id].answer or "").strip() for s in samples]
    supports = sorted(s.support for s in samples)

    def share(pred: Any) -> float | None:
        return sum(map(pred, samples)) / len(samples) if samples else None

    return {
        "samples": len(samples),
        "grounded": sum(s.grounded for s in samples),
        "grounded_share": share(lambda s: s.grounded),
        "support_median": supports[len(supports) // 2] if supports else None,
        "support_below_075": share(lambda s: s.support < 0.75),
        "support_at_least": {
            str(t): sum(s.support >= t for s in samples) for t in (0.5, 0.6, 0.7, 0.8, 0.9)
        },
        "questions": sum(a.endswith("?") for a in answers),
        "questions_grounded": sum(
            a.endswith("?") and s.grounded for a, s in zip(answers, samples, strict=True)
        ),
    }


def inner(
    args: argparse.Namespace,
    turns: list[learning_bench.Turn],
    half: list[str],
    recipes: list[Recipe],
    log: Any,
) -> dict[str, Any]:
    """Split one half again by dialogue: learn from the first part's replies, answer the second
    part's questions; the other half is never touched. Every recipe trains on the same
    samples (the grounded ones when it says so) and is served as a Q8_0 export, like a
    specialised model (the export check and the gate are skipped: this measures recipes)."""
    import atexit
    import shutil
    import tempfile

    from django.test import override_settings

    from support import backends
    from support.conf import get_support_settings
    from support.learning import chat_train
    from support.learning.chat_export import export_gguf
    from support.learning.chat_torch import load_torch_chat_model
    from support.learning.examples import ImportSummary, examples_for_training, examples_import

    learn, answer = learning_bench.halves(half, salt="inner")
    learn_set, answer_set = set(learn), set(answer)
    train_turns = sorted(
        (t for t in turns if t.dialogue in learn_set and t.reply),
        key=lambda t: _order(t.question.id),
    )[: args.examples]
    questions = eval_questions(answer_set, args.questions)
    log(
        f"inner split of half A: {len(learn)} dialogues ({len(train_turns)} replies) to learn "
        f"from, {len(answer)} dialogues ({len(questions)} questions) to answer"
    )
    summary = ImportSummary()
    t0 = time.perf_counter()
    for _ in examples_import(
        lines=[learning_bench.import_line(t) for t in train_turns], approve=True, summary=summary
    ):
        pass
    log(f"  imported in {time.perf_counter() - t0:.0f} s: {summary.render()}")
    backends.reset_backends()
    conf = get_support_settings()
    examples = list(examples_for_training().order_by("pk"))
    samples, skipped = chat_train.chat_samples(
        examples, model=backends.get_chat_model(), grounded_only=False, target="answer"
    )
    diagnosis = sample_diagnosis(examples, samples)
    log(f"  {len(samples)} samples (skipped {skipped}); targets: {diagnosis}")
    by_target: dict[str, tuple[list[Any], dict[str, int]]] = {"answer": (samples, skipped)}
    for kind in sorted({r.target for r in recipes} - {"answer"}):
        t0 = time.perf_counter()
        built = chat_train.chat_samples(
            examples, model=backends.get_chat_model(), grounded_only=False, target=kind
        )
        by_target[kind] = built
        agree = sorted(s.answer_f1 for s in built[0])
        log(
            f"  target {kind}: {len(built[0])} samples (skipped {built[1]}), "
            f"{sum(s.grounded for s in built[0])} pass the check, token F1 to the approved "
            f"answer median {agree[len(agree) // 2] if agree else None}; "
            f"{time.perf_counter() - t0:.0f} s"
        )
    results: list[dict[str, Any]] = []
    # The models answer on their own: an approved example recalled from memory is neither's.
    with override_settings(SUPPORT_ANSWER_MEMORY=False):
        before = evaluate(questions, log, "shipped model")
        base = conf.configured_model_path()
        preloaded = load_torch_chat_model(base, threads=conf.chat_train_threads or None)
        work = Path(tempfile.mkdtemp(prefix="bench-specialise-inner-"))
        atexit.register(shutil.rmtree, work, True)  # checkpoints and exports
        for recipe in recipes:
            chosen = recipe.chosen(by_target[recipe.target][0])
            config = recipe.config(args.steps)
            if not chosen:
                log(f"recipe {recipe.name}: no sample left, nothing trained")
                continue
            log(
                f"recipe {recipe.name}: {len(chosen)} samples, {config.hyperparameters(len(chosen))}"
            )
            t0 = time.perf_counter()
            trained = chat_train.chat_train(
                chosen,
                base_gguf=base,
                workdir=work / recipe.name,
                config=config,
                preloaded=preloaded,
            )
            train_s = time.perf_counter() - t0
            out = export_gguf(trained.model, source=base, out=work / f"{recipe.name}.gguf")
            del trained.model
            model = backends.chat_model_load(out)
            with backends.chat_model_override(model):
                after = evaluate(questions, log, f"recipe {recipe.name}")
            del model
            out.unlink(missing_ok=True)
            losses = trained.losses
            k = max(1, len(losses) // 5)
            results.append(
                {
                    "recipe": recipe.name,
                    "spec": recipe.values,
                    "grounded_only": recipe.grounded,
                    "target": recipe.target,
                    "target_f1_mean": (
                        round(sum(s.answer_f1 for s in chosen) / len(chosen), 4) if chosen else None
                    ),
                    "target_grounded": sum(s.grounded for s in chosen),
                    "samples": len(chosen),
                    "steps": trained.steps,
                    "hyperparameters": trained.hyperparameters,
                    "loss_first": sum(losses[:k]) / k,
                    "loss_last": sum(losses[-k:]) / k,
                    "training_s": round(trained.seconds, 1),
                    "recipe_s": round(time.perf_counter() - t0, 1),
                    "after": after["summary"],
                    "rows": after["rows"],
                }
            )
            log(
                f"  recipe {recipe.name}: F1 {common.fmt(before['summary']['f1'])} -> "
                f"{common.fmt(after['summary']['f1'])}; loss {results[-1]['loss_first']:.3f} -> "
                f"{results[-1]['loss_last']:.3f}; {train_s:.0f} s training + export"
            )
    return {
        "learn_dialogues": len(learn),
        "answer_dialogues": len(answer),
        "imported": len(train_turns),
        "questions": len(questions),
        "skipped": skipped,
        "skipped_by_target": {k: v[1] for k, v in by_target.items()},
        "targets": diagnosis,
        "before": before["summary"],
        "rows_before": before["rows"],
        "recipes": results,
    }


def inner_markdown(payload: dict[str, Any]) -> str:
    f = common.fmt
    b = payload["before"]

    def row(label: str, samples: Any, steps: Any, loss: str, s: dict[str, Any]) -> list[Any]:
        return [
            label,
            samples,
            steps,
            loss,
            f(s["f1"]),
            f(s["rouge_l"]),
            f(s["support_prompt"]),
            f(s["answerable_declined"]),
            f"{s['kept']}/{s['graded_generated']}",
            f(s["kept_f1"]),
            f(s["fallback_f1"]),
            f(s["generated_f1"]),
        ]

    rows = [row("shipped model", "—", "—", "—", b)]
    for r in payload["recipes"]:
        rows.append(
            row(
                f"{r['recipe']} ({', '.join(f'{k}={v}' for k, v in r['spec'].items())})",
                r["samples"],
                r["steps"],
                f"{r['loss_first']:.2f} → {r['loss_last']:.2f}",
                r["after"],
            )
        )
    return (
        common.markdown_table(
            [
                "model",
                "samples",
                "steps",
                "training loss",
                "F1",
                "ROUGE-L",
                "support",
                "answerable declined",
                "kept by the check",
                "F1 kept",
                "F1 quoted instead",
                "F1 of every generation",
            ],
            rows,
        )
        + "\n"
    )


def pooled(folds: list[dict[str, Any]], which: str) -> dict[str, Any]:
    rows = [r for f in folds for r in f[f"rows_{which}"]]
    graded = [r for r in rows if r["graded"]]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]

    def share(xs: list[dict[str, Any]]) -> float | None:
        return sum(bool(r["declined"]) for r in xs) / len(xs) if xs else None

    weights = [f["questions"] for f in folds]

    def wmean(key: str) -> float | None:
        vals = [(f[which].get(key), w) for f, w in zip(folds, weights, strict=True)]
        vals = [(v, w) for v, w in vals if v is not None]
        return sum(v * w for v, w in vals) / sum(w for _, w in vals) if vals else None

    return {
        "questions": len(rows),
        "f1": common.mean(r["f1"] for r in graded),
        "rouge_l": common.mean(r["rouge_l"] for r in graded),
        "baseline_f1": wmean("baseline_f1"),
        "support_prompt": wmean("support_prompt"),
        "unanswerable_declined": share(unanswerable),
        "answerable_declined": share(answerable),
        "ttft_ms_p50": wmean("ttft_ms_p50"),
        "tokens_per_s": wmean("tokens_per_s"),
    }


def markdown(payload: dict[str, Any]) -> str:
    f = common.fmt
    rows = []
    for label, key in (("shipped model", "before"), ("specialised", "after")):
        p = payload["pooled"][key]
        rows.append(
            [
                label,
                p["questions"],
                f(p["f1"]),
                f(p["rouge_l"]),
                f(p["baseline_f1"]),
                f(p["support_prompt"]),
                f(p["unanswerable_declined"]),
                f(p["answerable_declined"]),
                f(p["ttft_ms_p50"], 0),
                f(p["tokens_per_s"], 1),
            ]
        )
    table = common.markdown_table(
        [
            "model",
            "questions",
            "F1",
            "ROUGE-L",
            "extractive F1",
            "support",
            "unanswerable declined",
            "answerable declined",
            "TTFT p50 ms",
            "tokens/s",
        ],
        rows,
    )
    training = common.markdown_table(
        ["fold", "samples", "steps", "training s", "peak RSS MB", "served", "gate"],
        [
            [
                r["fold"],
                r["trained_on"],
                r["steps"],
                f(r["training_s"], 0),
                f(r["peak_rss_mb"], 0),
                r["served_qtype"],
                "promoted" if r["gate_promoted"] else f"refused: {r['gate'][:80]}",
            ]
            for r in payload["folds"]
        ],
    )
    return f"{table}\n\n{training}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one fold, few replies and steps")
    parser.add_argument("--folds", type=int, choices=(1, 2), default=None)
    parser.add_argument("--examples", type=int, default=None, help="replies imported per fold")
    parser.add_argument("--questions", type=int, default=None, help="questions evaluated per fold")
    parser.add_argument("--steps", type=int, default=None, help="at most this many steps a fold")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here too")
    parser.add_argument(
        "--inner",
        action="store_true",
        help="tune: split half A again by dialogue, learn from one part, answer the other",
    )
    parser.add_argument(
        "--recipe",
        action="append",
        type=Recipe.parse,
        default=[],
        help="with --inner: name:lr=..,r=..,alpha=..,modules=all|qv|attn,grounded=0|1,support=..,steps=..,target=answer|best_fact",
    )
    args = parser.parse_args(argv)
    folds_n = args.folds or (1 if args.quick else 2)
    limit_examples = args.examples or (QUICK["examples"] if args.quick else None)
    limit_questions = args.questions or (QUICK["questions"] if args.quick else None)
    steps = args.steps or (QUICK["steps"] if args.quick else None)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # The run's own settings, before Django reads them (private_kb: no outside worker): the cap.
    if steps is not None:
        os.environ["SUPPORT_CHAT_TRAIN_MAX_STEPS"] = str(steps)
    data_dir = learning_bench.private_kb(log)
    log(f"eval KB copied to {data_dir}")

    turns = learning_bench.load_turns()
    half_a, half_b = learning_bench.halves(sorted({t.dialogue for t in turns}))
    if args.inner:
        return inner_main(args, turns, half_a, log, started)
    results = []
    for name, train, test in (("A", half_a, half_b), ("B", half_b, half_a))[:folds_n]:
        train_set = set(train)
        train_turns = sorted(
            (t for t in turns if t.dialogue in train_set and t.reply),
            key=lambda t: _order(t.question.id),
        )[:limit_examples]
        questions = eval_questions(set(test), limit_questions)
        log(f"fold {name}: {len(train_turns)} replies to learn from, {len(questions)} questions")
        results.append(fold(name, train_turns, questions, log))
    from support.conf import get_support_settings

    payload = {
        "benchmark": "specialise",
        "timestamp": common.timestamp(),
        "machine": common.machine_info(),
        "quick": bool(args.quick),
        "settings": {
            k: v
            for k, v in dataclasses.asdict(get_support_settings()).items()
            if k.startswith(("chat_train_", "chat_gate_"))
        },
        "folds": results,
        "pooled": {"before": pooled(results, "before"), "after": pooled(results, "after")},
        "targets": {
            "f1": TARGET_F1,
            "support": TARGET_SUPPORT,
            "unanswerable_declined": TARGET_UNANSWERABLE_DECLINED,
        },
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
    }
    payload["markdown"] = markdown(payload)
    path = common.write_results("specialise", payload, also=args.out)
    log(f"wrote {path}")
    print(payload["markdown"])
    return 0


def inner_main(
    args: argparse.Namespace,
    turns: list[learning_bench.Turn],
    half_a: list[str],
    log: Any,
    started: float,
) -> int:
    from support.conf import get_support_settings

    recipes = args.recipe or [Recipe("defaults", {})]
    result = inner(args, turns, half_a, recipes, log)
    payload = {
        "benchmark": "specialise_inner",
        "timestamp": common.timestamp(),
        "machine": common.machine_info(),
        "settings": {
            k: v
            for k, v in dataclasses.asdict(get_support_settings()).items()
            if k.startswith("chat_train_")
        },
        **result,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
    }
    payload["markdown"] = inner_markdown(payload)
    path = common.write_results("specialise_inner", payload, also=args.out)
    log(f"wrote {path}")
    print(payload["markdown"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
