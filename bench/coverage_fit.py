"""Retrieval confidence over the question's content words: does it separate better, decline right?

Usage (from the repository root, with the project venv)::

    python bench/coverage_fit.py --rows /tmp/coverage-rows.json    # collect once, then reuse

`lexical_coverage` (half of the retrieval confidence, support.search.hybrid.ConfidenceModel)
divides the best BM25 score by the score of a chunk holding every query term, and a term the
index lacks counts there at the highest IDF: phrasing words ("how much", "what happens") and an
unseen compound next to its known parts ("mid-contract") make a covered question look
uncovered. Variants of the coverage, each with the confidence model re-fitted as
bench/retrieval_tune.py fits it (class-balanced L2 logistic by Newton, non-negative weights):

- all_terms: the shipped coverage (also scored with the shipped coefficients, unfitted);
- stopwords: phrasing words (hybrid.COVERAGE_STOPWORDS) left out of numerator and ceiling;
- compounds: an unseen compound with a known part counted by its parts only;
- content_terms: both (hybrid.content_coverage).

Samples and protocol are bench/decline_fit.py's: dev/test halves by dialogue; answerable
questions (first turns and stand-alone later turns), the same questions with their pages
withheld, and the real unanswerable first turns. The model is fitted on answerable vs
withheld + unanswerable. On the dev half, 5 folds by dialogue: coefficients fitted on four,
AUC and decline rates of the shipped decision (support.answers.decide, recomputed from the
signals it reads: the confidence, the best fact's score, the earlier declines) on the fifth;
then fitted on all of dev and reported on the test half (never tuned on). The decline
threshold is either kept (SUPPORT_RETRIEVAL_MIN_CONFIDENCE) or chosen on the training folds as
the lowest one that declines at least as many withheld + unanswerable questions as the shipped
model does there (so unanswerable declines hold and answerable declines may drop).

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import decline_fit

VARIANTS = ("all_terms", "stopwords", "compounds", "content_terms")
NEGATIVE = ("withheld", "unanswerable")
# What the model is fitted against (--fit-negatives): the real unanswerable questions, as
# bench/retrieval_tune.py does, or the withheld ones too.
FIT_NEGATIVES: tuple[str, ...] = ("unanswerable",)


def _coverages(bm25: Any, query: str, allow: Any, deny: Any) -> dict[str, float]:
    """Each coverage variant of `query` against the chunks the search may return."""
    from support.search import hybrid

    def best(text: str) -> float:
        hits = bm25.top_k(bm25.score_all(text), 1, allow_ids=allow, deny_ids=deny)
        return hybrid.lexical_coverage(bm25, text, hits[0].score) if hits else 0.0

    words = hybrid.COVERAGE_STOPWORDS
    plain = " ".join(
        m.group() for m in hybrid.TOKEN_RE.finditer(query.lower()) if m.group() not in words
    )
    # Compounds only: content_query with no stopword list.
    hybrid.COVERAGE_STOPWORDS = frozenset()
    try:
        compounds = hybrid.content_query(bm25, query)
    finally:
        hybrid.COVERAGE_STOPWORDS = words
    return {
        "all_terms": best(query),
        "stopwords": best(plain or query),
        "compounds": best(compounds or query),
        "content_terms": best(hybrid.content_query(bm25, query) or query),
    }


def collect(split: str, limit: int | None) -> list[dict[str, Any]]:
    """decline_fit's rows, each with every coverage variant of its search."""
    import numpy as np

    from support.search import hybrid

    recorded: list[dict[str, float]] = []
    original = hybrid.hybrid_search

    def recording(snapshot: Any, vector: Any, query: str, **kw: Any) -> Any:
        result = original(snapshot, vector, query, **kw)
        ids = {
            name: None if kw.get(name) is None else np.fromiter(kw[name], dtype=np.int64)
            for name in ("allow_ids", "deny_ids")
        }
        if snapshot.lexical is not None and result.hits:
            cov = _coverages(snapshot.lexical, query, ids["allow_ids"], ids["deny_ids"])
        else:
            cov = dict.fromkeys(VARIANTS, 0.0)
        # The shipped search's own value, to check the all_terms variant against.
        recorded.append({**cov, "shipped": result.lexical_coverage})
        return result

    hybrid.hybrid_search = recording  # type: ignore[assignment]
    try:
        rows = decline_fit.collect(split, limit)
    finally:
        hybrid.hybrid_search = original  # type: ignore[assignment]
    # decline_fit searches once per row, in row order.
    if len(recorded) != len(rows):
        raise RuntimeError(f"{len(recorded)} searches for {len(rows)} rows")
    for r, cov in zip(rows, recorded, strict=True):
        if abs(cov["shipped"] - r["lexical_coverage"]) > 1e-6:
            raise RuntimeError(f"{r['id']}: coverage {cov['shipped']} != {r['lexical_coverage']}")
        r.update({f"cov_{v}": cov[v] for v in VARIANTS})
    return rows


# --- fitting and the decision ----------------------------------------------------------------


def _fit(rows: Sequence[dict[str, Any]], variant: str) -> tuple[float, float, float]:
    import numpy as np
    import retrieval_tune

    rows = [r for r in rows if r["kind"] == "answerable" or r["kind"] in FIT_NEGATIVES]
    x = np.array([[r["top_cosine"], r[f"cov_{variant}"]] for r in rows], dtype=float)
    y = np.array([r["kind"] == "answerable" for r in rows], dtype=float)
    beta = retrieval_tune.fit_logistic(x, y)
    return float(beta[0]), float(beta[1]), float(beta[2])


def _confidence(model: tuple[float, float, float], r: dict[str, Any], variant: str) -> float:
    if not r["has_passages"]:
        return 0.0
    z = model[0] + model[1] * r["top_cosine"] + model[2] * r[f"cov_{variant}"]
    return 1.0 / (1.0 + math.exp(-z))


def _declines(conf: float, r: dict[str, Any], min_conf: float) -> bool:
    """support.answers.decide's route from the confidence (thresholds imported from there)."""
    from support.answers.decide import FULL_COVERAGE, MIN_FACT_SCORE, NO_FACTS_QUOTE_CONFIDENCE

    if r["declined_before_confidence"]:
        return True
    top = r["top_fact"]
    if conf < min_conf and top < FULL_COVERAGE:
        return True
    return top < MIN_FACT_SCORE and not (r["has_facts"] and conf >= NO_FACTS_QUOTE_CONFIDENCE)


def _auc(pos: Sequence[float], neg: Sequence[float]) -> float | None:
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return round(wins / (len(pos) * len(neg)), 4)


def _aucs(rows: Sequence[dict[str, Any]], score: Callable[[dict[str, Any]], float]) -> dict:
    pos = [score(r) for r in rows if r["kind"] == "answerable"]
    return {
        kind: _auc(pos, [score(r) for r in rows if r["kind"] in kinds])
        for kind, kinds in (
            ("unanswerable", ("unanswerable",)),
            ("withheld", ("withheld",)),
            ("negatives", NEGATIVE),
        )
    }


def _rates(rows: Sequence[dict[str, Any]], declines: Callable[[dict[str, Any]], bool]) -> dict:
    out: dict[str, Any] = {}
    for kind in ("answerable", "withheld", "unanswerable"):
        sel = [r for r in rows if r["kind"] == kind]
        out[kind] = round(sum(map(declines, sel)) / len(sel), 3) if sel else None
    return out


def _negative_rate(rows: Sequence[dict[str, Any]], declines: Callable[[dict[str, Any]], bool]):
    sel = [r for r in rows if r["kind"] in NEGATIVE]
    return sum(map(declines, sel)) / max(len(sel), 1)


def _threshold_matching(
    rows: Sequence[dict[str, Any]],
    conf: Callable[[dict[str, Any]], float],
    target: float,
    default: float,
) -> float:
    """Lowest threshold declining at least `target` of the withheld + unanswerable rows."""
    candidates = sorted({round(x / 200, 3) for x in range(1, 200)} | {default})
    for t in candidates:
        if _negative_rate(rows, lambda r, t=t: _declines(conf(r), r, t)) >= target:
            return t
    return candidates[-1]


def evaluate(
    dev: list[dict[str, Any]], test: list[dict[str, Any]], folds: int, min_conf: float
) -> dict[str, Any]:
    """Every system: the shipped model, and each variant re-fitted (threshold kept or fitted)."""
    systems: dict[str, Any] = {
        "shipped": _system(dev, test, "all_terms", False, False, folds, min_conf)
    }
    # Not re-fitted: the shipped coefficients (fitted on all of doc2dial's first turns, test
    # half included, so its test figures flatter it) over the content-word coverage.
    systems["content_terms, shipped coefficients"] = _system(
        dev, test, "content_terms", False, False, folds, min_conf
    )
    for v in VARIANTS:
        systems[f"{v} refit"] = _system(dev, test, v, True, False, folds, min_conf)
        systems[f"{v} refit, threshold fitted"] = _system(dev, test, v, True, True, folds, min_conf)
    return systems


def _shipped_model() -> tuple[float, float, float]:
    from support.search.hybrid import DEFAULT_CONFIDENCE

    c = DEFAULT_CONFIDENCE
    return c.intercept, c.w_dense, c.w_lexical


def _fitted(
    rows: Sequence[dict[str, Any]], variant: str, refit: bool, fit_threshold: bool, min_conf: float
) -> tuple[tuple[float, float, float], float]:
    """The model (re-fitted on `rows` or the shipped one) and its threshold."""
    shipped = _shipped_model()
    model = _fit(rows, variant) if refit else shipped
    if not fit_threshold:
        return model, min_conf
    target = _negative_rate(
        rows, lambda r: _declines(_confidence(shipped, r, "all_terms"), r, min_conf)
    )
    return model, _threshold_matching(
        rows, lambda r: _confidence(model, r, variant), target, min_conf
    )


def _system(
    dev: list[dict[str, Any]],
    test: list[dict[str, Any]],
    variant: str,
    refit: bool,
    fit_threshold: bool,
    folds: int,
    min_conf: float,
) -> dict[str, Any]:
    dialogues = sorted({r["dialogue"] for r in dev})
    fold_of = {d: i % folds for i, d in enumerate(dialogues)}
    held_rates, params = [], []
    held_score: dict[int, float] = {}
    for k in range(folds):
        train = [r for r in dev if fold_of[r["dialogue"]] != k]
        held = [r for r in dev if fold_of[r["dialogue"]] == k]
        model, t = _fitted(train, variant, refit, fit_threshold, min_conf)
        params.append({"model": [round(p, 3) for p in model], "threshold": t})
        conf = {id(r): _confidence(model, r, variant) for r in held}
        held_score.update(conf)
        held_rates.append(_rates(held, lambda r, c=conf, t=t: _declines(c[id(r)], r, t)))
    cv_rates = {
        kind: {
            "mean": round(statistics.mean(f[kind] for f in held_rates), 3),
            "min": min(f[kind] for f in held_rates),
            "max": max(f[kind] for f in held_rates),
        }
        for kind in ("answerable", "withheld", "unanswerable")
    }
    model, t = _fitted(dev, variant, refit, fit_threshold, min_conf)

    def score(r: dict[str, Any]) -> float:
        return _confidence(model, r, variant)

    def final(r: dict[str, Any]) -> bool:
        return _declines(score(r), r, t)

    return {
        "coverage": variant,
        "cv_auc": _aucs(dev, lambda r: held_score[id(r)]),
        "cv_rates": cv_rates,
        "folds": params,
        "dev_model": {
            "intercept": round(model[0], 3),
            "w_dense": round(model[1], 3),
            "w_lexical": round(model[2], 3),
            "threshold": t,
        },
        "dev_auc_in_sample": _aucs(dev, score),
        "dev": _rates(dev, final),
        "test_auc": _aucs(test, score),
        "test": _rates(test, final),
        "test_first_turn": _rates([r for r in test if r["first_turn"]], final),
    }


def _prepare(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        r["has_passages"] = r["shipped_reason"] != "no_passages"
        r["declined_before_confidence"] = r["shipped_reason"] in ("no_passages", "unknown_term")
        r["has_facts"] = r["top_fact"] > 0.0


def demo(models: dict[str, tuple[str, tuple[float, float, float]]]) -> list[dict[str, Any]]:
    """The first customer turn of each scripted conversation (tests/conversations) on the demo
    knowledge base (built in a temporary directory): cosine, each coverage, each confidence."""
    import tempfile

    from django.core.management import call_command

    common.django_setup(Path(tempfile.mkdtemp(prefix="coverage-demo-")))
    call_command("migrate", verbosity=0, interactive=False)
    from support.demo import demo_kb_ensure
    from support.retrieval import passages_search

    sys.path.insert(0, str(common.REPO))
    from tests.conversations.cases import CASES

    demo_kb_ensure()
    recorded: list[dict[str, float]] = []
    from support.search import hybrid

    original = hybrid.hybrid_search

    def recording(snapshot: Any, vector: Any, query: str, **kw: Any) -> Any:
        import numpy as np

        result = original(snapshot, vector, query, **kw)
        deny = kw.get("deny_ids")
        deny_arr = None if deny is None else np.fromiter(deny, dtype=np.int64)
        recorded.append(_coverages(snapshot.lexical, query, None, deny_arr))
        return result

    hybrid.hybrid_search = recording  # type: ignore[assignment]
    out = []
    try:
        for case in CASES:
            turn = next((t for t in case.turns if t.customer), None)
            if turn is None:
                continue
            search = passages_search(query=turn.customer, k=5)
            cov = recorded[-1]
            row = {
                "case": case.name,
                "question": turn.customer,
                "expect": turn.expect,
                "top_heading": search.passages[0].heading if search.passages else None,
                "top_cosine": round(search.top_cosine, 3),
                **{f"cov_{v}": round(cov[v], 3) for v in VARIANTS},
            }
            r = {"has_passages": bool(search.passages), "top_cosine": search.top_cosine}
            r.update({f"cov_{v}": cov[v] for v in VARIANTS})
            for name, (variant, model) in models.items():
                row[f"conf {name}"] = round(_confidence(model, r, variant), 3)
            out.append(row)
    finally:
        hybrid.hybrid_search = original  # type: ignore[assignment]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--rows", type=Path, help="reuse rows written by an earlier run")
    ap.add_argument("--out", type=Path)
    ap.add_argument(
        "--fit-negatives",
        choices=("unanswerable", "withheld+unanswerable"),
        default="unanswerable",
        help="what the confidence model is fitted against (default: as retrieval_tune.py)",
    )
    ap.add_argument(
        "--demo",
        type=Path,
        help="with --rows: also score the scripted conversations' questions on the demo KB "
        "with the dev-fitted models and write them to this JSON file (a separate process: "
        "it sets Django up on the demo KB)",
    )
    args = ap.parse_args(argv)
    global FIT_NEGATIVES
    FIT_NEGATIVES = tuple(args.fit_negatives.split("+"))

    started = time.perf_counter()
    if args.demo:
        saved = json.loads(args.rows.read_text())
        models: dict[str, tuple[str, tuple[float, float, float]]] = {
            "shipped": ("all_terms", _shipped_model()),
            "shipped coefficients, content_terms": ("content_terms", _shipped_model()),
        }
        for v in VARIANTS:
            models[f"{v} refit"] = (v, _fit(saved["dev"], v))
        rows = demo(models)
        for r in rows:
            print(json.dumps(r))
        args.demo.write_text(json.dumps({"models": models, "questions": rows}, indent=1))
        return 0
    common.eval_kb()  # Django set up (the decision's thresholds live in support.answers)
    if args.rows and args.rows.exists():
        saved = json.loads(args.rows.read_text())
        dev_rows, test_rows, min_conf = saved["dev"], saved["test"], saved["min_confidence"]
    else:
        from support.conf import get_support_settings
        from support.search.hybrid import DEFAULT_CONFIDENCE

        if DEFAULT_CONFIDENCE.coverage != "all_terms":
            raise SystemExit("collect with the all_terms model: the decision is recomputed")
        min_conf = get_support_settings().retrieval_min_confidence
        dev_rows, test_rows = collect("dev", args.limit), collect("test", args.limit)
        if args.rows:
            args.rows.write_text(
                json.dumps({"dev": dev_rows, "test": test_rows, "min_confidence": min_conf})
            )
    for rows in (dev_rows, test_rows):
        _prepare(rows)
    # The recomputed decision must be the shipped one for the shipped model.
    from support.search.hybrid import DEFAULT_CONFIDENCE

    shipped = (
        DEFAULT_CONFIDENCE.intercept,
        DEFAULT_CONFIDENCE.w_dense,
        DEFAULT_CONFIDENCE.w_lexical,
    )
    mismatched = [
        r["id"]
        for r in dev_rows + test_rows
        if _declines(_confidence(shipped, r, "all_terms"), r, min_conf) != r["shipped_declines"]
    ]
    systems = evaluate(dev_rows, test_rows, args.folds, min_conf)
    head = (
        f"{'system':34} {'cv auc u/w':>13} {'cv ans':>18} {'cv withh':>18} {'cv unans':>18}"
        f" | {'test auc u/w':>13} {'ans':>6} {'withh':>6} {'unans':>6}"
    )
    lines = [head]
    for name, s in systems.items():

        def span(d: dict[str, Any]) -> str:
            return f"{d['mean']} [{d['min']}-{d['max']}]"

        c, t = s["cv_rates"], s["test"]
        lines.append(
            f"{name:34} {s['cv_auc']['unanswerable']!s:>6}/{s['cv_auc']['withheld']!s:>6} "
            f"{span(c['answerable']):>18} {span(c['withheld']):>18} {span(c['unanswerable']):>18}"
            f" | {s['test_auc']['unanswerable']!s:>6}/{s['test_auc']['withheld']!s:>6} "
            f"{t['answerable']!s:>6} {t['withheld']!s:>6} {t['unanswerable']!s:>6}"
        )
    print("\n".join(lines))
    print(f"decision recomputation mismatches: {len(mismatched)}", file=sys.stderr)
    payload = {
        "bench": "coverage_fit",
        "folds": args.folds,
        "fit_negatives": FIT_NEGATIVES,
        "min_confidence": min_conf,
        "recompute_mismatches": mismatched,
        "counts": {
            split: {k: sum(r["kind"] == k for r in rows) for k in ("answerable", *NEGATIVE)}
            for split, rows in (("dev", dev_rows), ("test", test_rows))
        },
        "systems": systems,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    common.write_results("coverage_fit", payload, also=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
