"""The grounding threshold of examples: which chunks support an answer a person gave.

Usage (from the repository root, with the project venv)::

    python bench/grounding_fit.py             # features, fit on the dev dialogues, test report
    python bench/grounding_fit.py --limit 100
    python bench/grounding_fit.py --refit     # fit again on the features saved by a run

An example's grounding is inferred from its answer text (support.learning.grounding): the
knowledge base is searched with the answer, each candidate chunk gets a support score
(DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * share of the answer's content words in the chunk)
and the best one grounds the example when it reaches GROUNDING_MIN_SUPPORT; otherwise the
example is a knowledge gap. Samples, all doc2dial agent replies that are statements (not
clarifying questions), first turns and later turns:

- answerable: the reply with the whole knowledge base; correct when the chosen chunk holds the
  annotated grounding span (`common.span_hit`);
- withheld: the same reply with its grounding pages withheld from the search
  (`exclude_document_ids`): the knowledge base no longer holds the answer, so it should be a gap;
- unanswerable: the replies to the real unanswerable first turns (`withheld_answer`, their pages
  were left out of the knowledge base).

Dialogues are split as in bench/decline_fit.py (dev = the dialogues of even-numbered first-turn
questions). For each dense weight the threshold maximising Youden's J on dev — the share of
answerable replies grounded on the right chunk minus the share of withheld/unanswerable ones
grounded at all — is chosen; the test half is reported with the dev choice (never tuned on).

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# The per-candidate features (about 2 MB): kept out of bench/results/.
ROWS_FILE = common.REPO / "var" / "bench" / "grounding_fit-rows.json"
THRESHOLDS = tuple(round(0.2 + 0.01 * i, 2) for i in range(71))  # 0.20 .. 0.90


def _dialogue(q: common.EvalQuestion) -> str:
    return q.id.rsplit("_", 1)[0]


def collect(limit: int | None) -> list[dict[str, Any]]:
    """One row per sample: kind, split, and per candidate its dense/words and span hit."""
    from support.learning.grounding import grounding_candidates
    from support.models import KnowledgeDocument

    first = common.load_questions()
    dev = {_dialogue(q) for q in first if q.index % 2 == 0}
    later = common.load_questions(name="questions_multiturn.jsonl")
    raw_first = [
        json.loads(line)
        for line in (common.EVAL_DIR / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    samples: list[tuple[str, common.EvalQuestion, str]] = []
    for q in [*first, *later]:
        if q.graded:
            samples.append(("answerable", q, q.answer or ""))
    for q, raw in zip(first, raw_first, strict=True):
        if not q.answerable and raw.get("withheld_answer_type") == "statement":
            samples.append(("unanswerable", q, raw["withheld_answer"]))
    if limit:
        samples = samples[:limit]
    doc_pks = dict(KnowledgeDocument.objects.values_list("original_filename", "pk"))
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for i, (kind, q, answer) in enumerate(samples, 1):
        variants: list[tuple[str, tuple[int, ...]]] = [(kind, ())]
        if kind == "answerable":
            hidden = tuple(doc_pks[f"{d}.md"] for d in q.grounding_doc_ids if f"{d}.md" in doc_pks)
            variants.append(("withheld", hidden))
        for variant, exclude in variants:
            candidates = grounding_candidates(answer=answer, exclude_document_ids=exclude)
            rows.append(
                {
                    "id": q.id,
                    "split": "dev" if _dialogue(q) in dev else "test",
                    "kind": variant,
                    "first_turn": not q.history,
                    "candidates": [
                        {
                            "dense": round(c.dense, 4),
                            "words": round(c.words, 4),
                            "hit": variant == "answerable" and common.span_hit(_Passage(c), q),
                        }
                        for c in candidates
                    ],
                }
            )
        if i % 100 == 0:
            el = time.perf_counter() - started
            print(f"  {i}/{len(samples)} replies ({el:.0f} s)", file=sys.stderr, flush=True)
    return rows


class _Passage:
    """What common.span_hit reads from a passage."""

    def __init__(self, candidate: Any) -> None:
        from support.models import KnowledgeDocument

        self.text = candidate.text
        self.filename = (
            KnowledgeDocument.objects.filter(pk=candidate.document_id)
            .values_list("original_filename", flat=True)
            .first()
        )


def _score(c: dict[str, Any], w: float) -> float:
    return w * max(0.0, c["dense"]) + (1 - w) * c["words"]


def _top(row: dict[str, Any], w: float) -> dict[str, Any] | None:
    return max(row["candidates"], key=lambda c: _score(c, w), default=None)


def rates(rows: list[dict[str, Any]], w: float, t: float) -> dict[str, Any]:
    """Shares at weight w, threshold t: answerable grounded right / wrong / gap, and the
    withheld and unanswerable replies grounded anyway (should be gaps)."""
    out: dict[str, Any] = {}
    ans = [r for r in rows if r["kind"] == "answerable"]
    right = wrong = 0
    for r in ans:
        top = _top(r, w)
        if top is not None and _score(top, w) >= t:
            right += top["hit"]
            wrong += not top["hit"]
    n = len(ans) or 1
    out["answerable_right"] = round(right / n, 3)
    out["answerable_wrong"] = round(wrong / n, 3)
    out["answerable_gap"] = round(1 - (right + wrong) / n, 3)
    out["precision"] = round(right / (right + wrong), 3) if right + wrong else None
    for kind in ("withheld", "unanswerable"):
        sel = [r for r in rows if r["kind"] == kind]
        grounded = sum(1 for r in sel if (top := _top(r, w)) is not None and _score(top, w) >= t)
        out[f"{kind}_grounded"] = round(grounded / len(sel), 3) if sel else None
        out[f"n_{kind}"] = len(sel)
    out["n_answerable"] = len(ans)
    negatives = [r for r in rows if r["kind"] in ("withheld", "unanswerable")]
    false = sum(1 for r in negatives if (top := _top(r, w)) is not None and _score(top, w) >= t)
    out["youden_j"] = round(right / n - (false / len(negatives) if negatives else 0.0), 3)
    # The best candidate holds the span at all (the ceiling of any threshold).
    out["top_hit_ceiling"] = round(sum(1 for r in ans if (x := _top(r, w)) and x["hit"]) / n, 3)
    return out


def fit(rows: list[dict[str, Any]]) -> dict[str, Any]:
    dev = [r for r in rows if r["split"] == "dev"]
    test = [r for r in rows if r["split"] == "test"]
    per_weight = []
    for w in WEIGHTS:
        best_t = max(THRESHOLDS, key=lambda t: (rates(dev, w, t)["youden_j"], -t))
        per_weight.append(
            {
                "dense_weight": w,
                "threshold": best_t,
                "dev": rates(dev, w, best_t),
                "test": rates(test, w, best_t),
            }
        )
    chosen = max(per_weight, key=lambda p: p["dev"]["youden_j"])
    return {"per_weight": per_weight, "chosen": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N replies")
    parser.add_argument(
        "--rows",
        type=Path,
        default=ROWS_FILE,
        help="where the features are saved (and --refit reads them)",
    )
    parser.add_argument("--refit", action="store_true", help="fit again on the saved features")
    args = parser.parse_args()
    common.eval_kb()
    from support.learning import grounding

    started = time.perf_counter()
    if args.refit:
        rows = json.loads(args.rows.read_text())
    else:
        rows = collect(args.limit)
        args.rows.parent.mkdir(parents=True, exist_ok=True)
        args.rows.write_text(json.dumps(rows))
    result = fit(rows)
    chosen = result["chosen"]
    table = common.markdown_table(
        [
            "dense weight",
            "threshold",
            "J dev",
            "J test",
            "right test",
            "wrong test",
            "gap test",
            "precision test",
            "withheld grounded test",
            "unanswerable grounded test",
        ],
        [
            (
                p["dense_weight"],
                p["threshold"],
                p["dev"]["youden_j"],
                p["test"]["youden_j"],
                p["test"]["answerable_right"],
                p["test"]["answerable_wrong"],
                p["test"]["answerable_gap"],
                p["test"]["precision"],
                p["test"]["withheld_grounded"],
                p["test"]["unanswerable_grounded"],
            )
            for p in result["per_weight"]
        ],
    )
    print(table)
    shipped = rates(
        [r for r in rows if r["split"] == "test"],
        grounding.DENSE_WEIGHT,
        grounding.GROUNDING_MIN_SUPPORT,
    )
    print(
        f"\nchosen on dev: dense weight {chosen['dense_weight']}, threshold "
        f"{chosen['threshold']}; shipped: {grounding.DENSE_WEIGHT} / "
        f"{grounding.GROUNDING_MIN_SUPPORT} -> test {json.dumps(shipped)}"
    )
    path = common.write_results(
        "grounding_fit",
        {
            "machine": common.machine_info(),
            "seconds": round(time.perf_counter() - started, 1),
            "fit": result,
            "shipped": {
                "dense_weight": grounding.DENSE_WEIGHT,
                "threshold": grounding.GROUNDING_MIN_SUPPORT,
                "test": shipped,
            },
            "features": str(args.rows),
        },
    )
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
