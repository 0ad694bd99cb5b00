"""Paraphrase bridge (support.search.bridge): its threshold and weight chosen on doc2dial's dev
dialogues, judged on the test dialogues.

Usage (from the repository root, with the project venv)::

    python bench/bridge.py                 # the cached eval KB (bench/_common.eval_kb)
    python bench/bridge.py --kb DIR        # an eval KB already built (its SUPPORT_DATA_DIR)
    python bench/bridge.py --limit 40      # a smoke run

The eval KB's published version gets a bridge built here (the knowledge base's vocabulary
embedded once, as `knowledge.index_rebuild` does; timed) and is searched pinned
(`retrieval.index_pinned`), through `passages_search` and the answer stage's `decide`, exactly
as the pipeline runs them. Samples, as in bench/decline_fit.py (split by dialogue, dev = the
dialogues of the even first-turn questions): answerable first-turn questions and later turns
that stand alone, with the whole knowledge base; the same with the pages holding their answer
withheld (so they are unanswerable); the real unanswerable first-turn questions.

For each setting of the grid (and the bridge off) on the dev half: span recall@5 and MRR@10
of the answerable questions, and the share of each kind declined. The setting shipped is the
one with the best recall@5 + MRR@10 - answerable declined among those that decline at least
as many withheld and unanswerable dev questions as the bridge off; it is then reported on the
test half (never tuned on) against the bridge off. A question with no word the knowledge base
lacks is searched once (the bridge cannot change it).

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
from decline_fit import _queries_embedded_once, split_samples

THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8)
WEIGHTS = (0.25, 0.5, 0.75, 1.0)
KINDS = ("answerable", "withheld", "unanswerable")


def _run(sample: tuple[Any, str, tuple[int, ...]], min_conf: float) -> dict[str, Any]:
    from support.answers.decide import decide
    from support.answers.retrieve import PASSAGES_K
    from support.answers.types import Question, Retrieved
    from support.retrieval import passages_search

    q, kind, exclude = sample
    search = passages_search(query=q.text, k=10, exclude_document_ids=exclude)
    top = dataclasses.replace(search, passages=search.passages[:PASSAGES_K])
    decision = decide(Question(q.text), Retrieved(top), min_confidence=min_conf, generate=True)
    rank = None
    if kind == "answerable":
        rank = next((i for i, p in enumerate(search.passages, 1) if common.span_hit(p, q)), None)
    return {
        "kind": kind,
        "rank": rank,
        "declined": decision.route.value == "decline",
        "confidence": round(search.confidence, 4),
        "bridged": [(e.word, e.term) for e in search.bridged],
    }


def _metrics(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ans = [r for r in rows if r["kind"] == "answerable"]
    out: dict[str, Any] = {
        "recall@5": round(sum(r["rank"] is not None and r["rank"] <= 5 for r in ans) / len(ans), 4),
        "mrr@10": round(sum(1 / r["rank"] for r in ans if r["rank"]) / len(ans), 4),
    }
    for kind in KINDS:
        some = [r for r in rows if r["kind"] == kind]
        out[f"{kind}_declined"] = (
            round(sum(r["declined"] for r in some) / len(some), 4) if some else None
        )
        out[f"{kind}_n"] = len(some)
    out["bridged_samples"] = sum(bool(r["bridged"]) for r in rows)
    return out


def _evaluate(
    samples: Sequence[Any], configs: dict[str, Any], min_conf: float, log: Any
) -> dict[str, dict[str, Any]]:
    """Rows per config; a sample without unknown words is run once and shared."""
    from support import backends
    from support.retrieval import _lexical
    from support.search.bridge import BRIDGE_OFF, unknown_words

    lexical = _lexical()
    assert lexical is not None
    searcher = backends.get_searcher()
    searcher.bridge = BRIDGE_OFF
    base = [_run(s, min_conf) for s in samples]
    results: dict[str, list[dict[str, Any]]] = {"off": base}
    affected = [i for i, s in enumerate(samples) if unknown_words(lexical, s[0].text)]
    log(f"  {len(affected)}/{len(samples)} samples have a word the knowledge base lacks")
    for name, config in configs.items():
        searcher.bridge = config
        rows = list(base)
        for i in affected:
            rows[i] = _run(samples[i], min_conf)
        results[name] = rows
    searcher.bridge = BRIDGE_OFF
    return {name: {"metrics": _metrics(rows), "rows": rows} for name, rows in results.items()}


def _choose(dev: dict[str, dict[str, Any]], configs: dict[str, Any]) -> str:
    off = dev["off"]["metrics"]

    def safe(m: dict[str, Any]) -> bool:
        return all(
            m[f"{k}_declined"] is None or m[f"{k}_declined"] >= off[f"{k}_declined"]
            for k in ("withheld", "unanswerable")
        )

    def gain(m: dict[str, Any]) -> float:
        return m["recall@5"] + m["mrr@10"] - m["answerable_declined"]

    candidates = [n for n, r in dev.items() if safe(r["metrics"])]

    def least_change(n: str) -> tuple[bool, float, float, bool]:
        c = configs.get(n)
        if c is None:
            return (True, 0.0, 0.0, True)
        return (False, c.threshold, -c.weight, not c.substitute)

    # Ties: the bridge off, then the highest threshold, lowest weight, no substitution.
    return max(candidates, key=lambda n: (round(gain(dev[n]["metrics"]), 6), least_change(n)))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kb", type=Path, help="SUPPORT_DATA_DIR of an eval KB already built")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.kb:
        common.django_setup(args.kb.resolve())
    else:
        common.eval_kb()
    from support import backends
    from support.conf import get_support_settings
    from support.retrieval import index_pinned
    from support.search.bridge import BridgeConfig, bridge_build

    backends.serving_threads_configure()
    conf = get_support_settings()
    embedder = backends.get_embedder()
    snapshot = backends.get_index_reader().snapshot()
    assert snapshot.lexical is not None
    embedder.encode(["warm"])
    started = time.perf_counter()
    bridge = bridge_build(
        snapshot.lexical,
        embedder.encode,
        model=embedder.model_name,
        limit=conf.bridge_vocabulary,
    )
    build_s = time.perf_counter() - started
    assert bridge is not None
    log(f"bridge: {len(bridge)} terms embedded in {build_s:.1f} s")
    pinned = dataclasses.replace(snapshot, bridge=bridge)
    configs = {
        f"t{t}-w{w}{'-sub' if sub else ''}": BridgeConfig(
            threshold=t, weight=w, neighbours=conf.bridge_neighbours, substitute=sub
        )
        for t in THRESHOLDS
        for w in WEIGHTS
        for sub in (False, True)
    }
    min_conf = conf.retrieval_min_confidence
    dev_samples = split_samples("dev", args.limit)
    test_samples = split_samples("test", args.limit)
    with (
        index_pinned(pinned),
        _queries_embedded_once([s[0].text for s in (*dev_samples, *test_samples)]),
    ):
        log(f"dev: {len(dev_samples)} samples, {len(configs)} settings")
        dev = _evaluate(dev_samples, configs, min_conf, log)
        chosen = _choose(dev, configs)
        log(f"chosen on dev: {chosen}")
        shipped = {chosen: configs[chosen]} if chosen != "off" else {}
        log(f"test: {len(test_samples)} samples")
        test = _evaluate(test_samples, shipped, min_conf, log)
    # Outside the block above, where queries come from a precomputed batch.
    timing = _expand_timing(pinned, embedder, configs.get(chosen), test_samples)

    print(
        f"{'setting':14} {'R@5':>6} {'MRR':>6} {'ans decl':>8} {'withh decl':>10} {'unans decl':>10}"
    )
    for half, table in (("dev", dev), ("test", test)):
        for name, result in table.items():
            m = result["metrics"]
            if half == "test" or name in ("off", chosen):
                print(
                    f"{half + ' ' + name:14} {m['recall@5']:>6} {m['mrr@10']:>6} "
                    f"{m['answerable_declined']:>8} {m['withheld_declined']:>10} "
                    f"{m['unanswerable_declined']!s:>10}"
                )
    payload = {
        "bench": "bridge",
        "vocabulary_terms": len(bridge),
        "vocabulary_build_s": round(build_s, 2),
        "neighbours": conf.bridge_neighbours,
        "min_confidence": min_conf,
        "chosen": chosen,
        "chosen_config": dataclasses.asdict(configs[chosen]) if chosen in configs else None,
        "dev": {n: r["metrics"] for n, r in dev.items()},
        "test": {n: r["metrics"] for n, r in test.items()},
        "test_changed": _changed(test, chosen),
        "expand_ms": timing,
    }
    common.write_results("bridge", payload, also=args.out)
    return 0


def _changed(test: dict[str, dict[str, Any]], chosen: str) -> list[dict[str, Any]]:
    """The test samples whose decision or rank the chosen setting changed (for reading)."""
    if chosen not in test:
        return []
    out = []
    for a, b in zip(test["off"]["rows"], test[chosen]["rows"], strict=True):
        if (a["declined"], a["rank"]) != (b["declined"], b["rank"]):
            out.append({"off": a, chosen: b})
    return out


def _expand_timing(snapshot: Any, embedder: Any, config: Any, samples: Sequence[Any]) -> Any:
    """What bridging one query costs at answer time (its unknown words encoded, uncached, and
    the matrix product), over the test questions that have unknown words."""
    if config is None or snapshot.bridge is None:
        return None
    from support.search.bridge import VocabularyBridge, unknown_words

    fresh = VocabularyBridge(snapshot.bridge.terms, snapshot.bridge.vectors, model="")
    times, query_times = [], []
    for q, _, _ in samples:
        if not unknown_words(snapshot.lexical, q.text):
            continue
        t = time.perf_counter()
        fresh.expand(snapshot.lexical, q.text, embedder.encode, config)
        times.append((time.perf_counter() - t) * 1000)
        fresh._cache.clear()
        # For scale: the query's own embedding, on the same machine at the same moment.
        t = time.perf_counter()
        embedder.encode_query(q.text)
        query_times.append((time.perf_counter() - t) * 1000)
    return {
        "n": len(times),
        "p50": common.percentile(times, 50),
        "p95": common.percentile(times, 95),
        "query_encode_p50": common.percentile(query_times, 50),
        "query_encode_p95": common.percentile(query_times, 95),
    }


if __name__ == "__main__":
    raise SystemExit(main())
