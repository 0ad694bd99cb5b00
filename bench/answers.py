"""Answer quality and speed of the answer pipeline on doc2dial, next to an extractive baseline.

Usage (from the repository root, with the project venv)::

    python bench/answers.py                  # all 220 first-turn questions (~30-60 min on 2 cores)
    python bench/answers.py --split test     # the odd half (the even half tuned the pipeline)
    python bench/answers.py --quick          # 30 graded + 10 unanswerable questions
    python bench/answers.py --limit 40       # the first 40 questions of the chosen split
    python bench/answers.py --multiturn --quick   # follow-up questions with their history

Every question goes through `support.answers.pipeline.answer_compose(question=...)`, the code path
of `manage.py ask` (retrieval included), on the eval knowledge base that bench/_common.py
builds through the real ingestion path. Reported:

- token F1 and ROUGE-L (LCS F1) against the human agent's reply, on questions whose reference
  is a `statement`; declined questions score 0 ("all graded"), and the same metrics on the
  answered ones only, next to the baseline on the same questions;
- support: share of the answer's content words found in the facts shown to the model
  (`support_prompt`) and in the full text of the top-3 retrieved passages
  (`support_passages`), for the final answers and for the raw generations before the gate;
- groundedness: share of generations that passed the per-sentence gate (the rest were
  replaced by the quoted best fact), and how answers ended (answer / extractive / declined);
- declines: share of unanswerable questions declined, share of answerable ones declined;
- time: model TTFT (prompt evaluation to first token), first streamed text, total per
  question (retrieval + selection + generation + checks), p50/p95.

Baseline (same run, same retrieval): the sentence of the top passage sharing most of the
question's content words (the pipeline's word measure), quoted whole.

Metrics strip citation markers ([1]) and compare lowercased words without punctuation and
articles (SQuAD-style). Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al.
2020", CC BY 3.0). Results: bench/results/answers-<timestamp>.json plus a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

# -- metrics ------------------------------------------------------------------------------------
# One definition for the product's gate and every benchmark (support/answers/measures.py);
# other scripts import them from here.
from support.answers.measures import normalize_tokens, rouge_l, token_f1

__all__ = ["normalize_tokens", "rouge_l", "token_f1"]


# -- the run ------------------------------------------------------------------------------------
def select_questions(
    questions: Sequence[common.EvalQuestion], *, split: str, quick: bool, limit: int | None
) -> list[common.EvalQuestion]:
    dev, test = common.split_dev_test(questions)
    chosen = {"dev": dev, "test": test, "all": list(questions)}[split]
    if quick:
        graded = [q for q in chosen if q.graded][:30]
        unanswerable = [q for q in chosen if not q.answerable][:10]
        chosen = sorted(graded + unanswerable, key=lambda q: q.index)
    if limit:
        chosen = chosen[:limit]
    return chosen


def _baseline(question: str, retrieved: Sequence[dict[str, Any]]) -> str:
    """The top passage's sentence sharing most of the question's content words, whole (the
    pipeline's own word measure, without its fact filters and shortening); ties go to the
    earlier sentence."""
    from support.answers.words import terms as _terms
    from support.text import sentences as split_sentences

    if not retrieved:
        return ""
    q_terms = _terms(question)
    best, best_score = "", -1.0
    for sentence in split_sentences(retrieved[0]["text"]):
        sentence = " ".join(sentence.split())
        score = len(q_terms & _terms(sentence)) / (len(q_terms) or 1)
        if len(sentence) >= 12 and score > best_score:
            best, best_score = sentence, score
    return best


def run_one(q: common.EvalQuestion) -> dict[str, Any]:
    from support.answers import pipeline, types, words

    # doc2dial calls the customer "user"; agent turns stay agent turns.
    history = [
        types.Turn(
            "customer" if t.get("role") == "user" else t.get("role", "agent"), t.get("text", "")
        )
        for t in q.history
    ]
    pieces: list[float] = []
    started = time.perf_counter()

    def on_delta(piece: str) -> None:
        pieces.append(time.perf_counter() - started)

    draft = pipeline.answer_compose(question=q.text, history=history, on_delta=on_delta)
    declined = draft.action == "escalate"
    answer = "" if declined else words.strip_citations(draft.text)
    facts = [f.text for f in draft.facts]
    top3 = [p["text"] for p in draft.retrieved[:3]]
    generated = words.strip_citations(draft.generated)
    baseline = _baseline(q.text, draft.retrieved)
    row: dict[str, Any] = {
        "id": q.id,
        "index": q.index,
        "question": q.text,
        "answerable": q.answerable,
        "graded": q.graded,
        "reference": q.answer,
        "action": draft.action,
        "reason": draft.reason,
        "answer": draft.text,
        "generated": draft.generated,
        "baseline": baseline,
        "citations": [c["n"] for c in draft.citations],
        "facts": facts,
        "confidence": round(draft.confidence, 4),
        "declined": declined,
        "support_prompt": words.content_support(answer, facts) if answer else None,
        "support_passages": words.content_support(answer, top3) if answer else None,
        "generated_support_prompt": words.content_support(generated, facts) if generated else None,
        "generated_support_passages": words.content_support(generated, top3) if generated else None,
        "stream_pieces": len(pieces),
        "first_delta_ms": round(pieces[0] * 1000, 1) if pieces else None,
        **{
            k: draft.timings.get(k)
            for k in (
                "retrieval_ms",
                "ttft_ms",
                "generate_ms",
                "total_ms",
                "tokens",
                "prompt_tokens",
                "cached_prompt_tokens",
            )
        },
    }
    if q.graded:
        ref = q.answer or ""
        row |= {
            "f1": token_f1(answer, ref),
            "rouge_l": rouge_l(answer, ref),
            "baseline_f1": token_f1(baseline, ref),
            "baseline_rouge_l": rouge_l(baseline, ref),
        }
    return row


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    m, p = common.mean, common.percentile
    graded = [r for r in rows if r["graded"]]
    answered_graded = [r for r in graded if not r["declined"]]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    answered = [r for r in rows if not r["declined"]]
    generated = [r for r in rows if r["generated"]]
    ttft = [r["ttft_ms"] for r in generated if r["ttft_ms"] is not None]
    return {
        "questions": len(rows),
        "graded": len(graded),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "f1": m(r["f1"] for r in graded),
        "rouge_l": m(r["rouge_l"] for r in graded),
        "baseline_f1": m(r["baseline_f1"] for r in graded),
        "baseline_rouge_l": m(r["baseline_rouge_l"] for r in graded),
        "answered_graded": len(answered_graded),
        "f1_answered": m(r["f1"] for r in answered_graded),
        "rouge_l_answered": m(r["rouge_l"] for r in answered_graded),
        "baseline_f1_answered": m(r["baseline_f1"] for r in answered_graded),
        "baseline_rouge_l_answered": m(r["baseline_rouge_l"] for r in answered_graded),
        "support_prompt": m(r["support_prompt"] for r in answered),
        "support_passages": m(r["support_passages"] for r in answered),
        "generated_support_prompt": m(r["generated_support_prompt"] for r in generated),
        "generated_support_passages": m(r["generated_support_passages"] for r in generated),
        "generations": len(generated),
        "grounded_rate": (
            sum(r["reason"] == "grounded" for r in generated) / len(generated)
            if generated
            else None
        ),
        "final_answers_grounded": (
            sum(r["action"] in ("answer", "extractive") for r in answered) / len(answered)
            if answered
            else None
        ),
        "reasons": dict(Counter(r["reason"] for r in rows)),
        "unanswerable_declined": (
            sum(r["declined"] for r in unanswerable) / len(unanswerable) if unanswerable else None
        ),
        "answerable_declined": (
            sum(r["declined"] for r in answerable) / len(answerable) if answerable else None
        ),
        "ttft_ms_p50": p(ttft, 50),
        "ttft_ms_p95": p(ttft, 95),
        "first_delta_ms_p50": p((r["first_delta_ms"] for r in generated), 50),
        "total_ms_p50": p((r["total_ms"] for r in rows), 50),
        "total_ms_p95": p((r["total_ms"] for r in rows), 95),
        "generated_total_ms_p50": p((r["total_ms"] for r in generated), 50),
        "generated_total_ms_p95": p((r["total_ms"] for r in generated), 95),
        "retrieval_ms_p50": p((r["retrieval_ms"] for r in rows), 50),
        "tokens_mean": m(r["tokens"] for r in generated),
        "prompt_tokens_mean": m(r["prompt_tokens"] for r in generated),
        "stream_pieces_mean": m(r["stream_pieces"] for r in generated),
    }


def markdown(name: str, s: dict[str, Any]) -> str:
    f = common.fmt
    lines = [
        f"### {name}: {s['questions']} questions ({s['graded']} graded statements, "
        f"{s['answerable']} answerable, {s['unanswerable']} unanswerable)",
        "",
        common.markdown_table(
            ["", "pipeline", "extractive baseline"],
            [
                ["token F1 (all graded; declined = 0)", s["f1"], s["baseline_f1"]],
                ["ROUGE-L (all graded)", s["rouge_l"], s["baseline_rouge_l"]],
                [
                    f"token F1 (the {s['answered_graded']} answered)",
                    s["f1_answered"],
                    s["baseline_f1_answered"],
                ],
                ["ROUGE-L (answered)", s["rouge_l_answered"], s["baseline_rouge_l_answered"]],
                ["content-word support vs prompt facts", s["support_prompt"], 1.0],
                ["content-word support vs top-3 passages", s["support_passages"], 1.0],
                ["unanswerable declined", s["unanswerable_declined"], 0.0],
                ["answerable declined", s["answerable_declined"], 0.0],
            ],
        ),
        "",
        common.markdown_table(
            ["generation", "value"],
            [
                ["generations", s["generations"]],
                [
                    "raw generation support vs facts / passages",
                    f"{f(s['generated_support_prompt'])} / {f(s['generated_support_passages'])}",
                ],
                ["generations passing the groundedness gate", s["grounded_rate"]],
                ["final answers grounded (answer or quote)", s["final_answers_grounded"]],
                ["outcomes", ", ".join(f"{k} {v}" for k, v in sorted(s["reasons"].items()))],
                [
                    "model TTFT p50 / p95 (ms)",
                    f"{f(s['ttft_ms_p50'], 0)} / {f(s['ttft_ms_p95'], 0)}",
                ],
                ["first streamed text p50 (ms, incl. retrieval)", f(s["first_delta_ms_p50"], 0)],
                [
                    "total per generated answer p50 / p95 (ms)",
                    f"{f(s['generated_total_ms_p50'], 0)} / {f(s['generated_total_ms_p95'], 0)}",
                ],
                [
                    "total per question p50 / p95 (ms)",
                    f"{f(s['total_ms_p50'], 0)} / {f(s['total_ms_p95'], 0)}",
                ],
                ["retrieval p50 (ms)", f(s["retrieval_ms_p50"], 0)],
                [
                    "tokens generated / prompt tokens (mean)",
                    f"{f(s['tokens_mean'], 1)} / {f(s['prompt_tokens_mean'], 0)}",
                ],
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--split",
        choices=("all", "dev", "test"),
        default="all",
        help="dev = even positions (used for tuning), test = odd; default all",
    )
    ap.add_argument("--quick", action="store_true", help="30 graded + 10 unanswerable questions")
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions")
    ap.add_argument("--fresh-kb", action="store_true", help="build a private KB, not the cache")
    ap.add_argument(
        "--multiturn",
        action="store_true",
        help="later turns with their dialogue history (questions_multiturn.jsonl, all "
        "answerable) instead of first-turn questions",
    )
    ap.add_argument("--out", type=Path, help="also write the results JSON here")
    args = ap.parse_args(argv)

    kb = common.eval_kb(fresh=args.fresh_kb)
    from support.answers import pipeline, prompt
    from support.backends import get_chat_model
    from support.conf import get_support_settings

    source = "questions_multiturn.jsonl" if args.multiturn else "questions.jsonl"
    questions = select_questions(
        common.load_questions(name=source), split=args.split, quick=args.quick, limit=args.limit
    )
    conf = get_support_settings()
    model = get_chat_model()
    load_started = time.perf_counter()
    pipeline.answer_compose(question="How do I apply for benefits?")  # loads models, warms caches
    warmup_s = time.perf_counter() - load_started
    print(f"{len(questions)} questions; warm-up {warmup_s:.1f} s", file=sys.stderr)

    rows = []
    started = time.perf_counter()
    cpu_started = time.process_time()  # all threads of this process (model, torch, faiss)
    for i, q in enumerate(questions, 1):
        rows.append(run_one(q))
        if i % 10 == 0 or i == len(questions):
            el = time.perf_counter() - started
            print(f"  {i}/{len(questions)} ({el:.0f} s)", file=sys.stderr, flush=True)

    cpu_s = time.process_time() - cpu_started
    answered = sum(not r["declined"] for r in rows)
    summaries = {"all": summarize(rows)}
    if args.split == "all":
        summaries["dev"] = summarize([r for r in rows if r["index"] % 2 == 0])
        summaries["test"] = summarize([r for r in rows if r["index"] % 2 == 1])
    settings = {
        "prompt_version": prompt.PROMPT_VERSION,
        "retrieval_min_confidence": conf.retrieval_min_confidence,
        "company_name": conf.company_name,
        "tone": conf.tone,
        "model": str(conf.resolved_model_path().name),
        "backend": conf.generator_backend,
        "threads": getattr(model, "_threads", None),
        **pipeline.tuned_constants(),
    }
    payload = {
        "bench": "answers",
        "questions_file": source,
        "split": args.split,
        "quick": args.quick,
        "limit": args.limit,
        "machine": common.machine_info(),
        "kb": {"data_dir": str(kb.data_dir), "documents": kb.documents, "chunks": kb.chunks},
        "settings": settings,
        "warmup_s": round(warmup_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        # CPU-seconds spent answering (retrieval, selection, generation, checks), per
        # question and per question that got an answer (not declined): the cost figure.
        "cpu_s": round(cpu_s, 2),
        "cpu_s_per_question": round(cpu_s / len(rows), 3) if rows else None,
        "cpu_s_per_answer": round(cpu_s / answered, 3) if answered else None,
        "summary": summaries,
        "rows": rows,
    }
    path = common.write_results("answers", payload, also=args.out)
    print(
        f"## Answers ({prompt.PROMPT_VERSION}, min confidence {conf.retrieval_min_confidence}, "
        f"load {payload['machine']['loadavg_1m']} on {payload['machine']['cpus']} CPUs)\n"
    )
    for name, s in summaries.items():
        print(markdown(name, s) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
