"""The retriever specialised on the company (issue 14 item 5): 2-fold on the doc2dial dialogues.

Usage (from the repository root, with the project venv)::

    python bench/specialise_retrieval.py                   # both folds, every reply
    python bench/specialise_retrieval.py --quick           # one fold, 120 replies, 150 questions
    python bench/specialise_retrieval.py --examples 300 --folds 1 --out r.json

The dev dialogues (first turns and later turns of ../shared/eval/doc2dial, all turns as
standalone queries) are split by dialogue into two halves. One half's agent replies are
imported as examples the way a help desk would have them (question, history, answer: no span,
no document; `examples_import --approve`, grounding inferred from the answer), the retriever is
specialised on them (`specialise --force`: the gate's verdict is recorded, the model is served
either way so its effect can be measured), and the other half's answerable questions are
searched before and after: span recall@5 and MRR@10 of the chunk holding the annotated span,
without question memory (this row is the retriever alone). Then the other way round. Training
time, peak RSS and the whole run's time are reported per fold.

The eval knowledge base is copied from the benchmarks' cache into a temporary directory (the
run replaces its embeddings; the cache stays as it was).

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

QUICK_EXAMPLES = 120
QUICK_QUESTIONS = 150


def _dialogue(q: common.EvalQuestion) -> str:
    return q.id.rsplit("_", 1)[0]


def _half(q: common.EvalQuestion) -> int:
    return int(hashlib.sha256(_dialogue(q).encode()).hexdigest(), 16) % 2


def _setup(source: Path | None) -> tuple[Path, str]:
    """A private copy of the eval KB, Django set up on it: `source` (a cached KB directory), else
    the cache entry of the current ingest code, else one is built (minutes)."""
    if source is None:
        cached = common.KB_CACHE_ROOT / f"kb-{common._kb_key(common.EVAL_DIR)}"
        source = cached if (cached / "bench-kb.json").exists() else None
    if source is None:
        return common.eval_kb(fresh=True).data_dir, "built fresh"
    target = Path(tempfile.mkdtemp(prefix="smallbot-specialise-"))
    shutil.copytree(source, target, dirs_exist_ok=True)
    common.django_setup(target)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return target, f"copy of {source}"


def _import_line(q: common.EvalQuestion) -> str:
    history = [{"role": t["role"], "text": t["text"]} for t in q.history]
    return json.dumps({"id": q.id, "question": q.text, "history": history, "answer": q.answer})


def _evaluate(questions: list[common.EvalQuestion]) -> dict[str, Any]:
    from support.retrieval import passages_search

    hits = 0
    rr = 0.0
    for q in questions:
        result = passages_search(query=q.text, k=10, memory=False)
        rank = next(
            (p.rank for p in result.passages if common.span_hit(p, q)),
            None,
        )
        if rank is not None and rank <= 5:
            hits += 1
        if rank is not None:
            rr += 1.0 / rank
    n = len(questions)
    return {
        "questions": n,
        "recall_at_5": round(hits / n, 4) if n else None,
        "mrr_at_10": round(rr / n, 4) if n else None,
    }


def fold(
    train: list[common.EvalQuestion], test: list[common.EvalQuestion], log: Any
) -> dict[str, Any]:
    from support import knowledge
    from support.learning.examples import ImportSummary, examples_import
    from support.learning.specialise import retriever_rollback, specialise
    from support.models_learning import Example, SpecialiseRun

    started = time.perf_counter()
    before = _evaluate(test)
    log(f"  before: {before}")
    summary = ImportSummary()
    data = "\n".join(_import_line(q) for q in train).encode()
    t0 = time.perf_counter()
    for _ in examples_import(lines=io.BytesIO(data), approve=True, summary=summary):
        pass
    import_s = time.perf_counter() - t0
    log(f"  imported {len(train)} replies in {import_s:.0f} s: {summary.render()}")
    report = specialise(force=True)
    log(
        f"  trained on {report.trained_on} pairs in {report.training_seconds:.0f} s "
        f"({report.steps} steps); gate: {report.reason}"
    )
    after = _evaluate(test)
    log(f"  after: {after}")
    result = {
        "imported": len(train),
        "examples": Example.objects.filter(state="approved", knowledge_gap=False).count(),
        "import_s": round(import_s, 1),
        "trained_on": report.trained_on,
        "held_back": report.held_back,
        "steps": report.steps,
        "training_s": round(report.training_seconds, 1),
        "specialise_s": round(report.seconds, 1),
        "timings": report.to_json()["timings"],
        "gate": report.reason,
        "gate_before": report.to_json()["before"],
        "gate_after": report.to_json()["after"],
        "before": before,
        "after": after,
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
    }
    # Back to the shipped model and no examples, for the other fold.
    retriever_rollback()
    Example.objects.all().delete()
    SpecialiseRun.objects.all().delete()
    knowledge.index_rebuild()
    result["fold_s"] = round(time.perf_counter() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one fold, few replies")
    parser.add_argument("--folds", type=int, choices=(1, 2), default=None)
    parser.add_argument("--examples", type=int, default=None, help="replies imported per fold")
    parser.add_argument("--questions", type=int, default=None, help="questions evaluated per fold")
    parser.add_argument(
        "--kb", type=Path, help="a cached eval KB directory to copy (default: the current one)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    folds = args.folds or (1 if args.quick else 2)
    limit_examples = args.examples or (QUICK_EXAMPLES if args.quick else None)
    limit_questions = args.questions or (QUICK_QUESTIONS if args.quick else None)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    started = time.perf_counter()
    data_dir, kb_source = _setup(args.kb)
    try:
        questions = [
            *common.load_questions(),
            *common.load_questions(name="questions_multiturn.jsonl"),
        ]
        replies = [q for q in questions if q.graded]
        answerable = [q for q in questions if q.answerable and q.span_text]
        results = []
        for k in range(folds):
            train = [q for q in replies if _half(q) == k][:limit_examples]
            test = [q for q in answerable if _half(q) != k][:limit_questions]
            log(f"fold {k + 1}: {len(train)} replies imported, {len(test)} questions evaluated")
            results.append({"fold": k + 1, **fold(train, test, log)})
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    payload = {
        "benchmark": "specialise_retrieval",
        "timestamp": common.timestamp(),
        "machine": common.machine_info(),
        "quick": bool(args.quick),
        "kb": kb_source,
        "folds": results,
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
    }
    path = common.write_results("specialise_retrieval", payload, also=args.out)
    log(f"wrote {path}")
    for r in results:
        log(
            f"fold {r['fold']}: recall@5 {r['before']['recall_at_5']} -> "
            f"{r['after']['recall_at_5']}, MRR@10 {r['before']['mrr_at_10']} -> "
            f"{r['after']['mrr_at_10']}; {r['trained_on']} pairs in {r['training_s']} s"
        )


if __name__ == "__main__":
    main()
