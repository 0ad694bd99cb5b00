"""Retrieval variants on doc2dial, measured against the product's hybrid search (issue #3).

Every variant chunks the pages with the product's own parser and chunker, embeds with the
product's embedder (one torch thread; embeddings cached on disk by content in
var/bench-cache, so reruns skip the model) and scores with the product's BM25 index. Metrics
are span hits (`bench._common.span_hit`, the README's strict test) at 1/5/10 and MRR@10 on the
191 answerable first-turn questions, reported on the dev half (even lines: tune here), the test
half (odd lines: report) and all.

    python bench/retrieval_variants.py                  # every variant (~15 min cold cache)
    python bench/retrieval_variants.py --only size,position   # sections, comma-separated:
        # baseline fusion chunk bm25 query docagg position docfirst neighbour prf sentence
        # combo size doc2query
    python bench/retrieval_variants.py --only baseline --oracle   # + where the span chunk ranks
    python bench/retrieval_variants.py --confidence 448/32        # re-fit the confidence model
    python bench/retrieval_variants.py --only doc2query   # needs the llamacpp extra; ~25 min cold

doc2query asks the shipped SmolLM2-135M (through llama-cpp-python, greedy) for three questions
per chunk and adds them to the chunk's BM25 text and/or as extra dense vectors; the questions
are cached by content in var/bench-cache like the embeddings.

A run writes var/bench/retrieval_variants-run.json; the committed
bench/results/retrieval_variants.json merges the rows of those runs plus
notes; bench/_report.py renders it into docs/benchmarks.md.

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from bench import _common as common  # noqa: E402
from support.ingest import chunk as ingest_chunk  # noqa: E402
from support.ingest import embedding_token_counter, parse, sentences  # noqa: E402
from support.search import lexical  # noqa: E402
from support.search.embedder import SentenceTransformerEmbedder  # noqa: E402
from support.search.lexical import Bm25Index, Bm25Params  # noqa: E402

CACHE = REPO / "var" / "bench-cache"
Vec = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Piece:
    """A chunk as the product stores it, plus what the hit test reads."""

    index: int
    doc_id: str
    filename: str
    order: int
    title: str
    heading_path: tuple[str, ...]
    text: str

    def embed_input(self) -> str:
        parts = [self.title] if self.title else []
        parts += [h for h in self.heading_path if h and h != self.title]
        return f"{' › '.join(parts)}\n{self.text}" if parts else self.text

    def bm25_input(self, *, title_weight: int = 1) -> str:
        # index_rebuild: title + heading path (which starts with the title) + text.
        return " ".join([*([self.title] * title_weight), " ".join(self.heading_path), self.text])


class Embeddings:
    def __init__(self, max_seq_length: int | None = None) -> None:
        self.embedder = SentenceTransformerEmbedder(threads=1, max_seq_length=max_seq_length)
        self.key = self.embedder.model_name + (f"|max{max_seq_length}" if max_seq_length else "")

    def encode(self, texts: Sequence[str]) -> Vec:
        digest = hashlib.sha256("\x00".join([self.key, *texts]).encode("utf-8")).hexdigest()[:24]
        path = CACHE / f"emb-{digest}.npy"
        if path.exists():
            return np.load(path)
        t = time.perf_counter()
        vectors = self.embedder.encode(list(texts))
        print(f"  (embedded {len(texts)} texts in {time.perf_counter() - t:.0f} s)", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors


def make_pieces(docs: Sequence[common.EvalDoc], max_tokens: int, overlap: int) -> list[Piece]:
    count = embedding_token_counter()
    out: list[Piece] = []
    for doc in docs:
        parsed = parse(doc.markdown(), doc.filename)
        for d in ingest_chunk(
            parsed,
            count_tokens=count,
            max_tokens=max_tokens,
            overlap_tokens=min(overlap, max_tokens // 2),
        ):
            out.append(
                Piece(len(out), doc.id, doc.filename, d.order, parsed.title, d.heading_path, d.text)
            )
    return out


# -- scoring --------------------------------------------------------------------------------


@dataclass
class Corpus:
    pieces: list[Piece]
    vectors: Vec
    bm25: Bm25Index
    doc_of: NDArray[np.int64]  # piece -> doc number
    prev: NDArray[np.int64]  # piece -> previous piece of the same doc, or -1
    nxt: NDArray[np.int64]


def build_corpus(
    pieces: list[Piece], emb: Embeddings, *, title_weight: int = 1, k1: float = 1.2, b: float = 0.75
) -> Corpus:
    vectors = emb.encode([p.embed_input() for p in pieces])
    bm25 = Bm25Index.build(
        np.arange(len(pieces)),
        [p.bm25_input(title_weight=title_weight) for p in pieces],
        params=Bm25Params(k1=k1, b=b),
    )
    docs = {d: i for i, d in enumerate(dict.fromkeys(p.doc_id for p in pieces))}
    doc_of = np.array([docs[p.doc_id] for p in pieces])
    prev = np.array(
        [i - 1 if i and pieces[i - 1].doc_id == p.doc_id else -1 for i, p in enumerate(pieces)]
    )
    nxt = np.array(
        [
            i + 1 if i + 1 < len(pieces) and pieces[i + 1].doc_id == p.doc_id else -1
            for i, p in enumerate(pieces)
        ]
    )
    return Corpus(pieces, vectors, bm25, doc_of, prev, nxt)


def convex(
    dense: Vec, bm25: Vec, *, w: float = 0.7, candidates: int = 50
) -> tuple[Vec, NDArray[np.bool_]]:
    """The product's fusion (hybrid.fuse, "convex"): union of both top-`candidates`, BM25
    divided by its best score among them; returns fused scores and the candidate mask."""
    mask = np.zeros(len(dense), dtype=bool)
    mask[np.argsort(-dense, kind="stable")[:candidates]] = True
    pos = np.flatnonzero(bm25 > 0)
    mask[pos[np.argsort(-bm25[pos], kind="stable")[:candidates]]] = True
    top = bm25[mask].max() if mask.any() else 0.0
    scale = 1.0 / top if top > 0 else 0.0
    fused = w * dense + (1.0 - w) * bm25 * scale
    return fused.astype(np.float32), mask


def top_k(scores: Vec, mask: NDArray[np.bool_] | None, k: int = 10) -> list[int]:
    s = scores if mask is None else np.where(mask, scores, -np.inf)
    order = np.argsort(-s, kind="stable")[:k]
    return [int(i) for i in order if np.isfinite(s[i])]


# -- metrics --------------------------------------------------------------------------------


class _P:
    __slots__ = ("filename", "text")

    def __init__(self, filename: str, text: str) -> None:
        self.filename, self.text = filename, text


def first_hit(
    ranking: Sequence[int], q: common.EvalQuestion, pieces: Sequence[Piece], text_of: Any = None
) -> int | None:
    for r, i in enumerate(ranking, 1):
        p = pieces[i]
        if common.span_hit(_P(p.filename, text_of(i) if text_of else p.text), q):
            return r
    return None


def metrics(ranks: Sequence[int | None]) -> dict[str, float]:
    n = max(len(ranks), 1)
    out = {f"r@{k}": sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 5, 10)}
    out["mrr@10"] = sum(1 / r for r in ranks if r is not None and r <= 10) / n
    return out


# -- variants -------------------------------------------------------------------------------

Ranker = Callable[[int], list[int]]


@dataclass
class Context:
    questions: list[common.EvalQuestion]  # answerable only
    qvec: Vec  # question embeddings
    emb: Embeddings
    docs: list[common.EvalDoc]


_STEMMERS: dict[str, Callable[[str], str]] = {}


def with_tokenizer(kind: str) -> None:
    """Swap support.search.lexical's plural-only stemmer for another (for BM25 variants)."""
    if kind == "plural":
        lexical._stem = _ORIGINAL_STEM  # type: ignore[attr-defined]
        return
    if kind == "none":
        lexical._stem = lambda w: w  # type: ignore[attr-defined]
        return
    if kind in ("porter", "english"):
        import snowballstemmer

        st = snowballstemmer.stemmer(kind)
        cache: dict[str, str] = {}

        def stem(w: str) -> str:
            if len(w) <= 3 or not w.isalpha():
                return w
            s = cache.get(w)
            if s is None:
                s = cache[w] = st.stemWord(w)
            return s

        lexical._stem = stem  # type: ignore[attr-defined]
        return
    raise ValueError(kind)


_ORIGINAL_STEM = lexical._stem


FILLER = re.compile(
    r"\b(hi|hello|hey|good (morning|afternoon|evening)|thanks?( you)?|please|i need help( with)?"
    r"|i need|i want to know|i would like to know|i'd like to know|can you tell me|could you tell"
    r" me|tell me|i have a question( about)?|information (about|on)|help( me)?( with)?|what about)\b",
    re.IGNORECASE,
)


def clean_query(text: str) -> str:
    cleaned = " ".join(FILLER.sub(" ", text).split())
    return cleaned if len(cleaned.split()) >= 2 else text


def evaluate(name: str, ranker: Ranker, ctx: Context, corpus: Corpus, text_of: Any = None) -> dict:
    ranks = [first_hit(ranker(i), q, corpus.pieces, text_of) for i, q in enumerate(ctx.questions)]
    dev = [r for r, q in zip(ranks, ctx.questions, strict=True) if q.index % 2 == 0]
    test = [r for r, q in zip(ranks, ctx.questions, strict=True) if q.index % 2 == 1]
    row = {"variant": name, "dev": metrics(dev), "test": metrics(test), "all": metrics(ranks)}
    a, d, t = row["all"], row["dev"], row["test"]
    print(
        f"{name:55s} all r@1 {a['r@1']:.3f} r@5 {a['r@5']:.3f} r@10 {a['r@10']:.3f} "
        f"mrr {a['mrr@10']:.3f} | dev r@5 {d['r@5']:.3f} test r@5 {t['r@5']:.3f}",
        flush=True,
    )
    return row


def hybrid_ranker(corpus: Corpus, ctx: Context, *, w: float = 0.7, query: Any = None) -> Ranker:
    def rank(i: int) -> list[int]:
        text = query(ctx.questions[i].text) if query else ctx.questions[i].text
        dense = corpus.vectors @ ctx.qvec[i]
        fused, mask = convex(dense, corpus.bm25.score_all(text), w=w)
        return top_k(fused, mask)

    return rank


def scores_for(corpus: Corpus, ctx: Context, i: int, w: float = 0.7) -> tuple[Vec, Any]:
    dense = corpus.vectors @ ctx.qvec[i]
    return convex(dense, corpus.bm25.score_all(ctx.questions[i].text), w=w)


def doc_agg_ranker(corpus: Corpus, ctx: Context, *, beta: float, second: float = 0.0) -> Ranker:
    """Chunk score + beta * its document's score (best chunk + `second` * 2nd best)."""
    n_docs = int(corpus.doc_of.max()) + 1

    def rank(i: int) -> list[int]:
        fused, mask = scores_for(corpus, ctx, i)
        s = np.where(mask, fused, 0.0)
        best = np.zeros(n_docs)
        np.maximum.at(best, corpus.doc_of, s)
        score = s.copy()
        if second:
            second_best = np.zeros(n_docs)
            for d in range(n_docs):
                vals = np.sort(s[corpus.doc_of == d])
                second_best[d] = vals[-2] if len(vals) > 1 else 0.0
            best = best + second * second_best
        score = s + beta * best[corpus.doc_of]
        return top_k(score, mask)

    return rank


def position_ranker(corpus: Corpus, ctx: Context, *, delta: float, decay: bool = False) -> Ranker:
    """Fused score plus a prior for a page's opening chunk (`decay`: delta / (1 + order))."""
    order = np.array([p.order for p in corpus.pieces], dtype=np.float32)
    prior = delta / (1.0 + order) if decay else delta * (order == 0)

    def rank(i: int) -> list[int]:
        fused, mask = scores_for(corpus, ctx, i)
        return top_k(fused + prior, mask)

    return rank


def doc_first_ranker(corpus: Corpus, ctx: Context, *, per_doc: int, delta: float = 0.0) -> Ranker:
    """Rank pages by their best chunk, then return up to `per_doc` chunks of each page (its
    best, plus its opening chunk when `delta` lifts it), page after page."""
    order = np.array([p.order for p in corpus.pieces])

    def rank(i: int) -> list[int]:
        fused, mask = scores_for(corpus, ctx, i)
        s = np.where(mask, fused, -np.inf)
        by_doc: dict[int, list[int]] = {}
        for c in np.argsort(-s, kind="stable"):
            if not np.isfinite(s[c]):
                break
            by_doc.setdefault(int(corpus.doc_of[c]), []).append(int(c))
        out: list[int] = []
        for _doc, members in by_doc.items():
            if delta:
                first = np.flatnonzero((corpus.doc_of == _doc) & (order == 0))
                if len(first) and int(first[0]) not in members[:per_doc]:
                    lifted = s[first[0]] if np.isfinite(s[first[0]]) else fused[first[0]]
                    if lifted + delta >= s[members[min(per_doc, len(members)) - 1]]:
                        members = [*members[: per_doc - 1], int(first[0])]
            out.extend(members[:per_doc])
            if len(out) >= 10:
                break
        return out[:10]

    return rank


def prf_dense_ranker(corpus: Corpus, ctx: Context, *, k: int, gamma: float) -> Ranker:
    def rank(i: int) -> list[int]:
        fused, mask = scores_for(corpus, ctx, i)
        top = top_k(fused, mask, k)
        q = ctx.qvec[i] + gamma * corpus.vectors[top].mean(axis=0)
        q /= np.linalg.norm(q)
        dense = corpus.vectors @ q
        f2, m2 = convex(dense, corpus.bm25.score_all(ctx.questions[i].text))
        return top_k(f2, m2)

    return rank


def neighbour_ranker(corpus: Corpus, ctx: Context, *, lam: float) -> Ranker:
    """Smooth each chunk's score with its neighbours' (a fact split over a boundary)."""

    def rank(i: int) -> list[int]:
        fused, mask = scores_for(corpus, ctx, i)
        s = np.where(mask, fused, 0.0)
        pad = np.append(s, 0.0)
        neigh = np.maximum(pad[corpus.prev], pad[corpus.nxt])
        return top_k(s + lam * neigh, mask | (neigh > 0))

    return rank


class SentenceScores:
    """Max cosine between the query and each sentence of a chunk (sentences embedded once)."""

    def __init__(self, corpus: Corpus, emb: Embeddings, *, window: int = 1) -> None:
        units: list[str] = []
        owner: list[int] = []
        for p in corpus.pieces:
            sents = [s for s in sentences(p.text) if s.strip()] or [p.text]
            for j in range(0, max(1, len(sents) - window + 1)):
                units.append(f"{p.title}\n" + " ".join(sents[j : j + window]))
                owner.append(p.index)
        self.owner = np.array(owner)
        self.vectors = emb.encode(units)
        self.n = len(corpus.pieces)

    def max_sim(self, q: Vec) -> Vec:
        sims = self.vectors @ q
        out = np.full(self.n, -1.0, dtype=np.float32)
        np.maximum.at(out, self.owner, sims)
        return out


def sentence_ranker(
    corpus: Corpus, ctx: Context, sent: SentenceScores, *, a: float, pool: int = 20
) -> Ranker:
    """Rerank the hybrid top-`pool` by fused + a * best-sentence cosine."""

    def rank(i: int) -> list[int]:
        fused, mask = scores_for(corpus, ctx, i)
        cand = top_k(fused, mask, pool)
        ms = sent.max_sim(ctx.qvec[i])
        score = {c: fused[c] + a * ms[c] for c in cand}
        return sorted(cand, key=lambda c: -score[c])[:10]

    return rank


def sentence_fusion_ranker(
    corpus: Corpus, ctx: Context, sent: SentenceScores, *, w_chunk: float, w: float = 0.7
) -> Ranker:
    """Dense side = mix of chunk cosine and best-sentence cosine, over all chunks."""

    def rank(i: int) -> list[int]:
        dense = w_chunk * (corpus.vectors @ ctx.qvec[i]) + (1 - w_chunk) * sent.max_sim(ctx.qvec[i])
        fused, mask = convex(dense, corpus.bm25.score_all(ctx.questions[i].text), w=w)
        return top_k(fused, mask)

    return rank


def rm3_ranker(
    corpus: Corpus, ctx: Context, *, fb_docs: int, fb_terms: int, alpha: float
) -> Ranker:
    """BM25 pseudo-relevance feedback: add the top feedback terms (by tf*idf in the fused
    top-`fb_docs`) to the lexical query with weight `alpha`."""
    bm = corpus.bm25
    texts = [p.bm25_input() for p in corpus.pieces]
    idf = bm._idf
    vocab = bm.vocab

    def rank(i: int) -> list[int]:
        fused, mask = scores_for(corpus, ctx, i)
        top = top_k(fused, mask, fb_docs)
        tf: Counter[str] = Counter()
        for c in top:
            tf.update(lexical.tokenize(texts[c]))
        weighted = sorted(
            ((tf[t] * float(idf[vocab[t]]), t) for t in tf if t in vocab), reverse=True
        )[:fb_terms]
        base = bm.score_all(ctx.questions[i].text)
        extra = np.zeros_like(base)
        for _, t in weighted:
            extra += bm.score_all(t)
        lex = base + alpha * extra / max(len(weighted), 1)
        dense = corpus.vectors @ ctx.qvec[i]
        f2, m2 = convex(dense, lex)
        return top_k(f2, m2)

    return rank


class Combined:
    """Everything that helped alone, each part optional: dense = mix of chunk cosine and best
    sentence cosine; convex fusion with BM25; plus an opening-chunk prior."""

    def __init__(
        self,
        corpus: Corpus,
        ctx: Context,
        *,
        sent: SentenceScores | None = None,
        w_chunk: float = 1.0,
        w: float = 0.7,
        delta: float = 0.0,
        decay: bool = False,
    ) -> None:
        self.corpus, self.ctx, self.sent = corpus, ctx, sent
        self.w_chunk, self.w = w_chunk, w
        order = np.array([p.order for p in corpus.pieces], dtype=np.float32)
        self.prior = delta / (1.0 + order) if decay else delta * (order == 0)

    def dense(self, q: Vec) -> Vec:
        dense = self.corpus.vectors @ q
        if self.sent is not None and self.w_chunk < 1.0:
            dense = self.w_chunk * dense + (1 - self.w_chunk) * self.sent.max_sim(q)
        return dense

    def __call__(self, i: int) -> list[int]:
        fused, mask = convex(
            self.dense(self.ctx.qvec[i]),
            self.corpus.bm25.score_all(self.ctx.questions[i].text),
            w=self.w,
        )
        return top_k(fused + self.prior, mask)


class QueryMaxCombined(Combined):
    """Combined, with the dense score the max of the chunk's cosine and its generated
    questions' cosine minus `alpha` (doc2query as extra vectors)."""

    def __init__(self, corpus: Corpus, ctx: Context, qvecs: Vec, *, alpha: float, **kw: Any):
        super().__init__(corpus, ctx, **kw)
        self.qvecs, self.alpha = qvecs, alpha

    def dense(self, q: Vec) -> Vec:
        return np.maximum(super().dense(q), self.qvecs @ q - self.alpha)


DOC2QUERY_PROMPT = (
    "Help page: {title}\n\n{text}\n\nWrite 3 short questions a customer could ask that this "
    "text answers, one per line."
)


def doc2query_questions(pieces: Sequence[Piece]) -> list[str] | None:
    """Three generated questions per piece (cached by content); None without llama-cpp-python."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    from support.llm.model_files import default_model_path

    model_path = default_model_path()
    key = hashlib.sha256(
        "\x00".join([model_path.name, DOC2QUERY_PROMPT, *(p.text for p in pieces)]).encode()
    ).hexdigest()[:24]
    path = CACHE / f"doc2query-{key}.json"
    if path.exists():
        cached: list[str] = json.loads(path.read_text(encoding="utf-8"))
        return cached
    llm = Llama(model_path=str(model_path), n_ctx=1024, n_threads=2, verbose=False)
    out: list[str] = []
    started = time.perf_counter()
    for n, p in enumerate(pieces, 1):
        messages: list[Any] = [
            {"role": "system", "content": "You write questions that customers ask a support desk."},
            {"role": "user", "content": DOC2QUERY_PROMPT.format(title=p.title, text=p.text)},
        ]
        reply: Any = llm.create_chat_completion(messages=messages, max_tokens=50, temperature=0.0)
        lines = str(reply["choices"][0]["message"]["content"]).split("\n")
        out.append(
            " ".join(
                x for x in (re.sub(r"^\s*(\d+[.)]|[-*])\s*", "", ln).strip() for ln in lines) if x
            )
        )
        if n % 100 == 0:
            print(
                f"  doc2query: {n}/{len(pieces)} in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    print(
        f"  (generated questions for {len(pieces)} chunks in {time.perf_counter() - started:.0f} s)"
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out), encoding="utf-8")
    return out


# -- oracle ---------------------------------------------------------------------------------


def oracle(corpus: Corpus, ctx: Context, *, w: float = 0.7, delta: float = 0.0) -> dict[str, Any]:
    """For each question: rank of the best span chunk under dense, BM25 and hybrid (full
    ranking), to see how many are out of reach of any re-ranking of a top-N pool."""
    n = len(corpus.pieces)
    prior = delta * (np.array([p.order for p in corpus.pieces]) == 0)
    rows = []
    for i, q in enumerate(ctx.questions):
        dense = corpus.vectors @ ctx.qvec[i]
        bm = corpus.bm25.score_all(q.text)
        fused, _ = convex(dense, bm, w=w, candidates=n)
        fused = fused + prior
        hits = [p.index for p in corpus.pieces if common.span_hit(_P(p.filename, p.text), q)]
        if not hits:
            rows.append({"q": q.index, "hit_chunks": 0})
            continue

        def best_rank(s: Vec, hits: list[int] = hits) -> int:
            order = np.argsort(-s, kind="stable")
            pos = np.empty(n, dtype=np.int64)
            pos[order] = np.arange(1, n + 1)
            return int(pos[hits].min())

        rows.append(
            {
                "q": q.index,
                "hit_chunks": len(hits),
                "dense": best_rank(dense),
                "bm25": best_rank(bm),
                "hybrid": best_rank(fused),
            }
        )
    m = len(rows)
    reach = [r for r in rows if r["hit_chunks"]]
    summary = {
        "questions": m,
        "no_chunk_holds_span": m - len(reach),
        **{
            f"best_of_all_methods_rank_gt_{k}": sum(
                1 for r in reach if min(r["dense"], r["bm25"], r["hybrid"]) > k
            )
            for k in (5, 10, 20, 50)
        },
        **{
            f"hybrid_rank_le_{k}": sum(1 for r in reach if r["hybrid"] <= k) / m
            for k in (5, 10, 20, 30, 50)
        },
    }
    return {"summary": summary, "rows": rows}


def confidence_fit(tokens: int, overlap: int, emb: Embeddings) -> dict[str, Any]:
    """Re-fit hybrid.ConfidenceModel (top cosine, BM25 coverage) on chunks of this size:
    191 answerable vs 29 unanswerable questions; in-sample and 10-fold cross-validated AUC."""
    from bench.retrieval_tune import auc, best_threshold, fit_logistic
    from support.search.hybrid import DEFAULT_CONFIDENCE, ConfidenceModel, lexical_coverage

    docs = common.load_documents()
    questions = common.load_questions()
    corpus = build_corpus(make_pieces(docs, tokens, overlap), emb)
    qv = emb.encode([q.text for q in questions])
    feats = []
    for i, q in enumerate(questions):
        bm = corpus.bm25.score_all(q.text)
        feats.append(
            [
                float((corpus.vectors @ qv[i]).max()),
                lexical_coverage(corpus.bm25, q.text, float(bm.max())) if bm.max() > 0 else 0.0,
            ]
        )
    x = np.asarray(feats)
    y = np.asarray([1.0 if q.answerable else 0.0 for q in questions])
    beta = fit_logistic(x, y)
    fitted = ConfidenceModel(float(beta[0]), float(beta[1]), float(beta[2]))
    rng = np.random.default_rng(0)
    folds = rng.permutation(len(y)) % 10
    cv = np.zeros(len(y))
    for f in range(10):
        b = fit_logistic(x[folds != f], y[folds != f])
        m = ConfidenceModel(float(b[0]), float(b[1]), float(b[2]))
        cv[folds == f] = [m(a, c) for a, c in x[folds == f]]
    pos, neg = y > 0, y == 0

    def scored(model: Any) -> NDArray[np.float64]:
        return np.array([model(a, c) for a, c in x])

    fit_p, old_p = scored(fitted), scored(DEFAULT_CONFIDENCE)
    out = {
        "chunking": f"{tokens}/{overlap}",
        "fitted": {
            "intercept": fitted.intercept,
            "w_dense": fitted.w_dense,
            "w_lexical": fitted.w_lexical,
        },
        "auc_top_cosine": auc(x[pos, 0].tolist(), x[neg, 0].tolist()),
        "auc_lexical_coverage": auc(x[pos, 1].tolist(), x[neg, 1].tolist()),
        "auc_fitted_in_sample": auc(fit_p[pos].tolist(), fit_p[neg].tolist()),
        "auc_fitted_cv10": auc(cv[pos].tolist(), cv[neg].tolist()),
        "auc_shipped_model": auc(old_p[pos].tolist(), old_p[neg].tolist()),
        "best_threshold_fitted": best_threshold(fit_p[pos].tolist(), fit_p[neg].tolist()),
        **{
            f"fitted_at_{t}": {
                "answerable_passed": float((fit_p[pos] >= t).mean()),
                "unanswerable_passed": float((fit_p[neg] >= t).mean()),
            }
            for t in (0.3, 0.5)
        },
    }
    print(json.dumps(out, indent=1))
    return out


# -- main -----------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="comma-separated variant name prefixes")
    parser.add_argument("--oracle", action="store_true")
    parser.add_argument("--confidence", default="", help="re-fit confidence at TOKENS/OVERLAP")
    parser.add_argument("--out", type=Path, default=REPO / "var/bench/retrieval_variants-run.json")
    args = parser.parse_args(argv)
    only = [s for s in args.only.split(",") if s]

    def want(name: str) -> bool:
        return not only or any(name.startswith(o) for o in only)

    import torch

    torch.set_num_threads(1)
    docs = common.load_documents()
    questions = [q for q in common.load_questions() if q.answerable]
    emb = Embeddings()
    ctx = Context(questions, emb.encode([q.text for q in questions]), emb, docs)
    rows: list[dict[str, Any]] = []
    if args.confidence:
        tokens, overlap = map(int, args.confidence.split("/"))
        report = confidence_fit(tokens, overlap, emb)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        return 0
    corpora: dict[tuple[int, int], list[Piece]] = {}

    def pieces(tokens: int, overlap: int) -> list[Piece]:
        if (tokens, overlap) not in corpora:
            corpora[(tokens, overlap)] = make_pieces(docs, tokens, overlap)
        return corpora[(tokens, overlap)]

    base = build_corpus(pieces(256, 32), emb)
    print(f"baseline corpus: {len(base.pieces)} chunks")
    if want("baseline"):
        rows.append(
            evaluate("baseline (256/32, convex w=0.7)", hybrid_ranker(base, ctx), ctx, base)
        )
        dense_only = lambda i: top_k(base.vectors @ ctx.qvec[i], None)  # noqa: E731
        rows.append(evaluate("baseline dense only", dense_only, ctx, base))
        lex_only = lambda i: top_k(base.bm25.score_all(ctx.questions[i].text), None)  # noqa: E731
        rows.append(evaluate("baseline BM25 only", lex_only, ctx, base))
    if args.oracle:
        report = oracle(base, ctx)
        print(json.dumps(report["summary"], indent=1))
        rows.append({"variant": "oracle (256/32, w=0.7)", **report})
        chosen = build_corpus(pieces(448, 32), emb)
        report = oracle(chosen, ctx, w=0.6, delta=0.05)
        print(json.dumps(report["summary"], indent=1))
        rows.append({"variant": "oracle (448/32, w=0.6, opening prior 0.05)", **report})

    if want("fusion"):
        for w in (0.5, 0.6, 0.8):
            rows.append(evaluate(f"fusion convex w={w}", hybrid_ranker(base, ctx, w=w), ctx, base))

    if want("chunk"):
        for tokens, overlap in ((128, 32), (192, 32), (256, 0), (256, 64), (320, 32), (384, 32)):
            c = build_corpus(pieces(tokens, overlap), emb)
            rows.append(
                evaluate(
                    f"chunk {tokens}/{overlap} ({len(c.pieces)} chunks)",
                    hybrid_ranker(c, ctx),
                    ctx,
                    c,
                )
            )

    if want("bm25"):
        for tw in (2, 3):
            c = build_corpus(base.pieces, emb, title_weight=tw)
            rows.append(evaluate(f"bm25 title weight x{tw}", hybrid_ranker(c, ctx), ctx, c))
        for k1, b in ((0.9, 0.4), (1.5, 0.75), (1.2, 0.5)):
            c = build_corpus(base.pieces, emb, k1=k1, b=b)
            rows.append(evaluate(f"bm25 k1={k1} b={b}", hybrid_ranker(c, ctx), ctx, c))
        for kind in ("none", "porter", "english"):
            try:
                with_tokenizer(kind)
            except ImportError:
                print(f"  (skip stemmer {kind}: snowballstemmer not installed)")
                continue
            c = build_corpus(base.pieces, emb)
            rows.append(evaluate(f"bm25 stemmer={kind}", hybrid_ranker(c, ctx), ctx, c))
        with_tokenizer("plural")

    if want("query"):
        cleaned = [clean_query(q.text) for q in questions]
        cv = emb.encode(cleaned)
        ctx2 = Context(questions, cv, emb, docs)
        rows.append(
            evaluate("query: filler removed (dense+BM25)", hybrid_ranker(base, ctx2), ctx, base)
        )
        both = ctx.qvec + cv
        both /= np.linalg.norm(both, axis=1, keepdims=True)
        ctx3 = Context(questions, both, emb, docs)
        rows.append(
            evaluate("query: mean(original, cleaned) vector", hybrid_ranker(base, ctx3), ctx, base)
        )

    if want("docagg"):
        for beta in (0.1, 0.2, 0.3, 0.5):
            rows.append(
                evaluate(f"docagg beta={beta}", doc_agg_ranker(base, ctx, beta=beta), ctx, base)
            )
        rows.append(
            evaluate(
                "docagg beta=0.3 second=0.5",
                doc_agg_ranker(base, ctx, beta=0.3, second=0.5),
                ctx,
                base,
            )
        )

    if want("position"):
        for delta in (0.03, 0.05, 0.1, 0.15):
            rows.append(
                evaluate(
                    f"position prior opening chunk +{delta}",
                    position_ranker(base, ctx, delta=delta),
                    ctx,
                    base,
                )
            )
        for delta in (0.05, 0.1):
            rows.append(
                evaluate(
                    f"position prior {delta}/(1+order)",
                    position_ranker(base, ctx, delta=delta, decay=True),
                    ctx,
                    base,
                )
            )
    if want("docfirst"):
        for per_doc in (1, 2, 3):
            rows.append(
                evaluate(
                    f"doc-first, {per_doc} chunks per page",
                    doc_first_ranker(base, ctx, per_doc=per_doc),
                    ctx,
                    base,
                )
            )

    if want("neighbour"):
        for lam in (0.1, 0.2, 0.3):
            rows.append(
                evaluate(f"neighbour lam={lam}", neighbour_ranker(base, ctx, lam=lam), ctx, base)
            )

    if want("prf"):
        for k, g in ((3, 0.3), (3, 0.5), (5, 0.5)):
            rows.append(
                evaluate(
                    f"prf dense k={k} gamma={g}",
                    prf_dense_ranker(base, ctx, k=k, gamma=g),
                    ctx,
                    base,
                )
            )
        for fd, ft, al in ((3, 10, 0.3), (5, 10, 0.5), (3, 20, 0.5)):
            rows.append(
                evaluate(
                    f"prf rm3 docs={fd} terms={ft} alpha={al}",
                    rm3_ranker(base, ctx, fb_docs=fd, fb_terms=ft, alpha=al),
                    ctx,
                    base,
                )
            )

    if want("sentence"):
        for window in (1, 2):
            sent = SentenceScores(base, emb, window=window)
            for a in (0.3, 0.5, 1.0):
                rows.append(
                    evaluate(
                        f"sentence rerank top20 window={window} a={a}",
                        sentence_ranker(base, ctx, sent, a=a),
                        ctx,
                        base,
                    )
                )
            for wc in (0.3, 0.5, 0.7):
                rows.append(
                    evaluate(
                        f"sentence fusion window={window} chunk weight={wc}",
                        sentence_fusion_ranker(base, ctx, sent, w_chunk=wc),
                        ctx,
                        base,
                    )
                )

    if want("combo"):
        for tokens in (384, 512):
            for max_seq in (None, 512):
                if tokens == 512 and max_seq is None:
                    continue
                e = Embeddings(max_seq) if max_seq else emb
                c = build_corpus(pieces(tokens, 32), e)
                label = f"chunk {tokens}/32" + (f" max_seq {max_seq}" if max_seq else "")
                rows.append(evaluate(label, Combined(c, ctx), ctx, c))
        for tokens in (256, 384):
            c = build_corpus(pieces(tokens, 32), emb)
            sent = SentenceScores(c, emb)
            for w_chunk in (1.0, 0.5, 0.3):
                for delta, decay in ((0.0, False), (0.05, False), (0.1, True)):
                    for w in (0.6, 0.7):
                        rows.append(
                            evaluate(
                                f"combo {tokens}/32 w={w} chunk weight={w_chunk} "
                                f"prior={delta}{'/(1+order)' if decay else ' opening'}",
                                Combined(
                                    c,
                                    ctx,
                                    sent=sent,
                                    w_chunk=w_chunk,
                                    w=w,
                                    delta=delta,
                                    decay=decay,
                                ),
                                ctx,
                                c,
                            )
                        )

    if want("size"):
        # Chunk size x fusion weight x opening-chunk prior, without sentence vectors.
        for tokens, overlap in ((256, 32), (320, 32), (384, 32), (384, 64), (448, 32), (512, 32)):
            c = build_corpus(pieces(tokens, overlap), emb)
            for w in (0.6, 0.7):
                for delta in (0.0, 0.05):
                    rows.append(
                        evaluate(
                            f"size {tokens}/{overlap} ({len(c.pieces)} chunks) w={w} "
                            f"opening prior {delta}",
                            Combined(c, ctx, w=w, delta=delta),
                            ctx,
                            c,
                        )
                    )

    if want("doc2query"):
        generated = doc2query_questions(base.pieces)
        if generated is None:
            print("  (skip doc2query: llama-cpp-python is not installed: pip install .[llamacpp])")
        else:
            for rep in (1, 2):
                bm25 = Bm25Index.build(
                    np.arange(len(base.pieces)),
                    [
                        f"{p.bm25_input()} {(g + ' ') * rep}"
                        for p, g in zip(base.pieces, generated, strict=True)
                    ],
                    params=Bm25Params(),
                )
                c = Corpus(base.pieces, base.vectors, bm25, base.doc_of, base.prev, base.nxt)
                rows.append(
                    evaluate(
                        f"doc2query questions in BM25 x{rep}, w=0.7 opening prior 0.05",
                        Combined(c, ctx, w=0.7, delta=0.05),
                        ctx,
                        c,
                    )
                )
            qvecs = emb.encode([g or p.text for p, g in zip(base.pieces, generated, strict=True)])
            for alpha in (0.0, 0.05, 0.1):
                rows.append(
                    evaluate(
                        f"doc2query question vectors max(chunk, questions-{alpha}), w=0.7 "
                        "opening prior 0.05",
                        QueryMaxCombined(base, ctx, qvecs, alpha=alpha, w=0.7, delta=0.05),
                        ctx,
                        base,
                    )
                )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"machine": common.machine_info(), "rows": rows}, indent=1) + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
