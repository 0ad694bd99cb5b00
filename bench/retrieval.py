"""Retrieval benchmark through the real ingestion path (issue: knowledge base).

Ingests ../shared/eval/doc2dial with the product's own services (upload -> parse -> chunk ->
embed -> store -> index), then reports for dense-only, lexical-only and hybrid retrieval:
recall@1/@5/@10 and MRR@10 on the answerable questions (hit = a retrieved chunk overlaps the
grounding span; doc-level hits reported too); the confidence's separation of answerable and
unanswerable questions; ingestion throughput (chunks/s) next to the raw sentence-transformers
encode throughput on the same texts in the same run; and p50/p95 hybrid search latency at the
eval set's size and at 100,000 synthetic chunks (2 threads).

    python bench/retrieval.py            # full
    python bench/retrieval.py --quick    # 100k section with 20k chunks, fewer repeats
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "2")

from bench import _common as common


def _metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    out = {f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)}
    out["mrr@10"] = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    return out


def _auc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg)) if pos and neg else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--synthetic", type=int, default=None, help="size of the synthetic index")
    args = parser.parse_args(argv)
    synthetic_n = args.synthetic or (20_000 if args.quick else 100_000)

    # -- ingestion through the product's services, timed ------------------------------------
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    common.django_setup(data_dir)
    from django.core.management import call_command

    from support import knowledge

    call_command("migrate", verbosity=0, interactive=False)
    docs = common.load_documents()
    from support import backends as _backends

    _backends.get_embedder().encode(["warm up the model before timing"])
    started = time.perf_counter()
    ingested = 0
    for doc in docs:
        try:
            d = knowledge.document_upload(filename=doc.filename, data=doc.markdown(), queue=False)
        except Exception:
            continue
        if knowledge.document_ingest(document_id=d.pk, rebuild_index=False).status == "ready":
            ingested += 1
    knowledge.index_rebuild()
    ingest_s = time.perf_counter() - started

    import numpy as np
    import torch
    from django.db.models import Sum

    from support import backends
    from support.knowledge import _embedding_text
    from support.models import Chunk
    from support.retrieval import passages_search
    from support.search.hybrid import FusionConfig, HybridSearcher, hybrid_search
    from support.search.index import IndexReader
    from support.search.index import build as index_build
    from support.search.lexical import Bm25Index

    torch.set_num_threads(2)
    chunks = list(Chunk.objects.select_related("document").order_by("pk"))
    n_chunks = len(chunks)
    texts = [_embedding_text(c.document.title, tuple(c.heading_path), c.text) for c in chunks]
    embedder = backends.get_embedder()
    model = embedder._get_model()  # the raw SentenceTransformer, same weights
    t = time.perf_counter()
    model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    raw_encode_s = time.perf_counter() - t
    t = time.perf_counter()
    embedder.encode(texts)
    ours_encode_s = time.perf_counter() - t
    tokens = Chunk.objects.aggregate(t=Sum("token_count"))["t"]

    # -- quality -------------------------------------------------------------------------
    questions = common.load_questions()
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    searcher = backends.get_searcher()
    variants = {
        "dense": FusionConfig(method="convex", dense_weight=1.0),
        "lexical": FusionConfig(method="convex", dense_weight=0.0),
        "hybrid": searcher.fusion,
    }
    from support.models import Chunk as ChunkModel

    by_id = {c.pk: c for c in ChunkModel.objects.select_related("document")}

    class _P:  # the attributes span_hit/doc_hit read, from a chunk row
        def __init__(self, c: Any) -> None:
            self.filename = c.document.original_filename
            self.text = c.text

    quality: dict[str, Any] = {}
    for name, fusion in variants.items():
        variant = HybridSearcher(
            searcher.reader, embedder, fusion=fusion, confidence=searcher.confidence
        )
        span_ranks: list[int | None] = []
        doc_ranks: list[int | None] = []
        for q in answerable:
            hits = variant.search(q.text, k=10).hits
            ps = [_P(by_id[h.chunk_id]) for h in hits if h.chunk_id in by_id]
            span_ranks.append(next((i for i, p in enumerate(ps, 1) if common.span_hit(p, q)), None))
            doc_ranks.append(next((i for i, p in enumerate(ps, 1) if common.doc_hit(p, q)), None))
        quality[name] = {"span": _metrics(span_ranks), "doc": _metrics(doc_ranks)}

    # Confidence, exactly as the product computes it (passages_search).
    conf_pos = [passages_search(query=q.text, k=5).confidence for q in answerable]
    conf_neg = [passages_search(query=q.text, k=5).confidence for q in unanswerable]
    from support.conf import get_support_settings

    threshold = get_support_settings().retrieval_min_confidence
    confidence = {
        "auc": _auc(conf_pos, conf_neg),
        "threshold": threshold,
        "answerable_below_threshold": sum(c < threshold for c in conf_pos) / len(conf_pos),
        "unanswerable_below_threshold": sum(c < threshold for c in conf_neg) / len(conf_neg),
    }

    # -- latency at eval size (the product's search path, DB join included) ---------------
    lat = []
    for q in questions * 2:
        t = time.perf_counter()
        passages_search(query=q.text, k=10)
        lat.append((time.perf_counter() - t) * 1000)
    qvecs = embedder.encode([q.text for q in questions])
    snap = searcher.reader.snapshot()
    core = []
    for i in range(len(questions) * 2):
        t = time.perf_counter()
        hybrid_search(snap, qvecs[i % len(questions)], questions[i % len(questions)].text, k=10)
        core.append((time.perf_counter() - t) * 1000)

    # -- latency at synthetic size ------------------------------------------------------------
    rng = np.random.default_rng(0)
    dim = qvecs.shape[1]
    vocab = sorted({w for c in chunks for w in c.text.lower().split()})
    words = np.array(vocab + [f"err-{i}" for i in range(5000)])
    lengths = rng.integers(60, 200, size=synthetic_n)
    flat_words = rng.integers(0, len(words), size=int(lengths.sum()))
    syn_texts, pos = [], 0
    for length in lengths:
        syn_texts.append(" ".join(words[flat_words[pos : pos + length]]))
        pos += length
    vectors = rng.standard_normal((synthetic_n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, synthetic_n + 1, dtype=np.int64)
    synthetic: dict[str, Any] = {"chunks": synthetic_n}
    hnsw_threshold = get_support_settings().hnsw_threshold
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        index_build(tmp, ids, vectors, texts=syn_texts, hnsw_threshold=hnsw_threshold)
        synthetic["build_s"] = time.perf_counter() - t
        reader = IndexReader(tmp)
        s = reader.snapshot()
        synthetic["kind"] = s.manifest.kind
        syn = []
        for i in range(len(questions) * 2):
            q = questions[i % len(questions)]
            t = time.perf_counter()
            hybrid_search(reader.snapshot(), qvecs[i % len(questions)], q.text, k=10)
            syn.append((time.perf_counter() - t) * 1000)
    del Bm25Index

    result = {
        "machine": common.machine_info(),
        "eval": "doc2dial (IBM), Feng et al. 2020 — ../shared/eval/doc2dial",
        "documents": ingested,
        "chunks": n_chunks,
        "chunk_tokens_total": tokens,
        "ingestion": {
            "seconds": ingest_s,
            "chunks_per_s": n_chunks / ingest_s,
            "raw_encode_chunks_per_s": n_chunks / raw_encode_s,
            "our_encode_chunks_per_s": n_chunks / ours_encode_s,
            "ratio_vs_raw_encode": (n_chunks / ingest_s) / (n_chunks / raw_encode_s),
        },
        "quality": quality,
        "confidence": confidence,
        "latency_ms": {
            "eval_size_product_path": {
                "p50": common.percentile(lat, 50),
                "p95": common.percentile(lat, 95),
            },
            "eval_size_search_core": {
                "p50": common.percentile(core, 50),
                "p95": common.percentile(core, 95),
            },
            "synthetic": {
                **synthetic,
                "p50": common.percentile(syn, 50),
                "p95": common.percentile(syn, 95),
            },
        },
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
    }
    path = common.write_results("retrieval", result)
    _print(result, path)
    return 0


def _print(r: dict[str, Any], path: Path) -> None:
    f = common.fmt
    print(f"\n## Retrieval ({r['documents']} documents, {r['chunks']} chunks) — {path.name}\n")
    print("| method | recall@1 | recall@5 | recall@10 | MRR@10 | doc recall@5 |")
    print("|---|---|---|---|---|---|")
    for name, q in r["quality"].items():
        s = q["span"]
        print(
            f"| {name} | {f(s['recall@1'])} | {f(s['recall@5'])} | {f(s['recall@10'])} | "
            f"{f(s['mrr@10'])} | {f(q['doc']['recall@5'])} |"
        )
    ing = r["ingestion"]
    print(
        f"\nIngestion: {f(ing['chunks_per_s'], 1)} chunks/s end to end vs raw encode "
        f"{f(ing['raw_encode_chunks_per_s'], 1)} chunks/s "
        f"(ratio {f(ing['ratio_vs_raw_encode'], 2)}; our embedder alone "
        f"{f(ing['our_encode_chunks_per_s'], 1)} chunks/s)"
    )
    c = r["confidence"]
    print(
        f"Confidence AUC {f(c['auc'])}; threshold {c['threshold']}: "
        f"{f(c['unanswerable_below_threshold'])} of unanswerable and "
        f"{f(c['answerable_below_threshold'])} of answerable fall below"
    )
    lat = r["latency_ms"]
    print(
        f"Search latency at eval size: product path p50 "
        f"{f(lat['eval_size_product_path']['p50'], 1)} ms / p95 "
        f"{f(lat['eval_size_product_path']['p95'], 1)} ms; core p95 "
        f"{f(lat['eval_size_search_core']['p95'], 2)} ms"
    )
    s = lat["synthetic"]
    print(
        f"At {s['chunks']:,} synthetic chunks ({s['kind']}): p50 {f(s['p50'], 2)} ms, "
        f"p95 {f(s['p95'], 2)} ms (build {f(s['build_s'], 1)} s)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
