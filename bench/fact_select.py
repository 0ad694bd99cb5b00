"""Which sentence the pipeline quotes: today's lexical fact selection, an oracle, and a ranker
learned from approved examples (2-fold over the doc2dial dev dialogues, as bench/learning.py).

Usage (from the repository root, with the project venv)::

    python bench/fact_select.py              # every dev dialogue, 2 folds
    python bench/fact_select.py --quick      # 40 dialogues a half
    python bench/fact_select.py --out result.json

The dialogues are split by dialogue into the two halves of `bench/learning.py` (`halves`).
Every turn is a standalone question (no history) through the answer pipeline's stages without
generation, exactly as bench/learning.py's "neither" row: hybrid search on the plain index,
`decide(generate=False)`, `cite` (a quote of the single best fact, or a decline). Only the
sentence that a quote quotes changes between the variants; which questions are declined does
not. Answer token F1 against the agent's reply over the graded questions (a decline scores 0):

- **lexical**: today's `facts_select` (the quote the pipeline gives);
- **oracle**: the candidate sentence of the top 3 passages with the best F1 to the agent's
  reply (the headroom of choosing a sentence; it reads the answer);
- **learned**: a logistic-regression ranker over the candidate sentences
  (`support.answers.facts.fact_candidates`) trained only on the training half's agent replies
  (question, reply: the approved examples of an import): a question's label is its candidate
  sentence with the best token F1to the reply. Features: the lexical fact score and intent
  bonus, the passage rank, the sentence's position and length, heading match, cosine between
  question and sentence (the embedder already loaded; sentence vectors computed once per
  sentence), and the *span memory*: the best cosine between the question and the training
  questions whose label is this sentence, and how many there are (other dialogues only). Its
  regularisation (or "keep the lexical ranking") is chosen by 2-fold cross-validation inside
  the training half, split by dialogue, never on the evaluated half.

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import learning

QUICK_DIALOGUES = 40
# Regularisation of the logistic regression (inverse strength), cross-validated; None is "keep
# the lexical ranking" so the CV may refuse the ranker.
CS: tuple[float | None, ...] = (None, 0.01, 0.1, 1.0, 10.0)
# A training question whose best candidate sentence shares less than this F1 with the reply
# labels nothing (the reply is not in the passages: a question back, another page).
MIN_LABEL_F1 = 0.1


@dataclasses.dataclass(slots=True)
class Row:
    """One question: its route, today's quote and its candidates (features but the memory)."""

    id: str
    dialogue: str
    graded: bool
    answerable: bool
    quote: bool  # the route is a quote (not a decline)
    base_text: str
    base_f1: float
    reference: str | None  # the agent's reply (train: the label's source; test: F1)
    vector: Any
    texts: list[str]  # candidate sentences (as quoted)
    quoted: list[str]  # each candidate's quote text (with its citation marker)
    keys: list[str]  # content-word keys (the span memory's key)
    base: Any  # (n_candidates, n_features) without the memory features
    today: int | None  # the candidate today's quote is
    f1s: list[float]  # each candidate's quote F1 to the reference


BASE_FEATURES = (
    "score",
    "bonus",
    "rank",
    "rank_gap",
    "today",
    "eligible",
    "heading",
    "passage_1",
    "passage_2",
    "position_0",
    "position",
    "log_words",
    "question_mark",
    "cosine",
    "cosine_gap",
    "cosine_best",
)
MEMORY_FEATURES = (
    "memory_cosine",
    "memory_count",
    "memory_best",
    "answers_f1",
    "answers_nearest_f1",
    "answers_best",
)
# The soft answer memory: the approved answers of the most similar training questions.
NEAREST = 5


def quote_text(fact: Any) -> str:
    from support.answers.citations import citations_resolve, extractive_answer

    return citations_resolve(extractive_answer([fact]), [fact])[0]


def build_rows(
    turns: list[learning.Turn], vectors: dict[str, Any], chunks: dict[int, Any], log: Any
) -> list[Row]:
    import numpy as np
    from answers import token_f1

    from support import backends
    from support.answers.cite import cite
    from support.answers.decide import decide
    from support.answers.facts import fact_candidates
    from support.answers.types import Question, Retrieved, Route
    from support.answers.words import content_words
    from support.conf import get_support_settings
    from support.search.hybrid import DEFAULT_FUSION, hybrid_search

    threshold = get_support_settings().retrieval_min_confidence
    snapshot = backends.get_index_reader().snapshot()
    pending: list[tuple[Row, list[Any]]] = []
    texts_all: dict[str, int] = {}
    for t in turns:
        q = t.question
        found = hybrid_search(
            snapshot, vectors[q.id], q.text, k=10, fusion=DEFAULT_FUSION, memory=False
        )
        search = learning.search_result(found, q.text, chunks)
        asked = Question(q.text)
        retrieved = Retrieved(search)
        decision = decide(asked, retrieved, min_confidence=threshold, generate=False)
        draft = cite(retrieved, decision)
        quote = decision.route is Route.QUOTE
        reference = q.answer if q.graded else t.reply
        cands = fact_candidates(question=q.text, passages=search.passages)
        today = None
        if quote:
            # The fact extractive_answer quoted (one: EXTRACTIVE_FACTS).
            for i, c in enumerate(cands):
                if quote_text(c.fact) == draft.text:
                    today = i
                    break
        quoted = [quote_text(c.fact) for c in cands]
        for c in cands:
            texts_all.setdefault(c.fact.text, len(texts_all))
        row = Row(
            id=q.id,
            dialogue=t.dialogue,
            graded=q.graded,
            answerable=q.answerable,
            quote=quote,
            base_text=draft.text,
            base_f1=token_f1(draft.text, q.answer) if q.graded and quote else 0.0,
            reference=reference,
            vector=vectors[q.id],
            texts=[c.fact.text for c in cands],
            quoted=quoted,
            keys=[" ".join(content_words(c.fact.text)) for c in cands],
            base=None,
            today=today,
            f1s=[token_f1(x, reference) if reference else 0.0 for x in quoted],
        )
        pending.append((row, cands))
    log(f"{len(pending)} questions searched and decided; {len(texts_all)} candidate sentences")
    t0 = time.perf_counter()
    embedder = backends.get_embedder()
    ordered = sorted(texts_all, key=texts_all.get)
    sentence_vectors = embedder.encode(ordered)
    log(f"embedded the candidate sentences in {time.perf_counter() - t0:.0f} s")
    rows = []
    for row, cands in pending:
        if cands:
            sv = sentence_vectors[[texts_all[c.fact.text] for c in cands]]
            cos = sv @ row.vector
            ranks = np.array([c.fact.rank for c in cands])
            feats = []
            for i, c in enumerate(cands):
                words = len(c.fact.text.split())
                feats.append(
                    [
                        c.fact.score,
                        c.fact.bonus,
                        c.fact.rank,
                        c.fact.rank - ranks.max(),
                        float(i == row.today),
                        float(c.eligible),
                        float(c.heading),
                        float(c.fact.n == 1),
                        float(c.fact.n == 2),
                        float(c.position == 0),
                        min(c.position, 10) / 10,
                        math.log1p(words),
                        float(c.fact.text.rstrip().endswith("?")),
                        float(cos[i]),
                        float(cos[i] - cos.max()),
                        float(i == int(cos.argmax())),
                    ]
                )
            row.base = np.asarray(feats, dtype=np.float64)
        rows.append(row)
    return rows


# -- the span memory ---------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class Memory:
    """Training questions by the key of their label sentence."""

    by_key: dict[str, list[tuple[Any, str]]]  # key -> [(question vector, dialogue)]
    vectors: Any  # every training question with an answer (rows), for the soft memory
    dialogues: Any
    answers: list[str]


def memory_build(rows: list[Row]) -> Memory:
    import numpy as np

    by_key: dict[str, list[tuple[Any, str]]] = {}
    answered = [r for r in rows if r.reference]
    for r in rows:
        label = label_of(r)
        if label is not None:
            by_key.setdefault(r.keys[label], []).append((r.vector, r.dialogue))
    return Memory(
        by_key,
        np.stack([r.vector for r in answered]) if answered else np.zeros((0, 384)),
        np.asarray([r.dialogue for r in answered]),
        [r.reference or "" for r in answered],
    )


def label_of(r: Row) -> int | None:
    if not r.f1s or r.reference is None:
        return None
    best = max(range(len(r.f1s)), key=lambda i: (r.f1s[i], -i))
    return best if r.f1s[best] >= MIN_LABEL_F1 else None


def features(r: Row, memory: Memory) -> Any:
    """The row's candidates' features with the span memory (other dialogues' questions only)."""
    import numpy as np

    mem = np.zeros((len(r.keys), len(MEMORY_FEATURES)))
    for i, key in enumerate(r.keys):
        past = [v for v, d in memory.by_key.get(key, ()) if d != r.dialogue]
        if past:
            mem[i, 0] = float(np.max(np.stack(past) @ r.vector))
            mem[i, 1] = math.log1p(len(past))
    if len(r.keys):
        mem[:, 2] = (mem[:, 0] == mem[:, 0].max()) & (mem[:, 0] > 0)
    if len(memory.answers) and len(r.keys):
        from answers import token_f1

        sims = memory.vectors @ r.vector
        sims[memory.dialogues == r.dialogue] = -1.0
        near = np.argsort(-sims)[:NEAREST]
        for i, text in enumerate(r.texts):
            f1s = np.array([token_f1(text, memory.answers[j]) for j in near])
            mem[i, 3] = float(np.max(f1s * np.clip(sims[near], 0.0, None)))
            mem[i, 4] = float(f1s[0])
        mem[:, 5] = mem[:, 3] == mem[:, 3].max()
    return np.hstack([r.base, mem])


# -- the ranker --------------------------------------------------------------------------------
def fit(train: list[Row], memory: Memory, c: float | None) -> Any:
    """A logistic regression on the labelled rows' candidates (label: the best sentence)."""
    if c is None:
        return None
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs, ys = [], []
    for r in train:
        label = label_of(r)
        if label is None or len(r.keys) < 2:
            continue
        best = r.f1s[label]
        xs.append(features(r, memory))
        ys.append(np.array([f >= best - 1e-9 for f in r.f1s], dtype=int))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    model.fit(np.vstack(xs), np.concatenate(ys))
    return model


def choose(r: Row, model: Any, memory: Memory) -> int | None:
    """The candidate the ranker quotes (None: the row is no quote). Questions are quoted only
    when every candidate is one, as extractive_answer does."""
    if not r.quote or r.today is None:
        return r.today
    if model is None:
        return r.today
    scores = model.decision_function(features(r, memory))
    statements = [i for i, t in enumerate(r.texts) if not t.rstrip().endswith("?")]
    pool = statements or list(range(len(r.texts)))
    return max(pool, key=lambda i: (scores[i], -i))


def oracle(r: Row) -> int | None:
    if not r.quote or r.today is None:
        return r.today
    return max(range(len(r.f1s)), key=lambda i: (r.f1s[i], i == r.today, -i))


def outcome(rows: list[Row], picks: dict[str, int | None]) -> dict[str, Any]:
    """Answer F1 over the graded questions (a decline 0) with these picks, and how many
    quotes changed from today's."""
    graded = [r for r in rows if r.graded]
    f1 = []
    changed = changed_graded = 0
    for r in rows:
        pick = picks[r.id]
        moved = r.quote and pick is not None and r.quoted[pick] != r.base_text
        changed += moved
        if r.graded:
            changed_graded += moved
            f1.append(
                r.f1s[pick] if (r.quote and pick is not None) else (r.base_f1 if r.quote else 0.0)
            )
    return {
        "graded": len(graded),
        "answer_f1": sum(f1) / len(f1) if f1 else None,
        "quotes": sum(r.quote for r in rows),
        "changed": changed,
        "changed_graded": changed_graded,
    }


def cv_choose(train: list[Row], cs: tuple[float | None, ...]) -> dict[str, Any]:
    """The regularisation with the best mean quote F1 over a 2-fold split of the training
    half's dialogues (memory and model from one inner half, F1 on the other); ties to the
    stronger regularisation (None first)."""
    inner_a, inner_b = learning.halves(sorted({r.dialogue for r in train}), salt="inner")
    scores: dict[str, list[float]] = {str(c): [] for c in cs}
    for fit_side, eval_side in ((set(inner_a), set(inner_b)), (set(inner_b), set(inner_a))):
        fit_rows = [r for r in train if r.dialogue in fit_side]
        eval_rows = [r for r in train if r.dialogue in eval_side]
        memory = memory_build(fit_rows)
        for c in cs:
            model = fit(fit_rows, memory, c)
            picks = {r.id: choose(r, model, memory) for r in eval_rows}
            scores[str(c)].append(outcome(eval_rows, picks)["answer_f1"] or 0.0)
    mean = {c: sum(v) / len(v) for c, v in scores.items()}
    best = max(cs, key=lambda c: (round(mean[str(c)], 6), -(c or 0.0) if c is not None else 1.0))
    return {"chosen": best, "per_c": mean}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    os.environ.pop("REDIS_URL", None)
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    data_dir = learning.private_kb(log)
    log(f"eval KB copied to {data_dir}")

    import numpy as np

    from support import backends
    from support.models import Chunk

    backends.serving_threads_configure()
    turns = learning.load_turns()
    half_a, half_b = learning.halves(sorted({t.dialogue for t in turns}))
    if args.quick:
        half_a, half_b = half_a[:QUICK_DIALOGUES], half_b[:QUICK_DIALOGUES]
    in_run = set(half_a) | set(half_b)
    turns = [t for t in turns if t.dialogue in in_run]
    log(f"{len(turns)} turns of {len(in_run)} dialogues")
    embedder = backends.get_embedder()
    matrix = embedder.encode_queries([t.question.text for t in turns])
    vectors = {t.question.id: matrix[i] for i, t in enumerate(turns)}
    chunks = {c.pk: c for c in Chunk.objects.select_related("document")}
    t0 = time.perf_counter()
    rows = build_rows(turns, vectors, chunks, log)
    rows_s = time.perf_counter() - t0
    missing = sum(r.quote and r.today is None for r in rows)
    log(f"rows in {rows_s:.0f} s ({missing} quotes not found among the candidates)")

    folds = []
    pooled: dict[str, dict[str, int | None]] = {"lexical": {}, "oracle": {}, "learned": {}}
    pooled_rows: list[Row] = []
    for name, train_half, test_half in (("A", half_a, half_b), ("B", half_b, half_a)):
        train = [r for r in rows if r.dialogue in set(train_half)]
        test = [r for r in rows if r.dialogue in set(test_half)]
        t0 = time.perf_counter()
        cv = cv_choose(train, CS)
        memory = memory_build(train)
        model = fit(train, memory, cv["chosen"])
        train_s = time.perf_counter() - t0
        picks = {
            "lexical": {r.id: r.today for r in test},
            "oracle": {r.id: oracle(r) for r in test},
            "learned": {r.id: choose(r, model, memory) for r in test},
        }
        for k, v in picks.items():
            pooled[k].update(v)
        pooled_rows += test
        coef = None
        if model is not None:
            names = BASE_FEATURES + MEMORY_FEATURES
            coef = dict(zip(names, np.round(model[-1].coef_[0], 3).tolist(), strict=True))
        fold = {
            "fold": name,
            "train_questions": len(train),
            "labelled": sum(label_of(r) is not None for r in train),
            "memory_keys": len(memory.by_key),
            "test_questions": len(test),
            "cv": cv,
            "train_s": round(train_s, 1),
            "coef": coef,
            **{k: outcome(test, v) for k, v in picks.items()},
        }
        folds.append(fold)
        log(
            f"fold {name}: C {cv['chosen']} ({cv['per_c']}); lexical "
            f"{fold['lexical']['answer_f1']:.3f}, oracle {fold['oracle']['answer_f1']:.3f}, "
            f"learned {fold['learned']['answer_f1']:.3f} ({fold['learned']['changed_graded']} changed)"
        )
    result = {
        "machine": common.machine_info(),
        "eval": "doc2dial (IBM), Feng et al. 2020 — ../shared/eval/doc2dial",
        "mode": "quick" if args.quick else "full",
        "dialogues": len(in_run),
        "turns": len(turns),
        "min_label_f1": MIN_LABEL_F1,
        "cs": [str(c) for c in CS],
        "quotes_not_found": missing,
        "rows_s": round(rows_s, 1),
        "folds": folds,
        "pooled": {k: outcome(pooled_rows, v) for k, v in pooled.items()},
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = common.write_results("fact_select", result, also=args.out)
    f = common.fmt
    print(
        f"\n## Fact selection ({result['dialogues']} dialogues, {result['turns']} turns) — {path.name}\n"
    )
    table = []
    for fold in [*folds, {"fold": "pooled", **result["pooled"]}]:
        for v in ("lexical", "oracle", "learned"):
            m = fold[v]
            table.append(
                [fold["fold"], v, m["graded"], f(m["answer_f1"]), m["changed_graded"], m["changed"]]
            )
    print(
        common.markdown_table(
            [
                "fold",
                "sentence chosen by",
                "graded",
                "answer F1",
                "graded quotes changed",
                "quotes changed",
            ],
            table,
        )
    )
    print(f"\npeak RSS {result['peak_rss_mb']} MiB, {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
