"""Tune and measure support.search on the doc2dial eval set (and on 100k synthetic chunks).

Usage (from the repository root, with the project venv)::

    python bench/retrieval_tune.py                 # chosen config: quality, confidence,
                                                   # throughput, latency (eval + 100k)
    python bench/retrieval_tune.py --grid          # also sweep chunking / prefixes / fusion
    python bench/retrieval_tune.py --skip-100k     # skip the slow synthetic 100k part
    python bench/retrieval_tune.py --synthetic 20000 --out r.json   # a smaller synthetic
                                                   # index; where to write the JSON

Writes a JSON report to bench/results/retrieval_tune.json and prints tables.

Eval data: ../shared/eval/doc2dial (doc2dial (IBM), Feng et al. 2020, CC BY 3.0): 191 help
pages, 220 first-turn questions (191 answerable, 29 whose page was withheld from the KB).
A retrieval hit is a chunk overlapping the grounding span's character range in its page, or
a chunk of another grounding page (near-duplicate pages) that contains the span's text.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import inspect
import itertools
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import faiss  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from support.search import index as vindex  # noqa: E402
from support.search.embedder import (  # noqa: E402
    SentenceTransformerEmbedder,
    default_embedding_model_path,
)
from support.search.hybrid import (  # noqa: E402
    DEFAULT_CONFIDENCE,
    DEFAULT_FUSION,
    ConfidenceModel,
    FusionConfig,
    hybrid_search,
)
from support.search.lexical import Bm25Params  # noqa: E402

EVAL_DIR = REPO.parent / "shared" / "eval" / "doc2dial"
RESULTS = REPO / "bench" / "results"
# Search runs with 2 faiss (OpenMP) threads as the brief asks. The embedder defaults to one
# torch thread: on 2 shared cores two threads were ~2x slower and query encoding stalled for
# hundreds of ms (OpenMP barriers waiting for descheduled threads); see the throughput section.
THREADS = 2
TORCH_THREADS = 1


# -- data -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Doc:
    id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    text: str
    answerable: bool
    grounding_doc_ids: tuple[str, ...]
    span_doc: str | None
    span_start: int
    span_end: int
    span_text: str


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    doc_id: str
    start: int
    end: int
    text: str  # the page slice, what a hit is judged on
    title: str
    body: str  # what gets embedded and BM25-indexed: the chunker's own text


def load_eval(eval_dir: Path) -> tuple[list[Doc], list[Question]]:
    docs = [
        Doc(d["id"], d["title"], d["text"])
        for d in map(json.loads, (eval_dir / "documents.jsonl").open(encoding="utf-8"))
    ]
    questions = []
    for q in map(json.loads, (eval_dir / "questions.jsonl").open(encoding="utf-8")):
        span = q.get("grounding_span") or {}
        questions.append(
            Question(
                id=q["id"],
                text=q["question"],
                answerable=bool(q["answerable"]),
                grounding_doc_ids=tuple(q.get("grounding_doc_ids") or ()),
                span_doc=span.get("doc_id"),
                span_start=int(span.get("start", 0)),
                span_end=int(span.get("end", 0)),
                span_text=span.get("text", ""),
            )
        )
    return docs, questions


# -- chunking ---------------------------------------------------------------------------------

_PARA_RE = re.compile(r"[^\n]+")
_SENT_RE = re.compile(r"[^.!?]+(?:[.!?]+|$)")


def pack_paragraphs(
    text: str, *, count_tokens: Callable[[str], int], max_tokens: int
) -> list[tuple[int, int]]:
    """Greedy paragraph packer keeping character offsets: lines are paragraphs; consecutive
    ones are joined while the chunk stays under `max_tokens`; an over-long line is split at
    sentence ends (and, failing that, hard-cut)."""
    pieces: list[tuple[int, int]] = []
    for m in _PARA_RE.finditer(text):
        if not m.group().strip():
            continue
        if count_tokens(m.group()) <= max_tokens:
            pieces.append(m.span())
            continue
        for s in _SENT_RE.finditer(m.group()):
            a, b = m.start() + s.start(), m.start() + s.end()
            if not text[a:b].strip():
                continue
            while b - a > 1 and count_tokens(text[a:b]) > max_tokens:
                cut = a + (b - a) // 2
                pieces.append((a, cut))
                a = cut
            pieces.append((a, b))
    chunks: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for a, b in pieces:
        if cur is None:
            cur = (a, b)
        elif count_tokens(text[cur[0] : b]) <= max_tokens:
            cur = (cur[0], b)
        else:
            chunks.append(cur)
            cur = (a, b)
    if cur is not None:
        chunks.append(cur)
    return chunks


def ingest_chunker() -> Callable[..., Any] | None:
    """The project's chunker (support/ingest/chunking.py) if it exists and imports."""
    try:
        from support.ingest import chunking  # type: ignore[attr-defined]
    except Exception:
        return None
    fn = getattr(chunking, "chunk", None)
    return fn if callable(fn) else None


def chunk_with_ingest(
    fn: Callable[..., Any], doc: Doc, *, count_tokens: Callable[[str], int], max_tokens: int
) -> list[tuple[int, int, str]]:
    """Parse the page as a .txt upload, run the ingest chunker, map chunks to page offsets."""
    from support.ingest import parse

    parsed = parse(doc.text.encode("utf-8"), f"{doc.id}.txt")
    kwargs: dict[str, Any] = {"count_tokens": count_tokens, "max_tokens": max_tokens}
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in params}
    spans = []
    cursor = 0
    for c in fn(parsed, **kwargs):
        body = getattr(c, "text", c)
        span = _locate(doc.text, body, cursor)
        if span is None:
            continue
        spans.append((span[0], span[1], body))
        cursor = span[0] + 1
    return spans


def _locate(page: str, body: str, cursor: int) -> tuple[int, int] | None:
    """Offsets of a (whitespace-normalised) chunk in the page: its first words are searched
    from `cursor` (chunks come in page order, possibly overlapping), its last words after."""
    words = re.findall(r"\S+", body)
    if not words:
        return None
    head = re.compile(r"\s+".join(map(re.escape, words[:8])))
    tail = re.compile(r"\s+".join(map(re.escape, words[-8:])))
    m = head.search(page, cursor) or head.search(page)
    if m is None:
        return None
    # The tail's last occurrence within a generous window after the head.
    limit = m.start() + len(body) * 2 + 200
    end = None
    for t in tail.finditer(page, m.start(), min(limit, len(page))):
        end = t.end()
        if t.end() >= m.start() + len(body) * 0.8:
            break
    return (m.start(), end if end is not None else m.start() + len(body))


def make_chunks(
    docs: Sequence[Doc], *, max_tokens: int, count_tokens: Callable[[str], int], chunker: str
) -> list[Chunk]:
    fn = ingest_chunker() if chunker == "ingest" else None
    if chunker == "ingest" and fn is None:
        raise SystemExit("support/ingest/chunking.py has no usable chunk() yet")
    chunks: list[Chunk] = []
    for doc in docs:
        if fn is not None:
            spans = chunk_with_ingest(fn, doc, count_tokens=count_tokens, max_tokens=max_tokens)
        else:
            spans = [
                (a, b, doc.text[a:b])
                for a, b in pack_paragraphs(
                    doc.text, count_tokens=count_tokens, max_tokens=max_tokens
                )
            ]
        for a, b, body in spans:
            chunks.append(
                Chunk(len(chunks) + 1, doc.id, a, b, doc.text[a:b].strip(), doc.title, body)
            )
    return chunks


def chunk_input(c: Chunk, *, with_title: bool) -> str:
    body = " ".join(c.body.split())
    return f"{c.title.strip()}\n{body}" if with_title else body


# -- metrics ----------------------------------------------------------------------------------


def _norm(s: str) -> str:
    return " ".join(re.findall(r"\w+", s.lower()))


def is_hit(c: Chunk, q: Question) -> bool:
    """The brief's hit: overlaps the grounding span in its page; for the other grounding
    pages (near-duplicates of the annotated one) fall back to the page id."""
    if c.doc_id == q.span_doc:
        return c.start < q.span_end and q.span_start < c.end
    return c.doc_id in q.grounding_doc_ids


def is_strict_hit(c: Chunk, q: Question) -> bool:
    """Stricter: a chunk of another grounding page only counts if it contains the span text."""
    if c.doc_id == q.span_doc:
        return c.start < q.span_end and q.span_start < c.end
    if c.doc_id in q.grounding_doc_ids:
        span = _norm(q.span_text)
        return bool(span) and span in _norm(c.text)
    return False


def rank_metrics(
    rankings: Sequence[Sequence[int]],
    questions: Sequence[Question],
    chunks_by_id: dict[int, Chunk],
) -> dict[str, float]:
    r1 = r5 = r10 = mrr = doc5 = strict5 = 0.0
    for ranking, q in zip(rankings, questions, strict=True):
        top = [chunks_by_id[cid] for cid in ranking[:10]]
        first = next((i for i, c in enumerate(top, 1) if is_hit(c, q)), None)
        if first is not None:
            r1 += first <= 1
            r5 += first <= 5
            r10 += 1
            mrr += 1.0 / first
        strict5 += any(is_strict_hit(c, q) for c in top[:5])
        doc5 += any(c.doc_id in q.grounding_doc_ids for c in top[:5])
    n = max(len(questions), 1)
    return {
        "recall@1": r1 / n,
        "recall@5": r5 / n,
        "recall@10": r10 / n,
        "mrr@10": mrr / n,
        "strict_recall@5": strict5 / n,
        "doc_recall@5": doc5 / n,
    }


def auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Probability a random positive outscores a random negative (ties count half)."""
    wins = 0.0
    for p in pos:
        for n in neg:
            wins += 1.0 if p > n else 0.5 if p == n else 0.0
    return wins / max(len(pos) * len(neg), 1)


def best_threshold(pos: Sequence[float], neg: Sequence[float]) -> dict[str, float]:
    """Threshold maximising balanced accuracy (Youden's J)."""
    best = {"threshold": 0.5, "tpr": 0.0, "fpr": 0.0, "balanced_accuracy": 0.0}
    for t in sorted(set(pos) | set(neg)):
        tpr = sum(p >= t for p in pos) / len(pos)
        fpr = sum(n >= t for n in neg) / len(neg)
        bacc = (tpr + 1.0 - fpr) / 2.0
        if bacc > best["balanced_accuracy"]:
            best = {"threshold": t, "tpr": tpr, "fpr": fpr, "balanced_accuracy": bacc}
    return best


def fit_logistic(
    x: NDArray[np.float64], y: NDArray[np.float64], *, l2: float = 1e-2, nonneg: bool = True
) -> NDArray[np.float64]:
    """Class-balanced, L2-regularised logistic regression by Newton's method.

    Returns [intercept, *weights]. With `nonneg`, features whose weight comes out negative
    are dropped and the model refitted, so confidence stays monotone in every score.
    """
    active = list(range(x.shape[1]))
    while True:
        xa = np.hstack([np.ones((len(x), 1)), x[:, active]])
        w_pos = len(y) / (2.0 * y.sum())
        w_neg = len(y) / (2.0 * (len(y) - y.sum()))
        sample_w = np.where(y > 0, w_pos, w_neg)
        beta = np.zeros(xa.shape[1])
        reg = np.full(xa.shape[1], l2)
        reg[0] = 0.0
        for _ in range(100):
            p = 1.0 / (1.0 + np.exp(-(xa @ beta)))
            grad = xa.T @ (sample_w * (p - y)) + reg * beta
            hess = (xa * (sample_w * p * (1 - p))[:, None]).T @ xa + np.diag(reg)
            step = np.linalg.solve(hess, grad)
            beta -= step
            if np.abs(step).max() < 1e-10:
                break
        negative = [i for i, b in zip(active, beta[1:], strict=True) if b < 0]
        if not nonneg or not negative:
            out = np.zeros(x.shape[1] + 1)
            out[0] = beta[0]
            for i, b in zip(active, beta[1:], strict=True):
                out[i + 1] = b
            return out
        active = [i for i in active if i not in negative]


# -- experiment plumbing ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunConfig:
    max_tokens: int = 192
    with_title: bool = False
    query_prefix: str = ""
    chunker: str = "ingest"
    fusion: FusionConfig = DEFAULT_FUSION
    k1: float = 1.2
    b: float = 0.75


class Workbench:
    """Caches chunks, embeddings and built indexes across configurations."""

    def __init__(
        self,
        docs: list[Doc],
        questions: list[Question],
        workdir: Path,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        self.cache_dir = cache_dir
        self.docs = docs
        self.questions = questions
        self.answerable = [q for q in questions if q.answerable]
        self.workdir = workdir
        self.embedder = SentenceTransformerEmbedder(threads=TORCH_THREADS)
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(Path(default_embedding_model_path()) / "tokenizer.json"))
        # The shipped tokenizer.json pads and truncates to 128: counting needs raw lengths.
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok
        self._chunks: dict[tuple[int, str], list[Chunk]] = {}
        self._vectors: dict[tuple[int, str, bool], NDArray[np.float32]] = {}
        self._queries: dict[str, NDArray[np.float32]] = {}
        self._snapshots: dict[tuple[Any, ...], vindex.IndexSnapshot] = {}

    def count_tokens(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def chunks(self, cfg: RunConfig) -> list[Chunk]:
        key = (cfg.max_tokens, cfg.chunker)
        if key not in self._chunks:
            self._chunks[key] = make_chunks(
                self.docs,
                max_tokens=cfg.max_tokens,
                count_tokens=self.count_tokens,
                chunker=cfg.chunker,
            )
        return self._chunks[key]

    def vectors(self, cfg: RunConfig) -> NDArray[np.float32]:
        key = (cfg.max_tokens, cfg.chunker, cfg.with_title)
        if key not in self._vectors:
            texts = [chunk_input(c, with_title=cfg.with_title) for c in self.chunks(cfg)]
            self._vectors[key] = self.encode_cached(texts)
        return self._vectors[key]

    def query_vectors(self, prefix: str) -> NDArray[np.float32]:
        if prefix not in self._queries:
            self._queries[prefix] = self.encode_cached([prefix + q.text for q in self.questions])
        return self._queries[prefix]

    def encode_cached(self, texts: list[str]) -> NDArray[np.float32]:
        """Embeddings, cached on disk by content hash so repeated tuning runs skip the model."""
        if self.cache_dir is None:
            return self.embedder.encode(texts)
        digest = hashlib.sha256(
            "\x00".join([self.embedder.model_name, *texts]).encode("utf-8")
        ).hexdigest()[:24]
        path = self.cache_dir / f"emb-{digest}.npy"
        if path.exists():
            return np.load(path)
        vectors = self.embedder.encode(texts)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors

    def snapshot(self, cfg: RunConfig) -> vindex.IndexSnapshot:
        key = (cfg.max_tokens, cfg.chunker, cfg.with_title, cfg.k1, cfg.b)
        if key not in self._snapshots:
            chunks = self.chunks(cfg)
            directory = self.workdir / "-".join(map(str, key))
            vindex.build(
                directory,
                [c.id for c in chunks],
                self.vectors(cfg),
                texts=[chunk_input(c, with_title=cfg.with_title) for c in chunks],
                bm25_params=Bm25Params(k1=cfg.k1, b=cfg.b),
            )
            self._snapshots[key] = vindex.IndexReader(directory).snapshot()
        return self._snapshots[key]

    def evaluate(self, cfg: RunConfig, *, systems: Sequence[str] = ("dense", "lexical", "hybrid")):
        snap = self.snapshot(cfg)
        chunks_by_id = {c.id: c for c in self.chunks(cfg)}
        qv = self.query_vectors(cfg.query_prefix)
        idx = [i for i, q in enumerate(self.questions) if q.answerable]
        out: dict[str, dict[str, float]] = {}
        assert snap.lexical is not None
        for system in systems:
            rankings = []
            for i in idx:
                q = self.questions[i]
                if system == "dense":
                    ranking = [h.chunk_id for h in snap.search(qv[i], 10)]
                elif system == "lexical":
                    ranking = [h.chunk_id for h in snap.lexical.search(q.text, 10)]
                else:
                    res = hybrid_search(snap, qv[i], q.text, k=10, fusion=cfg.fusion)
                    ranking = [h.chunk_id for h in res.hits]
                rankings.append(ranking)
            out[system] = rank_metrics(rankings, self.answerable, chunks_by_id)
        return out


# -- sections ---------------------------------------------------------------------------------


def section_grid(wb: Workbench, base: RunConfig, *, chunking: bool = True) -> dict[str, Any]:
    """Sweeps, one factor group at a time, each starting from the base config."""
    rows: list[dict[str, Any]] = []

    def run(cfg: RunConfig, label: str, systems: Sequence[str]) -> dict[str, Any]:
        t = time.perf_counter()
        metrics = wb.evaluate(cfg, systems=systems)
        row = {"label": label, "config": _cfg_dict(cfg), "metrics": metrics}
        row["seconds"] = round(time.perf_counter() - t, 1)
        rows.append(row)
        print(
            f"  {label:58s} "
            + "  ".join(
                f"{s}: r@1 {m['recall@1']:.3f} r@5 {m['recall@5']:.3f} mrr {m['mrr@10']:.3f}"
                for s, m in metrics.items()
            ),
            flush=True,
        )
        return row

    if chunking:
        _grid_chunking(wb, base, run)
    _grid_scoring(base, run)
    return {"rows": rows}


def _grid_chunking(wb: Workbench, base: RunConfig, run: Callable[..., Any]) -> None:
    print("\n== chunking x title x query prefix (dense / lexical / hybrid)")
    chunk_grid = [("packer", n, False) for n in (128, 192, 256)] + [("packer", 192, True)]
    if ingest_chunker():
        chunk_grid += [("ingest", n, False) for n in (192, 256)]
    for chunker, max_tokens, with_title in chunk_grid:
        cfg = replace(base, chunker=chunker, max_tokens=max_tokens, with_title=with_title)
        run(cfg, f"{chunker} {max_tokens} tok, title={with_title}", ("dense", "lexical", "hybrid"))
    for prefix in ("query: ", "Question: ", "Represent this question for searching: "):
        run(replace(base, query_prefix=prefix), f"query prefix {prefix!r}", ("dense", "hybrid"))


def _grid_scoring(base: RunConfig, run: Callable[..., Any]) -> None:
    print("\n== BM25 k1 / b")
    for k1, b in ((0.9, 0.4), (1.2, 0.75), (1.5, 0.75), (2.0, 0.75), (1.2, 0.5), (1.2, 0.9)):
        run(replace(base, k1=k1, b=b), f"k1={k1} b={b}", ("lexical", "hybrid"))

    print("\n== fusion")
    for method, weights in (
        ("convex", (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9)),
        ("rrf", (0.3, 0.4, 0.5, 0.6, 0.7)),
    ):
        # Convex fusion scores every candidate exactly, so its pool size barely matters.
        for w, n in itertools.product(weights, (50,) if method == "convex" else (20, 50, 100)):
            fusion = FusionConfig(method=method, dense_weight=w, candidates=n)  # type: ignore[arg-type]
            run(replace(base, fusion=fusion), f"{method} w={w} candidates={n}", ("hybrid",))


def section_quality(wb: Workbench, cfg: RunConfig) -> dict[str, Any]:
    chunks = wb.chunks(cfg)
    lengths = [wb.count_tokens(chunk_input(c, with_title=cfg.with_title)) for c in chunks]
    metrics = wb.evaluate(cfg)
    # Stability check: the same config on two disjoint halves of the questions.
    halves = {}
    snap = wb.snapshot(cfg)
    qv = wb.query_vectors(cfg.query_prefix)
    idx = [i for i, q in enumerate(wb.questions) if q.answerable]
    chunks_by_id = {c.id: c for c in chunks}
    for name, part in (("even", idx[0::2]), ("odd", idx[1::2])):
        rankings = [
            [
                h.chunk_id
                for h in hybrid_search(
                    snap, qv[i], wb.questions[i].text, k=10, fusion=cfg.fusion
                ).hits
            ]
            for i in part
        ]
        halves[name] = rank_metrics(rankings, [wb.questions[i] for i in part], chunks_by_id)
    return {
        "config": _cfg_dict(cfg),
        "chunks": len(chunks),
        "chunk_tokens_p50": statistics.median(lengths),
        "chunk_tokens_max": max(lengths),
        "metrics": metrics,
        "hybrid_halves": halves,
    }


def section_confidence(wb: Workbench, cfg: RunConfig) -> dict[str, Any]:
    snap = wb.snapshot(cfg)
    qv = wb.query_vectors(cfg.query_prefix)
    feats, labels = [], []
    for i, q in enumerate(wb.questions):
        res = hybrid_search(snap, qv[i], q.text, k=10, fusion=cfg.fusion)
        second = res.hits[1].dense_score if len(res.hits) > 1 else 0.0
        dense_top2 = snap.search(qv[i], 2)
        margin = dense_top2[0].score - dense_top2[1].score if len(dense_top2) > 1 else 0.0
        del second
        feats.append([res.top_cosine, res.lexical_coverage, margin, res.hits[0].score])
        labels.append(1.0 if q.answerable else 0.0)
    x = np.asarray(feats)
    y = np.asarray(labels)
    names = ["top_cosine", "lexical_coverage", "dense_margin", "top_fused"]
    single = {
        name: auc(x[y > 0, j].tolist(), x[y == 0, j].tolist()) for j, name in enumerate(names)
    }
    # The model uses top_cosine and lexical_coverage (see hybrid.ConfidenceModel).
    xs = x[:, :2]
    beta = fit_logistic(xs, y)
    fitted = ConfidenceModel(float(beta[0]), float(beta[1]), float(beta[2]))
    probs = np.array([fitted(a, b) for a, b in xs])
    # 10-fold cross-validated AUC, so the reported number is not an in-sample one.
    rng = np.random.default_rng(0)
    folds = rng.permutation(len(y)) % 10
    cv_probs = np.zeros(len(y))
    for f in range(10):
        train, test = folds != f, folds == f
        bf = fit_logistic(xs[train], y[train])
        m = ConfidenceModel(float(bf[0]), float(bf[1]), float(bf[2]))
        cv_probs[test] = [m(a, b) for a, b in xs[test]]
    shipped = np.array([DEFAULT_CONFIDENCE(a, b) for a, b in xs])
    pos, neg = y > 0, y == 0
    return {
        "feature_auc": single,
        "fitted": asdict(fitted),
        "shipped": asdict(DEFAULT_CONFIDENCE),
        "auc_fitted_in_sample": auc(probs[pos].tolist(), probs[neg].tolist()),
        "auc_fitted_cv10": auc(cv_probs[pos].tolist(), cv_probs[neg].tolist()),
        "auc_shipped": auc(shipped[pos].tolist(), shipped[neg].tolist()),
        "best_threshold_shipped": best_threshold(shipped[pos].tolist(), shipped[neg].tolist()),
        "shipped_at_0.5": {
            "tpr": float((shipped[pos] >= 0.5).mean()),
            "fpr": float((shipped[neg] >= 0.5).mean()),
        },
        "top_cosine_answerable_p50": float(np.median(x[pos, 0])),
        "top_cosine_unanswerable_p50": float(np.median(x[neg, 0])),
    }


def section_throughput(
    wb: Workbench, cfg: RunConfig, *, repeats: int = 2, sample: int = 300
) -> dict[str, Any]:
    """Chunks/s of raw `model.encode` and of our embedder on the same texts, per torch thread
    count. Arms are interleaved within each repeat so load drifts hit all alike; best of
    `repeats` per arm."""
    import torch

    texts = [chunk_input(c, with_title=cfg.with_title) for c in wb.chunks(cfg)]
    # A fixed random sample keeps the run short on 2 shared cores; same texts for every arm.
    pick = np.random.default_rng(0).permutation(len(texts))[:sample]
    texts = [texts[i] for i in sorted(pick)]
    emb = wb.embedder
    model = emb._get_model()
    model.encode(texts[:32])  # warm-up
    shuffled = list(texts)
    np.random.default_rng(0).shuffle(shuffled)
    unsorted = [shuffled[i : i + 16] for i in range(0, len(shuffled), 16)]
    arms: dict[str, Callable[[], Any]] = {
        "raw_model_encode_default": lambda: model.encode(texts),
        "embedder_encode": lambda: emb.encode(texts),
        **{
            f"raw_model_encode_bs{bs}": (lambda bs=bs: model.encode(texts, batch_size=bs))
            for bs in (16, 32, 64)
        },
        "unsorted_bs16_calls": lambda: [model.encode(c, batch_size=16) for c in unsorted],
    }
    best: dict[str, float] = {}
    loads = []
    for _ in range(repeats):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            loads.append(os.getloadavg()[0])
            for name, fn in arms.items():
                gc.collect()
                t = time.perf_counter()
                fn()
                key = f"threads{threads}_{name}"
                best[key] = min(best.get(key, math.inf), time.perf_counter() - t)
    torch.set_num_threads(TORCH_THREADS)
    result: dict[str, Any] = {
        "chunks": len(texts),
        "load_average": loads,
        **{k: len(texts) / v for k, v in best.items()},
    }
    for threads in (1, 2):
        ours = result[f"threads{threads}_embedder_encode"]
        result[f"threads{threads}_ratio_vs_raw_default"] = (
            ours / result[f"threads{threads}_raw_model_encode_default"]
        )
        best_raw = max(
            v for k, v in result.items() if k.startswith(f"threads{threads}_raw_model_encode")
        )
        result[f"threads{threads}_ratio_vs_best_raw"] = ours / best_raw
    return result


def _latency(fn: Callable[[int], Any], n: int, *, warmup: int = 20) -> dict[str, float]:
    for i in range(min(warmup, n)):
        fn(i)
    times = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {
        "p50_ms": times[len(times) // 2],
        "p95_ms": times[min(len(times) - 1, int(len(times) * 0.95))],
        "max_ms": times[-1],
        "n": n,
    }


def section_latency_eval(wb: Workbench, cfg: RunConfig) -> dict[str, Any]:
    snap = wb.snapshot(cfg)
    qv = wb.query_vectors(cfg.query_prefix)
    qs = wb.questions
    n = len(qs)
    deny = [c.id for c in wb.chunks(cfg)[:20]]
    out: dict[str, Any] = {"chunks": len(snap), "kind": snap.manifest.kind}
    faiss.omp_set_num_threads(1)
    out["faiss_threads1_hybrid_k10"] = _latency(
        lambda i: hybrid_search(snap, qv[i % n], qs[i % n].text, k=10, fusion=cfg.fusion), 2 * n
    )
    faiss.omp_set_num_threads(THREADS)
    return {
        **out,
        "hybrid_k10": _latency(
            lambda i: hybrid_search(snap, qv[i % n], qs[i % n].text, k=10, fusion=cfg.fusion), 2 * n
        ),
        "hybrid_k10_with_deny_list": _latency(
            lambda i: hybrid_search(
                snap, qv[i % n], qs[i % n].text, k=10, fusion=cfg.fusion, deny_ids=deny
            ),
            2 * n,
        ),
        "encode_query": _latency(lambda i: wb.embedder.encode_query(qs[i % n].text), n),
    }


def synthetic_corpus(
    wb: Workbench, cfg: RunConfig, n: int, *, dim: int, seed: int = 0
) -> tuple[NDArray[np.int64], NDArray[np.float32], list[str]]:
    """`n` random unit vectors and texts sampled from the eval corpus' word distribution
    (Zipf-like, so posting lists are as skewed as in real text) with real chunk lengths."""
    rng = np.random.default_rng(seed)
    words = re.findall(r"\S+", " ".join(d.text for d in wb.docs))
    vocab, counts = np.unique(np.asarray(words), return_counts=True)
    # Sprinkle product codes so the synthetic corpus has the token shapes the tokenizer
    # special-cases, and enough distinct terms for a realistic vocabulary size.
    codes = np.asarray([f"ERR-{i}" for i in range(20_000)] + [f"#{i}" for i in range(20_000)])
    vocab = np.concatenate([vocab, codes])
    probs = np.concatenate([counts, np.ones(len(codes))]).astype(np.float64)
    probs /= probs.sum()
    lengths = [len(c.text.split()) for c in wb.chunks(cfg)]
    doc_lengths = rng.choice(lengths, size=n)
    flat = rng.choice(len(vocab), size=int(doc_lengths.sum()), p=probs)
    texts = []
    pos = 0
    for length in doc_lengths:
        texts.append(" ".join(vocab[flat[pos : pos + length]]))
        pos += length
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, n + 1, dtype=np.int64) * 7  # non-contiguous ids, like a real table
    return ids, vectors, texts


def section_latency_100k(wb: Workbench, cfg: RunConfig, *, n: int = 100_000) -> dict[str, Any]:
    """Latency at `n` chunks: random unit vectors (as the brief asks) and synthetic texts.

    BM25 is built once and shared by the HNSW and flat snapshots. HNSW recall is measured on
    a second, clustered set (real chunk vectors plus noise): on random vectors every cosine
    is ~0 and "nearest neighbour" has no meaning, so recall there says nothing.
    """
    from support.search.lexical import Bm25Index

    snap_eval = wb.snapshot(cfg)
    dim = snap_eval.manifest.dimension
    ids, vectors, texts = synthetic_corpus(wb, cfg, n, dim=dim)
    qv = wb.query_vectors(cfg.query_prefix)
    qs = wb.questions
    nq = len(qs)
    out: dict[str, Any] = {"chunks": n}

    t = time.perf_counter()
    bm25 = Bm25Index.build(ids, texts)
    out["bm25_build_s"] = time.perf_counter() - t
    path = wb.workdir / "bm25-100k.npz"
    bm25.save(path)
    out["bm25_file_mb"] = path.stat().st_size / 1e6
    t = time.perf_counter()
    bm25 = Bm25Index.load(path)
    out["bm25_load_s"] = time.perf_counter() - t
    out["bm25_vocab"] = len(bm25.vocab)
    del texts
    gc.collect()
    print(
        f"  bm25 100k: build {out['bm25_build_s']:.1f}s load {out['bm25_load_s']:.2f}s", flush=True
    )

    for kind, threshold in (("hnsw", vindex.DEFAULT_HNSW_THRESHOLD), ("flat", n + 1)):
        directory = wb.workdir / f"synthetic-{kind}"
        t = time.perf_counter()
        vindex.build(directory, ids, vectors, hnsw_threshold=threshold)
        build_s = time.perf_counter() - t
        reader = vindex.IndexReader(directory)
        t = time.perf_counter()
        snap = replace(reader.snapshot(), lexical=bm25)
        load_s = time.perf_counter() - t
        assert snap.manifest.kind == kind
        deny = ids[:50]
        print(f"  {kind} 100k: build {build_s:.1f}s load {load_s:.2f}s", flush=True)
        out[kind] = {
            "build_s": build_s,
            "load_s": load_s,
            "dense_k10": _latency(lambda i, s=snap: s.search(qv[i % nq], 10), 2 * nq),
            "lexical_k10": _latency(lambda i: bm25.search(qs[i % nq].text, 10), 2 * nq),
            "hybrid_k10": _latency(
                lambda i, s=snap: hybrid_search(
                    s, qv[i % nq], qs[i % nq].text, k=10, fusion=cfg.fusion
                ),
                2 * nq,
            ),
            "hybrid_k10_with_deny_list": _latency(
                lambda i, s=snap, d=deny: hybrid_search(
                    s, qv[i % nq], qs[i % nq].text, k=10, fusion=cfg.fusion, deny_ids=d
                ),
                2 * nq,
            ),
            "pointer_check": _latency(lambda i, r=reader: r.snapshot(), 2 * nq),
        }
        faiss.omp_set_num_threads(1)
        out[kind]["faiss_threads1_hybrid_k10"] = _latency(
            lambda i, s=snap: hybrid_search(
                s, qv[i % nq], qs[i % nq].text, k=10, fusion=cfg.fusion
            ),
            2 * nq,
        )
        faiss.omp_set_num_threads(THREADS)
        del snap, reader
        gc.collect()

    # HNSW quality on clustered vectors: real chunk embeddings plus noise, real queries.
    rng = np.random.default_rng(1)
    base = wb.vectors(cfg)
    clustered = base[rng.integers(0, len(base), size=n)] + rng.standard_normal(
        (n, dim), dtype=np.float32
    ) * np.float32(0.03)
    clustered /= np.linalg.norm(clustered, axis=1, keepdims=True)
    directory = wb.workdir / "synthetic-clustered"
    t = time.perf_counter()
    vindex.build(directory, ids, clustered)
    out["hnsw_clustered_build_s"] = time.perf_counter() - t
    flat = faiss.IndexFlatIP(dim)
    flat.add(clustered)
    _, exact = flat.search(qv, 10)
    exact_sets = [set(ids[row].tolist()) for row in exact]
    del flat
    for ef in (16, 32, 64, 128):
        snap = vindex.IndexReader(directory, ef_search=ef).snapshot()
        approx = [{h.chunk_id for h in snap.search(qv[i], 10)} for i in range(nq)]
        out[f"hnsw_clustered_ef{ef}"] = {
            "recall10_vs_exact": float(
                np.mean([len(a & e) / 10 for a, e in zip(approx, exact_sets, strict=True)])
            ),
            "dense_k10": _latency(lambda i, s=snap: s.search(qv[i % nq], 10), 2 * nq),
        }
        del snap
    return out


def _cfg_dict(cfg: RunConfig) -> dict[str, Any]:
    d = asdict(cfg)
    return d


def _print_summary(report: dict[str, Any]) -> None:
    q = report.get("quality")
    if q:
        print("\n== retrieval quality (answerable questions, n=191)")
        print(
            f"chunks: {q['chunks']}, tokens p50 {q['chunk_tokens_p50']} max "
            f"{q['chunk_tokens_max']}, config {q['config']}"
        )
        print(
            f"{'system':10s} {'R@1':>6s} {'R@5':>6s} {'R@10':>6s} {'MRR@10':>7s} "
            f"{'strictR@5':>9s} {'docR@5':>7s}"
        )
        for system, m in q["metrics"].items():
            print(
                f"{system:10s} {m['recall@1']:6.3f} {m['recall@5']:6.3f} {m['recall@10']:6.3f} "
                f"{m['mrr@10']:7.3f} {m['strict_recall@5']:9.3f} {m['doc_recall@5']:7.3f}"
            )
        for half, m in q["hybrid_halves"].items():
            print(f"  hybrid on {half} half: R@5 {m['recall@5']:.3f} MRR {m['mrr@10']:.3f}")
    c = report.get("confidence")
    if c:
        print("\n== confidence (answerable vs unanswerable, 191 / 29)")
        print(json.dumps(c, indent=1))
    t = report.get("throughput")
    if t:
        print("\n== encode throughput (chunks/s, per torch thread count)")
        print(json.dumps(t, indent=1))
    for key in ("latency_eval", "latency_100k"):
        if report.get(key):
            print(f"\n== {key}")
            print(json.dumps(report[key], indent=1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval-dir", type=Path, default=EVAL_DIR)
    parser.add_argument(
        "--grid",
        choices=("all", "scoring"),
        help="run the tuning sweeps: all, or only BM25/fusion on the chosen chunking",
    )
    parser.add_argument("--skip-100k", action="store_true")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=100_000,
        help="chunks in the synthetic latency section (default 100,000)",
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--chunker", choices=("packer", "ingest"), default="ingest")
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=REPO / "var" / "bench-cache",
        help="embedding cache (var/ is git-ignored); pass '' to disable",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "retrieval_tune.json")
    args = parser.parse_args(argv)

    faiss.omp_set_num_threads(THREADS)
    docs, questions = load_eval(args.eval_dir)
    cfg = RunConfig(max_tokens=args.max_tokens, chunker=args.chunker)
    report: dict[str, Any] = {
        "faiss_threads": THREADS,
        "torch_threads": TORCH_THREADS,
        "faiss": faiss.__version__,
        "load_average_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(prefix="retrieval-tune-") as tmp:
        cache = args.cache_dir if str(args.cache_dir) not in ("", ".") else None
        wb = Workbench(docs, questions, Path(tmp), cache_dir=cache)
        if args.grid:
            report["grid"] = section_grid(wb, cfg, chunking=args.grid == "all")
        report["quality"] = section_quality(wb, cfg)
        report["confidence"] = section_confidence(wb, cfg)
        if not args.skip_throughput:
            report["throughput"] = section_throughput(wb, cfg)
        report["latency_eval"] = section_latency_eval(wb, cfg)
        if not args.skip_100k:
            report["latency_100k"] = section_latency_100k(wb, cfg, n=args.synthetic)
    _print_summary(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
