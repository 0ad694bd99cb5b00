"""Retrieval benchmark through the real ingestion path (issue: knowledge base).

Ingests ../shared/eval/doc2dial with the product's own services (upload -> parse -> chunk ->
embed -> store -> index), then reports for dense-only, lexical-only and hybrid retrieval:
recall@1..@10 and MRR@10 on the answerable questions (hit = a retrieved chunk overlaps the
grounding span; doc-level hits reported too); the confidence's separation of answerable and
unanswerable questions; ingestion throughput (chunks/s) next to the raw sentence-transformers
encode throughput on the same texts in the same run; and p50/p95 hybrid search latency at the
eval set's size and at 100,000 synthetic chunks, next to a raw FAISS search of the same index.
Everything runs with the thread counts of a serving worker
(`support.backends.serving_threads_configure`: one torch and one FAISS thread by default).

    python bench/retrieval.py                   # full
    python bench/retrieval.py --quick           # see below
    python bench/retrieval.py --out result.json # also: where to write the JSON

`--quick` skips the timed fresh ingestion: it evaluates the shared, cached eval KB
(bench/_common.eval_kb(), built once through the same ingestion path), compares our embedder
with raw encode on a sample of 128 chunks, times searches for the first 60 questions once
(instead of all 220 twice) and uses 10,000 synthetic chunks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common

QUICK_ENCODE_SAMPLE = 128
QUICK_LATENCY_QUESTIONS = 60


def _metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    out = {
        f"recall@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in range(1, 11)
    }
    out["mrr@10"] = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    return out


def _ms(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def _p(values: list[float]) -> dict[str, float | None]:
    return {"p50": common.percentile(values, 50), "p95": common.percentile(values, 95)}


def _raw_faiss(snap: Any, query: Any) -> Any:
    """The snapshot's FAISS index searched directly, with the same efSearch as the product."""
    import faiss

    params = None
    if snap.manifest.kind == "hnsw":
        params = faiss.SearchParametersHNSW(efSearch=snap.ef_search)
    return snap.dense.search(query, 10, params=params)


def _chunk_texts(docs: list[Any]) -> list[str]:
    """What ingestion will embed for `docs`, from the product's own parser and chunker."""
    from support.conf import get_support_settings
    from support.ingest import chunk, embedding_token_counter, parse
    from support.knowledge import _embedding_text

    conf = get_support_settings()
    texts = []
    for doc in docs:
        parsed = parse(doc.markdown(), doc.filename)
        for d in chunk(
            parsed,
            count_tokens=embedding_token_counter(),
            max_tokens=conf.chunk_tokens,
            overlap_tokens=min(conf.chunk_overlap_tokens, conf.chunk_tokens // 2),
        ):
            texts.append(_embedding_text(parsed.title, d.heading_path, d.text))
    return texts


def _auc(pos: list[float], neg: list[float]) -> float:
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg)) if pos and neg else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--synthetic", type=int, default=None, help="size of the synthetic index")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = parser.parse_args(argv)
    synthetic_n = args.synthetic or (10_000 if args.quick else 100_000)
    repeats = 1 if args.quick else 2

    import tempfile

    raw_bracket_s: float | None = None
    if args.quick:
        # The shared eval KB: built through the same ingestion path when the cache is cold.
        kb = common.eval_kb()
        ingested = kb.documents
        ingest_s = None if kb.cached else kb.build_s
    else:
        # -- ingestion through the product's services, timed ----------------------------------
        import atexit
        import shutil

        data_dir = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
        atexit.register(shutil.rmtree, data_dir, True)
        common.django_setup(data_dir)
        from django.core.management import call_command

        from support import knowledge

        call_command("migrate", verbosity=0, interactive=False)
        docs = common.load_documents()
        from support import backends as _backends

        # A fair comparison: the same threads (a serving worker's), the same batch size and the
        # same texts for ingestion and raw encode, the model warm, raw encode timed just before
        # and just after the ingestion (load on a shared machine drifts) and averaged.
        _backends.serving_threads_configure()
        raw_texts = _chunk_texts(docs)
        embedder = _backends.get_embedder()
        raw_model = embedder._get_model()  # type: ignore[attr-defined]
        raw_model.encode(raw_texts[:32], batch_size=embedder.batch_size)  # type: ignore[attr-defined]

        def raw_encode() -> float:
            t = time.perf_counter()
            raw_model.encode(
                raw_texts,
                batch_size=embedder.batch_size,  # type: ignore[attr-defined]
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
            return time.perf_counter() - t

        raw_before_s = raw_encode()
        started = time.perf_counter()
        ids = []
        for doc in docs:
            try:
                d = knowledge.document_upload(
                    filename=doc.filename, data=doc.markdown(), queue=False
                )
            except Exception:
                continue
            ids.append(d.pk)
        # The bulk path (kb_ingest, admin multi-upload): chunks of many pages embedded together.
        outcomes = knowledge.documents_ingest(document_ids=ids, rebuild_index=False)
        ingested = sum(o.status == "ready" for o in outcomes)
        knowledge.index_rebuild()
        ingest_s = time.perf_counter() - started
        raw_bracket_s = (raw_before_s + raw_encode()) / 2

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

    configure = getattr(backends, "serving_threads_configure", None)
    if configure is not None:
        configure()  # the threads a serving worker process uses
    else:
        torch.set_num_threads(1)
    import faiss

    threads = {"torch": torch.get_num_threads(), "faiss": faiss.omp_get_max_threads()}
    chunks = list(Chunk.objects.select_related("document").order_by("pk"))
    n_chunks = len(chunks)
    texts = [_embedding_text(c.document.title, tuple(c.heading_path), c.text) for c in chunks]
    if args.quick and len(texts) > QUICK_ENCODE_SAMPLE:  # an even spread over the KB
        step = len(texts) / QUICK_ENCODE_SAMPLE
        texts = [texts[int(i * step)] for i in range(QUICK_ENCODE_SAMPLE)]
    embedder = backends.get_embedder()
    model = embedder._get_model()  # the raw SentenceTransformer, same weights
    model.encode(texts[:8])  # warm-up (the quick path has not used the model yet)
    t = time.perf_counter()
    model.encode(
        texts, batch_size=embedder.batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    raw_encode_s = time.perf_counter() - t
    t = time.perf_counter()
    embedder.encode(texts)
    ours_encode_s = time.perf_counter() - t
    tokens = Chunk.objects.aggregate(t=Sum("token_count"))["t"]
    raw_rate = len(texts) / raw_encode_s
    ingestion = {
        "seconds": ingest_s,
        "chunks_per_s": n_chunks / ingest_s if ingest_s else None,
        # A cold eval-KB build (quick) also loads the embedding model inside the timing.
        "includes_model_load": bool(args.quick and ingest_s),
        "encoded_chunks": len(texts),
        "raw_encode_chunks_per_s": raw_rate,
        "our_encode_chunks_per_s": len(texts) / ours_encode_s,
        "our_encode_ratio_vs_raw": raw_encode_s / ours_encode_s,
        "ratio_vs_raw_encode": (n_chunks / ingest_s) / raw_rate if ingest_s else None,
        "raw_encode_batch_size": embedder.batch_size,
    }
    if raw_bracket_s is not None and ingest_s:
        # The full run's figure: raw encode of the same texts timed around the ingestion.
        ingestion["raw_encode_chunks_per_s"] = len(raw_texts) / raw_bracket_s
        ingestion["ratio_vs_raw_encode"] = (n_chunks / ingest_s) / (len(raw_texts) / raw_bracket_s)
        ingestion["raw_texts_match_ingested"] = sorted(raw_texts) == sorted(
            _embedding_text(c.document.title, tuple(c.heading_path), c.text) for c in chunks
        )
    if ingest_s is None:
        ingestion["note"] = "not timed: the quick run evaluates the cached eval KB"

    # -- quality -------------------------------------------------------------------------
    questions = common.load_questions()
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    searcher = backends.get_searcher()
    variants = {
        "dense": FusionConfig(method="convex", dense_weight=1.0, opening_boost=0.0),
        "lexical": FusionConfig(method="convex", dense_weight=0.0, opening_boost=0.0),
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
    timed = questions[:QUICK_LATENCY_QUESTIONS] if args.quick else questions
    lat = [_ms(lambda q=q: passages_search(query=q.text, k=10)) for q in timed * repeats]
    qvecs = embedder.encode([q.text for q in timed])
    snap = searcher.reader.snapshot()
    nq = len(timed)
    core = [
        _ms(lambda i=i: hybrid_search(snap, qvecs[i % nq], timed[i % nq].text, k=10))
        for i in range(nq * repeats)
    ]
    # The baseline: the same FAISS index searched directly (dense only, no BM25, no fusion).
    raw = [
        _ms(lambda i=i: _raw_faiss(snap, qvecs[i % nq : i % nq + 1])) for i in range(nq * repeats)
    ]

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
        syn = [
            _ms(
                lambda i=i: hybrid_search(
                    reader.snapshot(), qvecs[i % nq], timed[i % nq].text, k=10
                )
            )
            for i in range(nq * repeats)
        ]
        syn_raw = [
            _ms(lambda i=i: _raw_faiss(s, qvecs[i % nq : i % nq + 1])) for i in range(nq * repeats)
        ]
    del Bm25Index
    core_p, raw_p, syn_p, syn_raw_p = _p(core), _p(raw), _p(syn), _p(syn_raw)

    result = {
        "machine": common.machine_info(),
        "eval": "doc2dial (IBM), Feng et al. 2020 — ../shared/eval/doc2dial",
        "documents": ingested,
        "chunks": n_chunks,
        "chunk_tokens_total": tokens,
        "mode": "quick" if args.quick else "full",
        "threads": threads,
        "ingestion": ingestion,
        "quality": quality,
        "confidence": confidence,
        "latency_ms": {
            "repeats": repeats,
            "questions": nq,
            "eval_size_product_path": _p(lat),
            "eval_size_search_core": core_p,
            "eval_size_raw_faiss": raw_p,
            "synthetic": {**synthetic, **syn_p, "raw_faiss": syn_raw_p},
        },
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        path = args.out
    else:
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
        f"{f(ing['our_encode_chunks_per_s'], 1)} chunks/s){' — ' + ing['note'] if ing.get('note') else ''}"
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
        f"{f(lat['eval_size_search_core']['p95'], 2)} ms; raw FAISS p95 "
        f"{f(lat['eval_size_raw_faiss']['p95'], 3)} ms"
    )
    s = lat["synthetic"]
    print(
        f"At {s['chunks']:,} synthetic chunks ({s['kind']}): p50 {f(s['p50'], 2)} ms, "
        f"p95 {f(s['p95'], 2)} ms (build {f(s['build_s'], 1)} s); raw FAISS p95 "
        f"{f(s['raw_faiss']['p95'], 3)} ms"
    )


if __name__ == "__main__":
    raise SystemExit(main())
