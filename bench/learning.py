"""What the bot learns from past conversations (issue 14, item 10): the question memory.

Usage (from the repository root, with the project venv)::

    python bench/learning.py                 # every dev dialogue, 2 folds (~3 min on 2 cores)
    python bench/learning.py --quick         # 40 dialogues a half, a short weight grid
    python bench/learning.py --out result.json

The doc2dial dialogues of ../shared/eval/doc2dial (the doc2dial validation split) are split by
dialogue into two halves (a stable hash of the dialogue id). For each fold, one half's agent
replies are the past exchanges of a help desk: one `examples_import` line per agent turn, with
the customer's question, the turns before it and the agent's reply, and nothing else (no spans,
no document: `examples.examples_import`, so grounding is inferred from the reply text as an import
does it, the personal-data redaction and the held-back split apply). The unanswerable first turns
have their agent's reply too (about a page the knowledge base lacks): they are imported like any
other. The fold's examples are approved (`examples.examples_review`), the others not, and
`knowledge.index_rebuild()` publishes the index version with the question memory: its time is
the training time. The other half's questions are then searched one by one, every turn as a
standalone query (no history), with the hybrid search `passages_search` runs on the published
index version (each question embedded once for every variant; a sample is checked against
`passages_search` itself), without the memory (before) and with it (after); then the halves
swap. Both halves are imported once, pending, at the start: grounding
never reads the memory, so importing a half on its own stores the same examples.

Reported per fold and pooled: span recall@5 and MRR@10 over the answerable questions (a hit is a
chunk holding the annotated span, `common.span_hit`), and the retrieval decision to decline
(confidence below SUPPORT_RETRIEVAL_MIN_CONFIDENCE) for the unanswerable and the answerable
questions; how many examples were grounded, knowledge gaps and held back; the memory build time
and peak RSS.

The memory weight (`FusionConfig.memory_weight`) of each fold is chosen by 2-fold
cross-validation inside that fold's training half (its dialogues split again by hash; keys from
one inner half, recall@5 then MRR@10 on the other, averaged), never on the evaluated half. The
"shipped" row uses the product's default instead.

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

WEIGHTS = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1)
QUICK_WEIGHTS = (0.8, 0.9, 1.0)
# The least key score that counts (FusionConfig.memory_min_score), cross-validated with the
# weight: 0 lets every key count, higher values only near-duplicate questions.
MIN_SCORES = (0.0, 0.75, 0.85)
QUICK_MIN_SCORES = (0.0, 0.85)
QUICK_DIALOGUES = 40  # per half
# Answer memory's similarity thresholds (dense cosine of the question to an approved one),
# cross-validated inside each training half; OFF (above any cosine) lets the CV turn it off.
OFF = 1.01
THRESHOLDS = (0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.92, 0.94, 0.96, 0.98, OFF)
QUICK_THRESHOLDS = (0.85, 0.9, 0.95, OFF)
# Answers from memory compared with what the model writes without it, per fold (the model's
# generation is the expensive part of this benchmark).
GENERATED = 8
QUICK_GENERATED = 3
TARGET_RECALL5 = 0.90


# -- data ------------------------------------------------------------------------------------------
def dialogue_of(question_id: str) -> str:
    return question_id.rsplit("_", 1)[0]


def _bucket(key: str, salt: str) -> int:
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:8], 16)


def halves(dialogues: list[str], salt: str = "fold") -> tuple[list[str], list[str]]:
    """Two halves of equal size (±1), by a stable hash of the dialogue id."""
    ordered = sorted(dialogues, key=lambda d: (_bucket(d, salt), d))
    return sorted(ordered[::2]), sorted(ordered[1::2])


@dataclasses.dataclass(frozen=True, slots=True)
class Turn:
    question: common.EvalQuestion
    reply: str | None  # the agent's reply (the import's answer)

    @property
    def dialogue(self) -> str:
        return dialogue_of(self.question.id)


def load_turns() -> list[Turn]:
    """Every customer turn of every dialogue with the agent's reply to it."""
    first = common.load_questions()
    raw = [
        json.loads(line)
        for line in (common.EVAL_DIR / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    turns = []
    for q, r in zip(first, raw, strict=True):
        reply = q.answer if q.answerable else r.get("withheld_answer")
        turns.append(Turn(q, reply or None))
    for q in common.load_questions(name="questions_multiturn.jsonl"):
        turns.append(Turn(q, q.answer or None))
    return turns


def import_line(turn: Turn) -> str:
    history = [{"role": t["role"], "text": t["text"]} for t in turn.question.history if t["text"]]
    return json.dumps(
        {
            "id": turn.question.id,
            "question": turn.question.text,
            "history": history,
            "answer": turn.reply,
        }
    )


# -- the knowledge base (a private copy: this benchmark writes examples and index versions) ----
def private_kb(log: Any) -> Path:
    """A copy of the shared, cached eval KB (built in a subprocess when cold) in a temporary
    directory, with Django set up on it. Its tasks run in this process and reach no outside
    worker (no Redis, not eager: the benchmark rebuilds the index itself, timed)."""
    os.environ.pop("REDIS_URL", None)
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    key = common._kb_key(common.EVAL_DIR)
    cached = common.KB_CACHE_ROOT / f"kb-{key}"
    if not (cached / "bench-kb.json").exists():
        log("eval KB: not cached yet, building it (once)")
        code = "import sys; sys.path.insert(0, 'bench'); import _common; _common.eval_kb()"
        subprocess.run([sys.executable, "-c", code], cwd=common.REPO, check=True)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-learning-"))
    import atexit

    atexit.register(shutil.rmtree, data_dir, True)
    with common._file_lock(common.KB_CACHE_ROOT / f"{cached.name}.lock"):
        shutil.copytree(cached, data_dir, dirs_exist_ok=True)
    # One build at a time in a directory: a lock file copied along could be stale.
    with contextlib.suppress(FileNotFoundError):
        (data_dir / "index" / ".build.lock").unlink()
    common.django_setup(data_dir)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return data_dir


# -- measuring -------------------------------------------------------------------------------------
def _rank(passages: Any, q: common.EvalQuestion) -> int | None:
    return next((i for i, p in enumerate(passages, 1) if common.span_hit(p, q)), None)


def metrics(rows: list[dict[str, Any]], which: str) -> dict[str, Any]:
    """Recall@5 and MRR@10 over answerable rows; declines (retrieval decision) of both kinds."""
    ans = [r for r in rows if r["answerable"]]
    una = [r for r in rows if not r["answerable"]]
    ranks = [r[which]["rank"] for r in ans]
    n = len(ans) or 1
    return {
        "answerable": len(ans),
        "unanswerable": len(una),
        "recall@1": sum(1 for x in ranks if x is not None and x <= 1) / n,
        "recall@5": sum(1 for x in ranks if x is not None and x <= 5) / n,
        "recall@10": sum(1 for x in ranks if x is not None and x <= 10) / n,
        "mrr@10": sum(1 / x for x in ranks if x is not None and x <= 10) / n,
        "unanswerable_declined": (
            sum(r[which]["declined"] for r in una) / len(una) if una else None
        ),
        "answerable_declined": sum(r[which]["declined"] for r in ans) / n,
    }


def search_row(
    snapshot: Any,
    q: common.EvalQuestion,
    *,
    vector: Any,
    chunks: dict[int, Any],
    fusion: Any,
    memory: bool,
    threshold: float,
) -> dict[str, Any]:
    """One question on a published snapshot: `passages_search`'s hybrid search (the query
    embedded once for every variant; no document is disabled here, so its database join
    changes nothing: `product_path_agrees` checks it on a sample)."""
    from support.search.hybrid import hybrid_search

    found = hybrid_search(
        snapshot, vector, q.text, k=10, fusion=fusion, memory=None if memory else False
    )
    passages = [_ChunkPassage(chunks[h.chunk_id]) for h in found.hits if h.chunk_id in chunks]
    return {
        "rank": _rank(passages, q) if q.answerable else None,
        "confidence": round(found.confidence, 4),
        "declined": found.confidence < threshold,
        "top": [h.chunk_id for h in found.hits[:5]],
    }


def product_path_agrees(questions: list[common.EvalQuestion], rows: dict[str, Any]) -> bool:
    """`passages_search` (the product's path, its own query embedding) returns the same top 5
    as the benchmark's search for these questions."""
    from support.retrieval import passages_search

    return all(
        [p.chunk_id for p in passages_search(query=q.text, k=5).passages] == rows[q.id]["top"]
        for q in questions
    )


class _ChunkPassage:
    """What common.span_hit reads, from a chunk row."""

    def __init__(self, chunk: Any) -> None:
        self.filename = chunk.document.original_filename
        self.text = chunk.text


def training_keys(example_ids: set[int]) -> dict[int, tuple[str, tuple[int, ...]]]:
    """Example id -> (question, chunk ids) of the examples that would be keys if approved."""
    from support.models import Example, ExampleGrounding

    rows = (
        ExampleGrounding.objects.filter(
            example_id__in=example_ids,
            example__held_back=False,
            example__knowledge_gap=False,
            chunk__isnull=False,
        )
        .exclude(example__state=Example.State.REJECTED)
        .order_by("example_id", "rank", "pk")
        .values_list("example_id", "example__question", "chunk_id")
    )
    out: dict[int, tuple[str, list[int]]] = {}
    for eid, question, chunk in rows:
        out.setdefault(eid, (question, []))[1].append(chunk)
    return {k: (q, tuple(c)) for k, (q, c) in out.items()}


def choose_weight(
    train_turns: list[Turn],
    example_of: dict[str, int],
    weights: tuple[float, ...],
    vectors: dict[str, Any],
    chunks: dict[int, Any],
    min_scores: tuple[float, ...] = (0.0,),
) -> dict[str, Any]:
    """The memory weight and least key score with the best mean recall@5 (then MRR@10) over a
    2-fold split of the training half's dialogues: keys from one inner half, queries from the
    other."""
    import numpy as np

    from support import backends
    from support.search.hybrid import DEFAULT_FUSION, hybrid_search
    from support.search.memory import MemoryKeys, QuestionMemory

    snapshot = backends.get_index_reader().snapshot()
    inner_a, inner_b = halves(sorted({t.dialogue for t in train_turns}), salt="inner")
    grid = [(w, m) for w in weights for m in min_scores]
    per_weight: dict[tuple[float, float], list[tuple[float, float]]] = {g: [] for g in grid}
    for keys_side, query_side in ((set(inner_a), set(inner_b)), (set(inner_b), set(inner_a))):
        ids = {example_of[t.question.id] for t in train_turns if t.dialogue in keys_side}
        keys = training_keys(ids)
        ordered = sorted(keys)
        by_id = {example_of[t.question.id]: t.question.id for t in train_turns}
        memory = None
        if ordered:
            memory = QuestionMemory.build(
                MemoryKeys(
                    example_ids=np.asarray(ordered, dtype=np.int64),
                    texts=tuple(keys[e][0] for e in ordered),
                    vectors=np.stack([vectors[by_id[e]] for e in ordered]),
                    chunk_ids=tuple(keys[e][1] for e in ordered),
                )
            )
        queries = [
            t.question for t in train_turns if t.dialogue in query_side and t.question.answerable
        ]
        for w, floor in grid:
            fusion = dataclasses.replace(DEFAULT_FUSION, memory_weight=w, memory_min_score=floor)
            ranks = []
            for q in queries:
                hits = hybrid_search(
                    snapshot,
                    vectors[q.id],
                    q.text,
                    k=10,
                    fusion=fusion,
                    memory=memory if memory is not None else False,
                ).hits
                passages = [_ChunkPassage(chunks[h.chunk_id]) for h in hits if h.chunk_id in chunks]
                ranks.append(_rank(passages, q))
            n = len(ranks) or 1
            r5 = sum(1 for x in ranks if x is not None and x <= 5) / n
            mrr = sum(1 / x for x in ranks if x is not None and x <= 10) / n
            per_weight[(w, floor)].append((r5, mrr))
    summary = {
        g: {
            "recall@5": sum(s[0] for s in v) / len(v),
            "mrr@10": sum(s[1] for s in v) / len(v),
        }
        for g, v in per_weight.items()
    }
    best = max(
        grid,
        key=lambda g: (summary[g]["recall@5"], summary[g]["mrr@10"], -abs(g[0] - 0.9), -g[1]),
    )
    return {
        "chosen": best[0],
        "chosen_min_score": best[1],
        "per_weight": {f"{w}/{m}": s for (w, m), s in summary.items()},
    }


def memory_reach(
    test_turns: list[Turn], vectors: dict[str, Any], chunks: dict[int, Any]
) -> dict[str, Any]:
    """What the published memory could do for the evaluated questions: the share of answerable
    ones that some key points at a chunk holding the span for (the memory's ceiling), and the
    share whose best-scoring key does."""
    from support import backends

    memory = backends.get_index_reader().snapshot().memory
    answerable = [t.question for t in test_turns if t.question.answerable]
    if memory is None or not answerable:
        return {"any_key_right": 0.0, "top_key_right": 0.0}
    right_chunk: dict[int, set[str]] = {}
    any_right = top_right = 0
    for q in answerable:
        scores = memory.key_scores(vectors[q.id], q.text)
        hits = []
        for key in range(len(memory)):
            good = False
            for cid in memory.key_chunks(key).tolist():
                seen = right_chunk.setdefault(cid, set())
                if q.id in seen or (
                    cid in chunks and common.span_hit(_ChunkPassage(chunks[cid]), q)
                ):
                    seen.add(q.id)
                    good = True
            hits.append(good)
        any_right += any(hits)
        top_right += bool(hits[int(scores.argmax())])
    n = len(answerable)
    return {"any_key_right": any_right / n, "top_key_right": top_right / n}


# -- answer memory ---------------------------------------------------------------------------------
def search_result(found: Any, query: str, chunks: dict[int, Any], k: int = 5) -> Any:
    """`passages_search`'s SearchResult from a hybrid result (its conversion of hits into
    passages, without its database reads: `answer_path_agrees` checks the pipeline on a sample)."""
    from support.retrieval import SearchResult, passages_from_hits

    passages = passages_from_hits(found.hits, chunks, k)
    return SearchResult(
        query,
        tuple(passages),
        found.confidence if passages else 0.0,
        found.index_version,
        0.0,
        top_cosine=found.top_cosine,
        lexical_coverage=found.lexical_coverage,
        query_vector=found.query_vector,
        memory=found.memory,
        own_ranking=found.own_ranking,
    )


def answer_row(
    snapshot: Any,
    q: common.EvalQuestion,
    *,
    vector: Any,
    chunks: dict[int, Any],
    ranking_memory: Any,
    answer_memory: Any,
    threshold: float,
    fusion: Any = None,
) -> dict[str, Any]:
    """One question through the answer pipeline's stages without generation: retrieve (with or
    without question memory in the ranking), decide, and cite (a quote or a decline), plus
    answer memory's best candidate (`recall` with no similarity floor: the threshold is applied
    afterwards, `answer_at`, which is the same rule since only the most similar key counts)."""
    import dataclasses as dc

    from answers import token_f1

    from support.answers.cite import cite, cite_learned
    from support.answers.decide import decide
    from support.answers.recall import recall
    from support.answers.types import Question, Retrieved
    from support.search.hybrid import DEFAULT_FUSION, hybrid_search

    found = hybrid_search(
        snapshot,
        vector,
        q.text,
        k=10,
        fusion=fusion or DEFAULT_FUSION,
        memory=ranking_memory if ranking_memory is not None else False,
    )
    # The keys answer memory reads: the published memory, or the bench's own (inner folds).
    found = dc.replace(found, memory=answer_memory)
    search = search_result(found, q.text, chunks)
    asked = Question(q.text)
    retrieved = Retrieved(search)
    decision = decide(asked, retrieved, min_confidence=threshold, generate=False)
    base = cite(retrieved, decision)
    recalled = recall(asked, retrieved, decision, min_similarity=-1.0, min_confidence=threshold)
    reference = q.answer if q.graded else None
    row: dict[str, Any] = {
        "id": q.id,
        "answerable": q.answerable,
        "graded": q.graded,
        "declined": base.action == "escalate",
        "reason": str(base.reason),
        "f1": token_f1(base.text, reference) if reference and base.action != "escalate" else 0.0,
        "memory": None,
    }
    if recalled is not None:
        learned = cite_learned(retrieved, recalled)
        row["memory"] = {
            "example": recalled.example_id,
            "similarity": round(recalled.similarity, 4),
            "accepted": recalled.accepted,
            "problem": recalled.grounding.problem,
            "f1": token_f1(learned.text, reference) if reference else 0.0,
            "text": learned.text,
        }
    return row


def answer_at(row: dict[str, Any], t: float | None) -> dict[str, Any]:
    """The row's outcome with answer memory at threshold `t` (`t` above 1: off; None: the
    row's own fold's, `row["t"]`)."""
    t = row["t"] if t is None else t
    m = row["memory"]
    if m is not None and m["accepted"] and m["similarity"] >= t:
        return {"declined": False, "f1": m["f1"], "learned": True}
    return {"declined": row["declined"], "f1": row["f1"], "learned": False}


def answer_metrics(rows: list[dict[str, Any]], t: float | None) -> dict[str, Any]:
    """Answer token F1 over the graded questions (a decline scores 0), answers from memory,
    declines of both kinds, at answer-memory threshold `t`."""
    outs = [(r, answer_at(r, t)) for r in rows]
    graded = [(r, o) for r, o in outs if r["graded"]]
    ans = [(r, o) for r, o in outs if r["answerable"]]
    una = [(r, o) for r, o in outs if not r["answerable"]]
    learned = [(r, o) for r, o in graded if o["learned"]]
    return {
        "graded": len(graded),
        "answer_f1": sum(o["f1"] for _, o in graded) / len(graded) if graded else None,
        "from_memory": sum(o["learned"] for _, o in outs),
        "from_memory_graded": len(learned),
        "from_memory_f1": (sum(o["f1"] for _, o in learned) / len(learned) if learned else None),
        # The same questions' answers without answer memory (the quote or decline).
        "from_memory_f1_without": (
            sum(r["f1"] for r, _ in learned) / len(learned) if learned else None
        ),
        "from_memory_unanswerable": sum(o["learned"] for _, o in una),
        "unanswerable_declined": (sum(o["declined"] for _, o in una) / len(una) if una else None),
        "answerable_declined": sum(o["declined"] for _, o in ans) / len(ans) if ans else None,
        # Diagnostic: what the threshold alone would let through, the fact check ignored.
        "unchecked": _unchecked(rows, t),
        "rejected_by_check": sum(
            1
            for r in rows
            if r["memory"] is not None
            and not r["memory"]["accepted"]
            and r["memory"]["similarity"] >= (r["t"] if t is None else t)
        ),
    }


def _unchecked(rows: list[dict[str, Any]], t: float | None) -> dict[str, Any]:
    hits = [
        r
        for r in rows
        if r["memory"] is not None and r["memory"]["similarity"] >= (r["t"] if t is None else t)
    ]
    graded = [r for r in hits if r["graded"]]
    n = len(graded)
    return {
        "matches": len(hits),
        "unanswerable": sum(not r["answerable"] for r in hits),
        "graded": n,
        "memory_f1": sum(r["memory"]["f1"] for r in graded) / n if n else None,
        "without_f1": sum(r["f1"] for r in graded) / n if n else None,
    }


def choose_threshold(
    train_turns: list[Turn],
    example_of: dict[str, int],
    thresholds: tuple[float, ...],
    vectors: dict[str, Any],
    chunks: dict[int, Any],
    threshold: float,
) -> dict[str, Any]:
    """Answer memory's similarity threshold with the best mean answer F1 over a 2-fold split of
    the training half's dialogues (keys from one inner half, questions from the other; the
    ranking without question memory); ties go to the higher threshold. A threshold above 1 is
    "off", so the cross-validation may turn it off."""
    import numpy as np

    from support import backends
    from support.search.memory import MemoryKeys, QuestionMemory

    snapshot = backends.get_index_reader().snapshot()
    inner_a, inner_b = halves(sorted({t.dialogue for t in train_turns}), salt="inner")
    by_id = {example_of[t.question.id]: t.question.id for t in train_turns}
    rows: list[dict[str, Any]] = []
    for keys_side, query_side in ((set(inner_a), set(inner_b)), (set(inner_b), set(inner_a))):
        ids = {example_of[t.question.id] for t in train_turns if t.dialogue in keys_side}
        keys = training_keys(ids)
        ordered = sorted(keys)
        memory = None
        if ordered:
            memory = QuestionMemory.build(
                MemoryKeys(
                    example_ids=np.asarray(ordered, dtype=np.int64),
                    texts=tuple(keys[e][0] for e in ordered),
                    vectors=np.stack([vectors[by_id[e]] for e in ordered]),
                    chunk_ids=tuple(keys[e][1] for e in ordered),
                )
            )
        for t in train_turns:
            if t.dialogue in query_side:
                rows.append(
                    answer_row(
                        snapshot,
                        t.question,
                        vector=vectors[t.question.id],
                        chunks=chunks,
                        ranking_memory=None,
                        answer_memory=memory,
                        threshold=threshold,
                    )
                )
    summary = {t: answer_metrics(rows, t) for t in thresholds}
    best = max(thresholds, key=lambda t: (round(summary[t]["answer_f1"] or 0.0, 6), t))
    return {
        "chosen": best,
        "per_threshold": {
            str(t): {
                k: summary[t][k]
                for k in ("answer_f1", "from_memory", "from_memory_f1", "unanswerable_declined")
            }
            for t in thresholds
        },
        "questions": len(rows),
    }


def answer_path_agrees(
    questions: list[common.EvalQuestion], rows: dict[str, Any], t: float
) -> bool:
    """`answer_compose(generate=False)` (the product's path: its own search, answer memory at
    threshold `t`) ends as the benchmark computed for these questions (learned or not, declined
    or not)."""
    from django.test import override_settings

    from support.answers.pipeline import answer_compose

    ok = True
    with override_settings(
        SUPPORT_ANSWER_MEMORY=True, SUPPORT_ANSWER_MEMORY_MIN_SIMILARITY=min(t, 1.0)
    ):
        for q in questions:
            draft = answer_compose(question=q.text, generate=False)
            expected = answer_at(rows[q.id], t)
            learned = draft.reason == "learned"
            if (
                learned != expected["learned"]
                or (draft.action == "escalate") != expected["declined"]
            ):
                ok = False
    return ok


def generated_f1(
    rows: list[dict[str, Any]], questions: dict[str, common.EvalQuestion], t: float, limit: int
) -> dict[str, Any]:
    """For up to `limit` graded questions answered from memory: the answer the model writes for
    them without answer memory (the whole pipeline), its F1 next to the memory answer's."""
    from answers import token_f1
    from django.test import override_settings

    from support.answers.pipeline import answer_compose

    chosen = [r for r in rows if r["graded"] and answer_at(r, t)["learned"]][:limit]
    out = []
    started = time.perf_counter()
    with override_settings(SUPPORT_ANSWER_MEMORY=False):
        for r in chosen:
            q = questions[r["id"]]
            draft = answer_compose(question=q.text)
            out.append(
                {
                    "id": q.id,
                    "memory_f1": r["memory"]["f1"],
                    "generated_f1": (
                        token_f1(draft.text, q.answer) if draft.action != "escalate" else 0.0
                    ),
                    "generated_action": str(draft.action),
                }
            )
    n = len(out)
    return {
        "questions": n,
        "memory_f1": sum(x["memory_f1"] for x in out) / n if n else None,
        "generated_f1": sum(x["generated_f1"] for x in out) / n if n else None,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": out,
    }


def shipped_threshold(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The threshold to ship: the best mean, over the folds, of each fold's cross-validated
    answer F1 inside its training half (ties to the higher threshold). Only training halves'
    inner folds are read, as for each fold's own choice."""
    curves = [f["answer_memory"]["threshold_cv"]["per_threshold"] for f in folds]
    keys = [k for k in curves[0] if all(k in c for c in curves)]
    mean = {k: sum(c[k]["answer_f1"] or 0.0 for c in curves) / len(curves) for k in keys}
    best = max(keys, key=lambda k: (round(mean[k], 6), float(k)))
    return {"chosen": float(best), "mean_answer_f1": mean}


def answer_variants(
    rows: dict[str, list[dict[str, Any]]], t: float | None, shipped_t: float
) -> dict[str, Any]:
    """Each mechanism alone and both together, on the answers: before (neither), question
    memory alone (the ranking), answer memory alone (at the cross-validated threshold, and at
    the shipped one), and both."""
    return {
        "before": answer_metrics(rows["plain"], OFF),
        "question_memory": answer_metrics(rows["question_memory"], OFF),
        "answer_memory": answer_metrics(rows["plain"], t),
        "answer_memory_shipped": answer_metrics(rows["plain"], shipped_t),
        "both": answer_metrics(rows["question_memory"], t),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    parser.add_argument(
        "--generated",
        type=int,
        default=None,
        help=f"answers from memory compared with the model's per fold ({GENERATED}; quick "
        f"{QUICK_GENERATED}; 0: none)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    data_dir = private_kb(log)
    log(f"eval KB copied to {data_dir}")

    from support import backends, knowledge
    from support.conf import get_support_settings
    from support.learning import examples
    from support.models import Chunk, Example
    from support.search.hybrid import DEFAULT_FUSION

    backends.serving_threads_configure()
    conf = get_support_settings()
    threshold = conf.retrieval_min_confidence
    turns = load_turns()
    dialogues = sorted({t.dialogue for t in turns})
    half_a, half_b = halves(dialogues)
    if args.quick:
        half_a, half_b = half_a[:QUICK_DIALOGUES], half_b[:QUICK_DIALOGUES]
    weights = QUICK_WEIGHTS if args.quick else WEIGHTS
    min_scores = QUICK_MIN_SCORES if args.quick else MIN_SCORES
    in_run = set(half_a) | set(half_b)
    turns = [t for t in turns if t.dialogue in in_run]
    log(f"{len(turns)} turns of {len(in_run)} dialogues ({len(half_a)} + {len(half_b)})")

    # -- import every agent reply once, pending (grounding never reads the memory) ----------
    t0 = time.perf_counter()
    summary = examples.ImportSummary()
    lines = [import_line(t) for t in turns if t.reply]
    for _ in examples.examples_import(lines=lines, approve=False, summary=summary):
        pass
    import_s = time.perf_counter() - t0
    log(f"imported {summary.imported} replies in {import_s:.0f} s: {summary.render()}")
    example_of = dict(Example.objects.values_list("external_id", "pk"))

    embedder = backends.get_embedder()
    import numpy as np

    texts = [t.question.text for t in turns]
    encode = getattr(embedder, "encode_queries", None)
    matrix = encode(texts) if encode else np.stack([embedder.encode_query(x) for x in texts])
    vectors = {t.question.id: matrix[i] for i, t in enumerate(turns)}
    chunks = {c.pk: c for c in Chunk.objects.select_related("document")}

    # -- the plain index: every question once (identical for both folds) --------------------
    t0 = time.perf_counter()
    plain = backends.get_index_reader().snapshot()
    before = {
        t.question.id: search_row(
            plain,
            t.question,
            vector=vectors[t.question.id],
            chunks=chunks,
            fusion=DEFAULT_FUSION,
            memory=False,
            threshold=threshold,
        )
        for t in turns
    }
    log(f"searched {len(before)} questions without the memory in {time.perf_counter() - t0:.0f} s")
    agrees = [product_path_agrees([t.question for t in turns[:: max(1, len(turns) // 20)]], before)]

    folds: list[dict[str, Any]] = []
    pooled_rows: dict[str, list[dict[str, Any]]] = {"cv": [], "shipped": []}
    pooled_answers: dict[str, list[dict[str, Any]]] = {"plain": [], "question_memory": []}
    answer_agrees: list[bool] = []
    generated_rows: list[dict[str, Any]] = []
    thresholds = QUICK_THRESHOLDS if args.quick else THRESHOLDS
    n_generated = (
        args.generated
        if args.generated is not None
        else (QUICK_GENERATED if args.quick else GENERATED)
    )
    shipped_t = conf.answer_memory_min_similarity
    for name, train, test in (("A", half_a, half_b), ("B", half_b, half_a)):
        train_set, test_set = set(train), set(test)
        train_turns = [t for t in turns if t.dialogue in train_set]
        train_ids = [example_of[t.question.id] for t in train_turns if t.question.id in example_of]
        # The fold's examples approved, the other half's not: a rebuild makes the memory.
        Example.objects.update(state=Example.State.PENDING, reviewed_at=None, reviewed_by=None)
        examples.examples_review(example_ids=train_ids, state=Example.State.APPROVED, by=None)
        t0 = time.perf_counter()
        built = knowledge.index_rebuild()
        build_s = time.perf_counter() - t0
        log(f"fold {name}: memory of {built.memory_keys} keys in {build_s:.1f} s")
        t0 = time.perf_counter()
        cv = choose_weight(
            [t for t in train_turns if t.question.id in example_of],
            example_of,
            weights,
            vectors,
            chunks,
            min_scores,
        )
        cv_s = time.perf_counter() - t0
        log(
            f"fold {name}: weight {cv['chosen']}, least key score {cv['chosen_min_score']} "
            f"chosen inside the training half ({cv_s:.0f} s)"
        )
        test_turns = [t for t in turns if t.dialogue in test_set]
        rows_by: dict[str, list[dict[str, Any]]] = {"cv": [], "shipped": []}
        reader = backends.get_index_reader()
        snapshot = reader.snapshot()  # the version index_rebuild just published
        fusions = {
            "cv": dataclasses.replace(
                DEFAULT_FUSION,
                memory_weight=cv["chosen"],
                memory_min_score=cv["chosen_min_score"],
            ),
            "shipped": DEFAULT_FUSION,
        }
        for variant, fusion in fusions.items():
            for t in test_turns:
                q = t.question
                after = search_row(
                    snapshot,
                    q,
                    vector=vectors[q.id],
                    chunks=chunks,
                    fusion=fusion,
                    memory=True,
                    threshold=threshold,
                )
                rows_by[variant].append(
                    {
                        "id": q.id,
                        "answerable": q.answerable,
                        "first_turn": not q.history,
                        "before": before[q.id],
                        "after": after,
                    }
                )
            pooled_rows[variant] += rows_by[variant]
        shipped_after = {r["id"]: r["after"] for r in rows_by["shipped"]}
        sample = [t.question for t in test_turns[:: max(1, len(test_turns) // 20)]]
        agrees.append(product_path_agrees(sample, shipped_after))
        reach = memory_reach(test_turns, vectors, chunks)
        log(f"fold {name}: reach {reach}")
        # -- answer memory: threshold cross-validated inside the training half -------------
        t0 = time.perf_counter()
        am_cv = choose_threshold(
            [t for t in train_turns if t.question.id in example_of],
            example_of,
            thresholds,
            vectors,
            chunks,
            threshold,
        )
        chosen_t = am_cv["chosen"]
        am_cv_s = time.perf_counter() - t0
        log(f"fold {name}: answer memory threshold {chosen_t} chosen inside the training half")
        t0 = time.perf_counter()
        answer_rows: dict[str, list[dict[str, Any]]] = {}
        for ranking in ("plain", "question_memory"):
            answer_rows[ranking] = [
                {
                    **answer_row(
                        snapshot,
                        t.question,
                        vector=vectors[t.question.id],
                        chunks=chunks,
                        ranking_memory=snapshot.memory if ranking == "question_memory" else None,
                        answer_memory=snapshot.memory,
                        threshold=threshold,
                    ),
                    "t": chosen_t,
                }
                for t in test_turns
            ]
            pooled_answers[ranking] += answer_rows[ranking]
        answers_s = time.perf_counter() - t0
        both_by_id = {r["id"]: r for r in answer_rows["question_memory"]}
        answer_agrees.append(
            answer_path_agrees(
                [t.question for t in test_turns[:: max(1, len(test_turns) // 20)]],
                both_by_id,
                chosen_t,
            )
        )
        questions_by_id = {t.question.id: t.question for t in test_turns}
        generated = generated_f1(answer_rows["plain"], questions_by_id, chosen_t, n_generated)
        generated_rows += generated["rows"]
        log(
            f"fold {name}: answers {answers_s:.0f} s, generated {generated['questions']} "
            f"in {generated['seconds']} s"
        )
        trained = Example.objects.filter(pk__in=train_ids)
        folds.append(
            {
                "fold": name,
                "train_dialogues": len(train),
                "test_dialogues": len(test),
                "examples": len(train_ids),
                "keys": built.memory_keys,
                "knowledge_gaps": trained.filter(knowledge_gap=True).count(),
                "held_back": trained.filter(held_back=True).count(),
                "memory_build_s": round(build_s, 2),
                "memory_reach": reach,
                "weight_cv": cv,
                "weight_cv_s": round(cv_s, 1),
                "before": metrics(rows_by["cv"], "before"),
                "after": metrics(rows_by["cv"], "after"),
                "after_shipped": metrics(rows_by["shipped"], "after"),
                "first_turns": {
                    "before": metrics([r for r in rows_by["cv"] if r["first_turn"]], "before"),
                    "after": metrics([r for r in rows_by["cv"] if r["first_turn"]], "after"),
                },
                "answer_memory": {
                    "threshold_cv": am_cv,
                    "threshold_cv_s": round(am_cv_s, 1),
                    "answers_s": round(answers_s, 1),
                    **answer_variants(answer_rows, None, shipped_t),
                    "generated": {k: v for k, v in generated.items() if k != "rows"},
                    # Every evaluated question whose best key reaches the lowest threshold.
                    "candidates": [
                        {
                            "id": r["id"],
                            "graded": r["graded"],
                            "answerable": r["answerable"],
                            "base_f1": round(r["f1"], 4),
                            "base_reason": r["reason"],
                            **{k: v for k, v in r["memory"].items() if k != "text"},
                        }
                        for r in answer_rows["plain"]
                        if r["memory"] is not None and r["memory"]["similarity"] >= min(thresholds)
                    ],
                },
            }
        )
    n_gen = len(generated_rows)
    pooled_generated = {
        "questions": n_gen,
        "memory_f1": sum(x["memory_f1"] for x in generated_rows) / n_gen if n_gen else None,
        "generated_f1": sum(x["generated_f1"] for x in generated_rows) / n_gen if n_gen else None,
    }
    pooled = {
        "answer_memory": {
            **answer_variants(pooled_answers, None, shipped_t),
            "generated": pooled_generated,
        },
        "before": metrics(pooled_rows["cv"], "before"),
        "after": metrics(pooled_rows["cv"], "after"),
        "after_shipped": metrics(pooled_rows["shipped"], "after"),
        "first_turns": {
            "before": metrics([r for r in pooled_rows["cv"] if r["first_turn"]], "before"),
            "after": metrics([r for r in pooled_rows["cv"] if r["first_turn"]], "after"),
        },
    }
    result = {
        "machine": common.machine_info(),
        "eval": "doc2dial (IBM), Feng et al. 2020 — ../shared/eval/doc2dial",
        "mode": "quick" if args.quick else "full",
        "dialogues": len(in_run),
        "turns": len(turns),
        "imported": summary.imported,
        "import_errors": summary.error,
        "import_s": round(import_s, 1),
        "threshold": threshold,
        "held_back_percent": conf.examples_held_back_percent,
        "shipped_memory_weight": DEFAULT_FUSION.memory_weight,
        "weights": list(weights),
        "min_scores": list(min_scores),
        "shipped_memory_min_score": DEFAULT_FUSION.memory_min_score,
        "folds": folds,
        "pooled": pooled,
        "target_recall5": TARGET_RECALL5,
        "target_met": pooled["after"]["recall@5"] >= TARGET_RECALL5,
        "product_path_agrees": all(agrees),
        "answer_path_agrees": all(answer_agrees),
        "answer_memory_threshold_to_ship": shipped_threshold(folds),
        "thresholds": list(thresholds),
        "shipped_answer_memory_min_similarity": shipped_t,
        "generated_per_fold": n_generated,
        "generated_rows": generated_rows,
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
        "seconds": round(time.perf_counter() - started, 1),
        # Only the questions whose rank changed (the rest are in before == after).
        "changed": [
            {"id": r["id"], "before": r["before"]["rank"], "after": r["after"]["rank"]}
            for r in pooled_rows["cv"]
            if r["before"]["rank"] != r["after"]["rank"]
        ],
    }
    path = common.write_results("learning", result, also=args.out)
    _print(result, path)
    return 0


def _print(r: dict[str, Any], path: Path) -> None:
    f = common.fmt
    print(f"\n## Question memory ({r['dialogues']} dialogues, {r['turns']} turns) — {path.name}\n")
    rows = []
    for fold in [*r["folds"], {"fold": "pooled", **r["pooled"]}]:
        b, a = fold["before"], fold["after"]
        rows.append(
            [
                fold["fold"],
                "{} / {}".format(
                    fold.get("weight_cv", {}).get("chosen", "—"),
                    fold.get("weight_cv", {}).get("chosen_min_score", "—"),
                ),
                b["answerable"],
                f"{f(b['recall@5'])} → {f(a['recall@5'])}",
                f"{f(b['mrr@10'])} → {f(a['mrr@10'])}",
                f"{f(b['unanswerable_declined'])} → {f(a['unanswerable_declined'])}",
                f"{f(b['answerable_declined'])} → {f(a['answerable_declined'])}",
                f"{f(fold['after_shipped']['recall@5'])}",
                fold.get("keys", "—"),
                fold.get("memory_build_s", "—"),
            ]
        )
    print(
        common.markdown_table(
            [
                "fold",
                "weight (CV)",
                "answerable",
                "recall@5",
                "MRR@10",
                "unanswerable declined",
                "answerable declined",
                "recall@5 at shipped weight",
                "keys",
                "build s",
            ],
            rows,
        )
    )
    print(f"\n## Answer memory — {path.name}\n")
    rows = []
    for fold in [*r["folds"], {"fold": "pooled", **r["pooled"]}]:
        am = fold["answer_memory"]
        t = am.get("threshold_cv", {}).get("chosen", "per fold")
        for variant in ("before", "question_memory", "answer_memory", "both"):
            m = am[variant]
            rows.append(
                [
                    fold["fold"],
                    variant,
                    t if variant in ("answer_memory", "both") else "—",
                    f(m["answer_f1"]),
                    m["from_memory"],
                    f"{f(m['from_memory_f1'])} vs {f(m['from_memory_f1_without'])}",
                    m["rejected_by_check"],
                    f(m["unanswerable_declined"]),
                    f(m["answerable_declined"]),
                ]
            )
    print(
        common.markdown_table(
            [
                "fold",
                "mechanisms",
                "threshold (CV)",
                "answer F1",
                "from memory",
                "their F1 vs without",
                "failed the check",
                "unanswerable declined",
                "answerable declined",
            ],
            rows,
        )
    )
    g = r["pooled"]["answer_memory"]["generated"]
    print(
        f"\nanswers from memory vs the model's own ({g['questions']} questions): "
        f"F1 {f(g['memory_f1'])} vs {f(g['generated_f1'])}"
    )
    print(f"\npeak RSS {r['peak_rss_mb']} MiB, {r['seconds']} s")


if __name__ == "__main__":
    raise SystemExit(main())
