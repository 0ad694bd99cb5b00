"""Decline thresholds that generalise: fitted by cross-validation over the dev dialogues.

Usage (from the repository root, with the project venv)::

    python bench/decline_fit.py                # features, 5-fold CV on dev, then the test half
    python bench/decline_fit.py --folds 10

The decision to decline runs before any model call (`support.answers.decide`), so it can be
measured on every question quickly, without generation. doc2dial has only 29 unanswerable
first-turn questions (15 in the dev half): too few to fit or judge a threshold. So every
answerable question is also asked with the pages that hold its answer withheld from the search
(`passages_search(exclude_document_ids=...)`, all of `grounding_doc_ids`: near-duplicate pages
go too), which makes it unanswerable the way the real ones were made (their pages were left out
of the knowledge base). Samples:

- answerable: dev first-turn questions, and later turns that stand alone (no reference to the
  history, `retrieve.needs_context`), with the whole knowledge base;
- withheld: the same questions with their pages withheld;
- unanswerable: the real unanswerable first-turn questions.

Folds are split by dialogue (a dialogue's questions, answerable and withheld, stay in one fold).
For each rule the thresholds are chosen on the training folds (the most declines of withheld
questions with at most `--max-answerable-declined` of answerable ones declined) and judged on the
held-out fold; the spread across folds is reported. The rule with the best held-out figures and a
small spread ships (rules: one signal, a logistic model over several, or the shipped decision
"rescued" where a logistic model is sure the question is answerable); its thresholds are then fitted on all dev folds and reported on the test half
(never tuned on).

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

SIGNALS = (
    "confidence",
    "top_cosine",
    "lexical_coverage",
    "top_fact",
    "idf_fact",
    "idf_top3",
    "phrase_top3",
    "title_top",
    "idf_known",
    "n_terms",
    "dense_gap",
    "same_document",
    "dense_fact",
)


def _dialogue(q: common.EvalQuestion) -> str:
    return q.id.rsplit("_", 1)[0]


@contextlib.contextmanager
def _queries_embedded_once(texts: Sequence[str]) -> Iterator[None]:
    """Every query embedded in one batch up front: each question is searched twice (with and
    without its pages), and one batch of all of them took 2 minutes where one query at a time
    took 50 on the loaded 2-core machine. The search itself is unchanged."""
    from support.backends import get_embedder

    embedder = get_embedder()
    cls = type(embedder)
    original = cls.encode_query
    texts = list(dict.fromkeys(texts))
    cache = dict(zip(texts, embedder.encode_queries(texts), strict=True))

    def encode_query(self: Any, text: str) -> Any:
        vector = cache.get(text)
        return original(self, text) if vector is None else vector

    cls.encode_query = encode_query  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.encode_query = original  # type: ignore[method-assign]


def split_samples(
    split: str, limit: int | None
) -> list[tuple[common.EvalQuestion, str, tuple[int, ...]]]:
    """The samples of one half of the dev dialogues ("dev": even first turns' dialogues,
    "test": the others): first turns, and later turns that stand alone (not follow-ups); an
    answerable question twice, as asked ("answerable") and with its grounding pages withheld
    from retrieval ("withheld", their document ids), an unanswerable one once."""
    from support.answers.retrieve import needs_context
    from support.models import KnowledgeDocument

    first = common.load_questions()
    dev = {_dialogue(q) for q in first if q.index % 2 == 0}

    def in_split(q: common.EvalQuestion) -> bool:
        return (_dialogue(q) in dev) == (split == "dev")

    later = [
        q
        for q in common.load_questions(name="questions_multiturn.jsonl")
        if in_split(q) and not needs_context(q.text)
    ]
    questions = [q for q in first if in_split(q)] + later
    questions = questions[:limit] if limit else questions
    doc_ids = dict(KnowledgeDocument.objects.values_list("original_filename", "pk"))
    out: list[tuple[common.EvalQuestion, str, tuple[int, ...]]] = []
    for q in questions:
        if q.answerable:
            hidden = tuple(doc_ids[f"{d}.md"] for d in q.grounding_doc_ids if f"{d}.md" in doc_ids)
            out += [(q, "answerable", ()), (q, "withheld", hidden)]
        else:
            out.append((q, "unanswerable", ()))
    return out


def collect(split: str, limit: int | None) -> list[dict[str, Any]]:
    """One row per sample: its kind, dialogue, the shipped decision and the signals."""
    from support.conf import get_support_settings

    samples = split_samples(split, limit)
    min_conf = get_support_settings().retrieval_min_confidence
    with _queries_embedded_once(list(dict.fromkeys(q.text for q, _, _ in samples))):
        return _collect(samples, min_conf)


def _collect(
    samples: Sequence[tuple[common.EvalQuestion, str, tuple[int, ...]]], min_conf: float
) -> list[dict[str, Any]]:
    from support.answers import decide as decide_module
    from support.answers.decide import decide, decline_signals, dense_fact_score, facts_judged
    from support.answers.types import Question, Retrieved
    from support.backends import get_embedder
    from support.retrieval import passages_search

    embedder = get_embedder()
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for i, (q, kind, exclude) in enumerate(samples, 1):
        search = passages_search(query=q.text, k=5, exclude_document_ids=exclude)
        asked = Question(q.text)

        def vector(text: str, search: Any = search) -> Any:
            same = search.query_vector is not None and search.query == text
            return search.query_vector if same else embedder.encode_query(text)

        # As the pipeline decides (with the dense rescue), and without it.
        decision = decide(
            asked,
            Retrieved(search),
            min_confidence=min_conf,
            generate=True,
            question_vector=vector,
            encode=embedder.encode,
        )
        lexical = decide(asked, Retrieved(search), min_confidence=min_conf, generate=True)
        # The signal over every candidate sentence (the rule only needs those over the bar).
        asked_text = facts_judged(asked, search)[1] if search.passages else q.text
        dense = (
            dense_fact_score(
                asked_text, search, vector(q.text), embedder.encode, min_share=float("-inf")
            )
            if search.passages
            else 0.0
        )
        rows.append(
            {
                "id": q.id,
                "dialogue": _dialogue(q),
                "first_turn": not q.history,
                "kind": kind,
                "shipped_declines": decision.route.value == "decline",
                "shipped_reason": decision.reason.value if decision.reason else None,
                "lexical_declines": lexical.route.value == "decline",
                # Declined at the confidence gate although a fact holds half of the question's
                # words: what the dense rescue weighs.
                "rescuable": lexical.reason is not None
                and lexical.reason.value == "low_confidence"
                and lexical.top_score >= decide_module.MIN_FACT_SCORE,
                **decline_signals(asked, search, dense_fact=dense),
            }
        )
        if i % 200 == 0:
            el = time.perf_counter() - started
            print(f"  {i}/{len(samples)} samples ({el:.0f} s)", file=sys.stderr, flush=True)
    return rows


# --- rules: a rule is fitted on rows and returns a predicate "declines" ----------------------------
Rule = Callable[[Sequence[dict[str, Any]], float], Callable[[dict[str, Any]], bool]]


def _rates(rows: Sequence[dict[str, Any]], declines: Callable[[dict[str, Any]], bool]) -> dict:
    out: dict[str, Any] = {}
    for kind in ("answerable", "withheld", "unanswerable"):
        sel = [r for r in rows if r["kind"] == kind]
        out[kind] = round(sum(map(declines, sel)) / len(sel), 3) if sel else None
        out[f"n_{kind}"] = len(sel)
    return out


def _best_threshold(
    rows: Sequence[dict[str, Any]],
    score: Callable[[dict[str, Any]], float],
    max_answerable: float,
) -> float:
    """The threshold t (decline when score < t) declining most withheld/unanswerable rows
    with at most `max_answerable` of answerable rows declined."""
    answerable = sorted(score(r) for r in rows if r["kind"] == "answerable")
    allowed = int(max_answerable * len(answerable))
    # Declining `allowed` answerable rows at most: t can be up to the allowed-th lowest score.
    return answerable[allowed] if allowed < len(answerable) else float("inf")


def rule_shipped(rows: Sequence[dict[str, Any]], _: float) -> Callable[[dict[str, Any]], bool]:
    return lambda r: bool(r["shipped_declines"])


def rule_signal(name: str) -> Rule:
    def fit(rows: Sequence[dict[str, Any]], max_answerable: float) -> Any:
        t = _best_threshold(rows, lambda r: r[name], max_answerable)
        pred = lambda r: r[name] < t  # noqa: E731
        pred.params = {name: t}  # type: ignore[attr-defined]
        return pred

    return fit


def rule_logistic(names: Sequence[str]) -> Rule:
    def fit(rows: Sequence[dict[str, Any]], max_answerable: float) -> Any:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        x = np.array([[r[n] for n in names] for r in rows], dtype=float)
        y = np.array([r["kind"] == "answerable" for r in rows], dtype=int)
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(x, y)

        def score(r: dict[str, Any]) -> float:
            z = float(
                model.intercept_[0]
                + sum(c * r[n] for c, n in zip(model.coef_[0], names, strict=True))
            )
            return z

        t = _best_threshold(rows, score, max_answerable)
        pred = lambda r: score(r) < t  # noqa: E731
        pred.params = {  # type: ignore[attr-defined]
            "intercept": round(float(model.intercept_[0]) - t, 4),
            **{n: round(float(c), 4) for n, c in zip(names, model.coef_[0], strict=True)},
        }
        return pred

    return fit


def rule_rescue(names: Sequence[str], unanswerable_weight: float = 1.0) -> Rule:
    """The shipped decision, except that a question the logistic model is sure enough of is
    answered: decline = shipped declines and score < t, t the highest keeping answerable
    declines at `max_answerable` (the real unanswerable questions may weigh more in the fit)."""

    def fit(rows: Sequence[dict[str, Any]], max_answerable: float) -> Any:
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        x = np.array([[r[n] for n in names] for r in rows], dtype=float)
        y = np.array([r["kind"] == "answerable" for r in rows], dtype=int)
        weights = [unanswerable_weight if r["kind"] == "unanswerable" else 1.0 for r in rows]
        model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
        model.fit(x, y, sample_weight=np.array(weights))

        def score(r: dict[str, Any]) -> float:
            coefs = zip(model.coef_[0], names, strict=True)
            return float(model.intercept_[0] + sum(c * r[n] for c, n in coefs))

        answerable = [r for r in rows if r["kind"] == "answerable"]
        declined = sorted(score(r) for r in answerable if r["shipped_declines"])
        allowed = int(max_answerable * len(answerable))
        t = declined[allowed] if allowed < len(declined) else float("inf")
        pred = lambda r: bool(r["shipped_declines"]) and score(r) < t  # noqa: E731
        pred.params = {"threshold": round(t, 4)}  # type: ignore[attr-defined]
        return pred

    return fit


def rule_lexical(rows: Sequence[dict[str, Any]], _: float) -> Callable[[dict[str, Any]], bool]:
    return lambda r: bool(r["lexical_declines"])


def rule_dense_rescue(rows: Sequence[dict[str, Any]], max_answerable: float) -> Any:
    """The decision without the dense rescue, except that a question declined at the confidence
    gate with a fact holding half of its words is answered when `dense_fact` >= t: t the
    highest keeping answerable declines at `max_answerable` (what the shipped DENSE_RESCUE is)."""
    answerable = [r for r in rows if r["kind"] == "answerable"]
    allowed = int(max_answerable * len(answerable))
    base = sum(bool(r["lexical_declines"]) for r in answerable)
    scores = sorted((r["dense_fact"] for r in answerable if r["rescuable"]), reverse=True)
    # Rescuing the `need` best-scored rescuable answerable questions brings declines down to
    # `allowed` (or as far as the rescue can).
    need = max(0, base - allowed)
    t = float("inf") if need == 0 else scores[min(need, len(scores)) - 1] if scores else 0.0

    def pred(r: dict[str, Any]) -> bool:
        return bool(r["lexical_declines"]) and not (r["rescuable"] and r["dense_fact"] >= t)

    pred.params = {"threshold": round(t, 4)}  # type: ignore[attr-defined]
    return pred


RULES: dict[str, Rule] = {
    "shipped": rule_shipped,
    "lexical (no dense rescue)": rule_lexical,
    "dense rescue, threshold fitted": rule_dense_rescue,
    **{f"only {name}": rule_signal(name) for name in SIGNALS},
    "logistic confidence+idf_top3": rule_logistic(("confidence", "idf_top3")),
    "logistic cosine+coverage+idf_top3": rule_logistic(
        ("top_cosine", "lexical_coverage", "idf_top3")
    ),
    "logistic confidence+top_fact+phrase+title": rule_logistic(
        ("confidence", "top_fact", "phrase_top3", "title_top")
    ),
    "logistic all": rule_logistic(SIGNALS),
    "logistic original 8": rule_logistic(SIGNALS[:8]),
    "logistic confidence+top_fact+idf_known+dense_gap": rule_logistic(
        ("confidence", "top_fact", "idf_known", "dense_gap")
    ),
    "logistic confidence+top_fact+idf_fact+idf_known+same_document": rule_logistic(
        ("confidence", "top_fact", "idf_fact", "idf_known", "same_document")
    ),
    "shipped, rescued by logistic all": rule_rescue(SIGNALS),
    "shipped, rescued by logistic all (unanswerable x5)": rule_rescue(SIGNALS, 5.0),
    "shipped, rescued by confidence+idf_top3+idf_known (x5)": rule_rescue(
        ("confidence", "idf_top3", "idf_known"), 5.0
    ),
}


def cross_validate(rows: Sequence[dict[str, Any]], folds: int, max_answerable: float) -> dict:
    dialogues = sorted({r["dialogue"] for r in rows})
    fold_of = {d: i % folds for i, d in enumerate(dialogues)}
    report: dict[str, Any] = {}
    for name, rule in RULES.items():
        per_fold = []
        for k in range(folds):
            train = [r for r in rows if fold_of[r["dialogue"]] != k]
            held = [r for r in rows if fold_of[r["dialogue"]] == k]
            per_fold.append(_rates(held, rule(train, max_answerable)))
        summary: dict[str, Any] = {}
        for kind in ("answerable", "withheld", "unanswerable"):
            values = [f[kind] for f in per_fold if f[kind] is not None]
            summary[kind] = {
                "mean": round(statistics.mean(values), 3) if values else None,
                "min": min(values) if values else None,
                "max": max(values) if values else None,
            }
        report[name] = summary
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--max-answerable-declined", type=float, default=0.10)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--rows", type=Path, help="reuse rows written by an earlier run")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    if args.rows and args.rows.exists():
        saved = json.loads(args.rows.read_text())
        dev_rows, test_rows = saved["dev"], saved["test"]
    else:
        common.eval_kb()
        dev_rows, test_rows = collect("dev", args.limit), collect("test", args.limit)
        if args.rows:
            args.rows.write_text(json.dumps({"dev": dev_rows, "test": test_rows}))
    cv = cross_validate(dev_rows, args.folds, args.max_answerable_declined)
    final = {}
    for name, rule in RULES.items():
        fitted = rule(dev_rows, args.max_answerable_declined)
        final[name] = {
            "params": getattr(fitted, "params", None),
            "dev": _rates(dev_rows, fitted),
            "test": _rates(test_rows, fitted),
            "test_first_turn": _rates([r for r in test_rows if r["first_turn"]], fitted),
        }
    lines = [
        f"{'rule':36} {'cv answerable':>16} {'cv withheld':>16} {'cv unanswerable':>18}"
        f" | {'test ans':>8} {'test withh':>10} {'test unans':>10}"
    ]
    for name in RULES:
        c, t = cv[name], final[name]["test"]

        def span(d: dict[str, Any]) -> str:
            return f"{d['mean']} [{d['min']}-{d['max']}]"

        lines.append(
            f"{name:36} {span(c['answerable']):>16} {span(c['withheld']):>16} "
            f"{span(c['unanswerable']):>18} | {t['answerable']!s:>8} {t['withheld']!s:>10} "
            f"{t['unanswerable']!s:>10}"
        )
    print("\n".join(lines))
    payload = {
        "bench": "decline_fit",
        "folds": args.folds,
        "max_answerable_declined": args.max_answerable_declined,
        "counts": {
            "dev": {
                k: sum(r["kind"] == k for r in dev_rows)
                for k in ("answerable", "withheld", "unanswerable")
            },
            "test": {
                k: sum(r["kind"] == k for r in test_rows)
                for k in ("answerable", "withheld", "unanswerable")
            },
        },
        "cv": cv,
        "final": final,
    }
    common.write_results("decline_fit", payload, also=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
