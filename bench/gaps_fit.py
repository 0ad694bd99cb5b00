"""The distance threshold that groups knowledge-gap questions into topics (support.reports.gaps).

Usage (from the repository root, with the project venv)::

    python bench/gaps_fit.py

Paraphrase groups from real messages: the doc2dial first-turn questions (crowd-written, typos
kept) grouped by their annotated grounding span (overlapping spans of one page are one group):
questions answered by the same passage ask the same thing. Singletons stay in (a threshold that
merges everything must lose). Groups are split alternately (sorted by page and offset) into dev
and test; the threshold maximising the adjusted Rand index on dev is chosen, and the test half
is reported with it (never tuned on), with purity, inverse purity and the number of topics.
Also reported at page level (questions whose span is on the same page as one group).

Embeddings: the project's embedder (all-MiniLM-L6-v2), as the gaps service uses it.
Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _common as common

THRESHOLDS = tuple(round(0.10 + 0.025 * i, 3) for i in range(29))  # 0.10 .. 0.80


def paraphrase_groups(
    questions: Sequence[common.EvalQuestion],
) -> list[tuple[str, list[common.EvalQuestion]]]:
    """Questions grouped by overlapping grounding spans of one page: (key, members)."""
    by_doc: dict[str, list[common.EvalQuestion]] = defaultdict(list)
    for q in questions:
        if q.span_doc_id:
            by_doc[q.span_doc_id].append(q)
    groups: list[tuple[str, list[common.EvalQuestion]]] = []
    for doc, members in sorted(by_doc.items()):
        members.sort(key=lambda q: (q.span_start, q.span_end))
        current: list[common.EvalQuestion] = []
        end = -1
        for q in members:
            if current and q.span_start >= end:
                groups.append((f"{doc}@{current[0].span_start}", current))
                current, end = [], -1
            current.append(q)
            end = max(end, q.span_end)
        if current:
            groups.append((f"{doc}@{current[0].span_start}", current))
    return groups


def purity(labels: Sequence[int], truth: Sequence[str]) -> float:
    """Share of questions in the majority true group of their cluster."""
    by_cluster: dict[int, Counter[str]] = defaultdict(Counter)
    for label, t in zip(labels, truth, strict=True):
        by_cluster[label][t] += 1
    return sum(c.most_common(1)[0][1] for c in by_cluster.values()) / len(labels)


def scores(labels: Sequence[int], truth: Sequence[str]) -> dict[str, float]:
    from sklearn.metrics import adjusted_rand_score

    inverse = purity([hash(t) for t in truth], [str(x) for x in labels])
    return {
        "ari": round(float(adjusted_rand_score(truth, labels)), 4),
        "purity": round(purity(labels, truth), 4),
        "inverse_purity": round(inverse, 4),
        "topics": len(set(labels)),
        "groups": len(set(truth)),
        "questions": len(labels),
    }


def _commit() -> str | None:
    import subprocess

    done = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"],
        cwd=common.REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import tempfile

    common.django_setup(Path(tempfile.mkdtemp(prefix="gaps-fit-")))
    from support.reports.clusters import cluster_labels
    from support.search.embedder import SentenceTransformerEmbedder

    groups = paraphrase_groups(common.load_questions())
    parts: dict[str, list[tuple[str, str, str]]] = {"dev": [], "test": []}
    for i, (key, members) in enumerate(groups):
        for q in members:
            parts["dev" if i % 2 == 0 else "test"].append((q.text, key, q.span_doc_id or ""))
    embedder = SentenceTransformerEmbedder()
    started = time.perf_counter()
    vectors = {name: embedder.encode([t for t, _, _ in rows]) for name, rows in parts.items()}
    embed_s = time.perf_counter() - started

    sweep: list[dict[str, Any]] = []
    for t in THRESHOLDS:
        row: dict[str, Any] = {"threshold": t}
        for name, rows in parts.items():
            labels = cluster_labels(vectors[name], distance_threshold=t)
            row[name] = scores(labels, [k for _, k, _ in rows])
            row[name + "_page"] = scores(labels, [d for _, _, d in rows])
        sweep.append(row)
    best = max(sweep, key=lambda r: (r["dev"]["ari"], -r["threshold"]))
    payload = {
        "script": "gaps_fit",
        "git_commit": _commit(),
        "embedder": embedder.model_name,
        "linkage": "average",
        "metric": "cosine",
        "split": "span groups alternately (sorted by page, offset): even dev, odd test",
        "dev_groups": len({k for _, k, _ in parts["dev"]}),
        "test_groups": len({k for _, k, _ in parts["test"]}),
        "embed_s": round(embed_s, 2),
        "chosen_threshold": best["threshold"],
        "chosen_by": "max ARI on dev (span groups)",
        "dev": best["dev"],
        "test": best["test"],
        "test_page": best["test_page"],
        "sweep": sweep,
    }
    path = common.write_results("gaps_fit", payload, also=args.out)
    print(
        f"threshold {best['threshold']} (dev ARI {best['dev']['ari']}, purity "
        f"{best['dev']['purity']}); test ARI {best['test']['ari']}, purity "
        f"{best['test']['purity']}, inverse purity {best['test']['inverse_purity']}, "
        f"{best['test']['topics']} topics for {best['test']['groups']} groups; "
        f"page level ARI {best['test_page']['ari']}, purity {best['test_page']['purity']}"
    )
    for r in sweep:
        print(
            r["threshold"],
            r["dev"]["ari"],
            r["dev"]["purity"],
            r["dev"]["topics"],
            "|",
            r["test"]["ari"],
            r["test"]["purity"],
            r["test"]["topics"],
        )
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
