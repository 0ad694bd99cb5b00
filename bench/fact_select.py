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
  sentence with the best token F1 to the reply. The product's ranker itself
  (`support.learning.fact_train.ranker_train`, `support.answers.fact_ranker.FEATURES`): the
  lexical fact score and intent bonus, the passage rank, the sentence's position and length,
  heading match, cosine between question and sentence (sentence vectors computed once per
  sentence), the *span memory* (the best cosine between the question and the training
  questions whose label is this sentence, and how many there are) and the *soft answer memory*
  (the best F1 between the sentence and the replies of the 5 most similar training questions,
  weighted by cosine); training questions read other dialogues' only. Its regularisation (or
  "keep the lexical ranking") is chosen by 2-fold cross-validation inside the training half,
  split by dialogue, never on the evaluated half. A sample of the evaluated questions is put
  through `decide(ranker=...)` and `cite` themselves (`product_path_agrees`).

Eval data: ../shared/eval/doc2dial ("doc2dial (IBM), Feng et al. 2020", CC BY 3.0).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common
import learning

QUICK_DIALOGUES = 40


@dataclasses.dataclass(slots=True)
class Row:
    """One question: whether it is graded, today's quote and its F1, and the ranker's view of
    it (`fact_train.Sample`: its candidates, their quotes and F1s to the agent's reply)."""

    id: str
    dialogue: str
    graded: bool
    route_quote: bool  # the pipeline quotes (not a decline)
    base_text: str
    base_f1: float
    sample: Any
    retrieved: Any  # the pipeline's Retrieved (for the product-path check)


def build_rows(
    turns: list[learning.Turn], vectors: dict[str, Any], chunks: dict[int, Any], log: Any
) -> list[Row]:
    """Every turn through search, decide and cite as bench/learning.py's "neither" row, with
    its candidate sentences embedded (every distinct sentence once)."""
    import numpy as np
    from answers import token_f1

    from support import backends
    from support.answers.cite import cite
    from support.answers.decide import decide
    from support.answers.facts import fact_candidates
    from support.answers.types import Question, Retrieved, Route
    from support.conf import get_support_settings
    from support.learning.fact_train import Sample
    from support.search.hybrid import DEFAULT_FUSION, hybrid_search

    threshold = get_support_settings().retrieval_min_confidence
    snapshot = backends.get_index_reader().snapshot()
    pending = []
    texts_all: dict[str, int] = {}
    for t in turns:
        q = t.question
        found = hybrid_search(
            snapshot, vectors[q.id], q.text, k=10, fusion=DEFAULT_FUSION, memory=False
        )
        search = learning.search_result(found, q.text, chunks)
        retrieved = Retrieved(search)
        decision = decide(Question(q.text), retrieved, min_confidence=threshold, generate=False)
        draft = cite(retrieved, decision)
        cands = fact_candidates(question=q.text, passages=search.passages)
        for c in cands:
            texts_all.setdefault(c.fact.text, len(texts_all))
        pending.append((t, decision.route is Route.QUOTE, draft.text, cands, retrieved))
    log(f"{len(pending)} questions searched and decided; {len(texts_all)} candidate sentences")
    t0 = time.perf_counter()
    embedder = backends.get_embedder()
    sentence_vectors = embedder.encode(sorted(texts_all, key=texts_all.get))
    log(f"embedded the candidate sentences in {time.perf_counter() - t0:.0f} s")
    rows = []
    for t, quote, text, cands, retrieved in pending:
        q = t.question
        reference = q.answer if q.graded else (t.reply or "")
        sample = Sample(
            group=t.dialogue,
            question=q.text,
            answer=reference,
            quote=quote,
            candidates=cands,
            today=None,
            question_vector=vectors[q.id],
            sentence_vectors=(
                sentence_vectors[[texts_all[c.fact.text] for c in cands]]
                if cands
                else np.zeros((0, embedder.dimension), dtype=np.float32)
            ),
        )
        # The candidate today's quote is (extractive_answer's single best fact).
        sample.today = next((i for i, x in enumerate(sample.quotes) if x == text), None)
        sample.quote = quote and sample.today is not None
        rows.append(
            Row(
                id=q.id,
                dialogue=t.dialogue,
                graded=q.graded,
                route_quote=quote,
                base_text=text,
                base_f1=token_f1(text, q.answer) if q.graded and quote else 0.0,
                sample=sample,
                retrieved=retrieved,
            )
        )
    return rows


def product_path_agrees(rows: list[Row], ranker: Any) -> dict[str, Any]:
    """The ranker's pick as `decide(ranker=...)` and `cite` quote it, against the bench's."""
    from support import backends
    from support.answers.cite import cite
    from support.answers.decide import decide
    from support.answers.types import Question
    from support.conf import get_support_settings
    from support.learning import fact_train

    embedder = backends.get_embedder()
    threshold = get_support_settings().retrieval_min_confidence
    vectors = {r.sample.question: r.sample.question_vector for r in rows}
    from support.answers.words import strip_citations

    same = same_words = 0
    plain_s = ranked_s = 0.0
    for r in rows:
        t0 = time.perf_counter()
        decide(Question(r.sample.question), r.retrieved, min_confidence=threshold, generate=False)
        t1 = time.perf_counter()
        # The sentence-vector cache starts cold (the bench's own vectors are not in it): these
        # are first sightings, the cost of a question about a chunk not asked about before.
        decision = decide(
            Question(r.sample.question),
            r.retrieved,
            min_confidence=threshold,
            generate=False,
            ranker=ranker,
            question_vector=vectors.__getitem__,
            encode=embedder.encode,
        )
        ranked_s += time.perf_counter() - t1
        plain_s += t1 - t0
        text = cite(r.retrieved, decision).text
        pick = fact_train.pick(r.sample, ranker)
        expected = r.sample.quotes[pick] if r.sample.quote else r.base_text
        same += text == expected
        # A quote cites the passage its words best match among all the facts: a sentence two
        # passages share may carry another passage's number.
        same_words += strip_citations(text) == strip_citations(expected)
    n = len(rows) or 1
    return {
        "checked": len(rows),
        "same": same,
        "same_words": same_words,
        "decide_ms": round(1000 * plain_s / n, 1),
        "decide_ranked_ms": round(1000 * ranked_s / n, 1),
    }


def oracle(s: Any) -> int | None:
    if not s.quote:
        return s.today
    return max(range(len(s.f1s)), key=lambda i: (s.f1s[i], i == s.today, -i))


def outcome(rows: list[Row], picks: dict[str, int | None]) -> dict[str, Any]:
    """Answer F1 over the graded questions (a decline 0) with these picks, and how many
    quotes changed from today's."""
    f1 = []
    changed = changed_graded = 0
    for r in rows:
        s, pick = r.sample, picks[r.id]
        moved = s.quote and pick is not None and s.quotes[pick] != r.base_text
        changed += moved
        if r.graded:
            changed_graded += moved
            # A quote whose quoted fact is not among the candidates keeps today's F1.
            f1.append(s.f1s[pick] if s.quote and pick is not None else r.base_f1)
    return {
        "graded": len(f1),
        "answer_f1": sum(f1) / len(f1) if f1 else None,
        "quotes": sum(r.sample.quote for r in rows),
        "changed": changed,
        "changed_graded": changed_graded,
    }


# Where a sentence may be cut into clauses (after , ; : and before a conjunction or a
# parenthesis) for the sub-sentence headroom; a clause holds at least three words.
CLAUSE_BREAK = re.compile(
    r"(?<=[,;:])\s+|\s+(?=(?:and|but|or|if|unless|because|so|which|who|when|while)\b)"
    r"|\s+-\s+|\s+\("
)


def clauses(sentence: str) -> set[str]:
    """Every run of consecutive clauses of a sentence (the whole sentence among them)."""
    parts = [p.strip(" ,;:()") for p in CLAUSE_BREAK.split(sentence)]
    parts = [p for p in parts if len(p.split()) >= 3]
    runs = {" ".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)}
    return runs or {sentence}


def headroom(rows: list[Row]) -> dict[str, Any]:
    """What an oracle could gain beyond choosing a sentence, over the graded questions (a
    decline 0): quoting part of a sentence (a clause run), two sentences, and not declining.
    Every figure reads the agent's reply: headroom, not a method."""
    from answers import token_f1

    sums: dict[str, float] = {
        "oracle_sentence": 0.0,
        "oracle_clause": 0.0,
        "oracle_sentence_trimmed": 0.0,
        "today_trimmed": 0.0,
        "oracle_two_sentences": 0.0,
        "oracle_sentence_no_declines": 0.0,
        "oracle_clause_no_declines": 0.0,
    }
    graded = declined = 0
    for r in rows:
        if not r.graded:
            continue
        graded += 1
        s, ref = r.sample, r.sample.answer
        quotes = s.quotes
        quoted = r.route_quote and s.quote
        declined += not quoted
        if not quotes:
            continue
        f1s = s.f1s  # each quote's F1 to the reply (fact_train.Sample)
        best = max(range(len(quotes)), key=f1s.__getitem__)
        clause = max(token_f1(c, ref) for q in quotes for c in clauses(q))
        both = max(
            (
                token_f1(f"{quotes[i]} {quotes[j]}", ref)
                for i in range(len(quotes))
                for j in range(len(quotes))
                if i != j
            ),
            default=0.0,
        )
        sums["oracle_sentence_no_declines"] += f1s[best]
        sums["oracle_clause_no_declines"] += clause
        if quoted:
            sums["oracle_sentence"] += f1s[best]
            sums["oracle_clause"] += clause
            sums["oracle_sentence_trimmed"] += max(token_f1(c, ref) for c in clauses(quotes[best]))
            sums["today_trimmed"] += max(token_f1(c, ref) for c in clauses(r.base_text))
            sums["oracle_two_sentences"] += max(both, f1s[best])
    out: dict[str, Any] = {k: round(v / graded, 4) if graded else None for k, v in sums.items()}
    out.update(graded=graded, declined=declined)
    return out


def service_run(
    turns: list[learning.Turn], half: list[str], args: Any, log: Any, started: float
) -> int:
    """`facts_specialise` itself on one half's replies imported and approved (the held-back
    split at its default): its time, peak RSS and gate report."""
    from support.learning import examples, fact_train
    from support.models import Example

    keep = set(half)
    lines = [learning.import_line(t) for t in turns if t.reply and t.dialogue in keep]
    t0 = time.perf_counter()
    summary = examples.ImportSummary()
    for _ in examples.examples_import(lines=lines, approve=False, summary=summary):
        pass
    ids = list(Example.objects.values_list("pk", flat=True))
    examples.examples_review(example_ids=ids, state=Example.State.APPROVED, by=None)
    import_s = time.perf_counter() - t0
    log(f"imported and approved {summary.imported} replies in {import_s:.0f} s")
    stages: dict[str, float] = {}
    last = [time.perf_counter(), ""]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if stage != last[1]:
            if last[1]:
                stages[str(last[1])] = stages.get(str(last[1]), 0.0) + now - float(last[0])
            last[0], last[1] = now, stage

    t0 = time.perf_counter()
    report = fact_train.facts_specialise(progress=progress)
    seconds = time.perf_counter() - t0
    stages[str(last[1])] = stages.get(str(last[1]), 0.0) + time.perf_counter() - float(last[0])
    result = {
        "machine": common.machine_info(),
        "mode": "service" + (" quick" if args.quick else ""),
        "dialogues": len(keep),
        "imported": summary.imported,
        "import_s": round(import_s, 1),
        "specialise_s": round(seconds, 1),
        "stages_s": {k: round(v, 1) for k, v in stages.items()},
        "report": report.to_json(),
        "peak_rss_mb": round(common.peak_rss_mb(), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    path = common.write_results("fact_select_service", result, also=args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON here")
    parser.add_argument(
        "--service",
        action="store_true",
        help="instead: import half A's replies approved and run `specialise --facts` itself",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    data_dir = learning.private_kb(log)
    log(f"eval KB copied to {data_dir}")

    import numpy as np

    from support import backends
    from support.answers.fact_ranker import FEATURES
    from support.learning import fact_train
    from support.models import Chunk

    backends.serving_threads_configure()
    turns = learning.load_turns()
    half_a, half_b = learning.halves(sorted({t.dialogue for t in turns}))
    if args.quick:
        half_a, half_b = half_a[:QUICK_DIALOGUES], half_b[:QUICK_DIALOGUES]
    if args.service:
        return service_run(turns, half_a, args, log, started)
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
    missing = sum(r.route_quote and r.sample.today is None for r in rows)
    log(f"rows in {rows_s:.0f} s ({missing} quotes not found among the candidates)")

    folds = []
    pooled: dict[str, dict[str, int | None]] = {"lexical": {}, "oracle": {}, "learned": {}}
    pooled_rows: list[Row] = []
    for name, train_half, test_half in (("A", half_a, half_b), ("B", half_b, half_a)):
        train = [r for r in rows if r.dialogue in set(train_half)]
        test = [r for r in rows if r.dialogue in set(test_half)]
        t0 = time.perf_counter()
        # The training half's exchanges, as approved examples (those with a reply).
        ranker, cv = fact_train.ranker_train(
            [r.sample for r in train if r.sample.answer], embedder.dimension
        )
        train_s = time.perf_counter() - t0
        picks = {
            "lexical": {r.id: r.sample.today for r in test},
            "oracle": {r.id: oracle(r.sample) for r in test},
            "learned": {r.id: fact_train.pick(r.sample, ranker) for r in test},
        }
        for k, v in picks.items():
            pooled[k].update(v)
        pooled_rows += test
        agrees = None
        if ranker is not None:
            from support.answers import fact_ranker

            sample = test[:: max(1, len(test) // 40)]
            fact_ranker.reset()
            agrees = {"cold": product_path_agrees(sample, ranker)}
            # As a serving process starts: the training half's candidate sentences cached.
            fact_ranker.reset()
            fact_ranker.sentence_cache_fill(
                fact_train.with_sentences(ranker, [r.sample for r in train])
            )
            agrees["from_training"] = product_path_agrees(sample, ranker)
            # Every sentence of those questions cached now: the ranking's own cost.
            agrees["warm"] = product_path_agrees(sample, ranker)
            fact_ranker.reset()
        coef = None
        if ranker is not None:
            coef = dict(zip(FEATURES, np.round(ranker.coef, 3).tolist(), strict=True))
        fold = {
            "fold": name,
            "train_questions": len(train),
            "labelled": sum(fact_train.label_of(r.sample) is not None for r in train),
            "test_questions": len(test),
            "cv": cv,
            "train_s": round(train_s, 1),
            "product_path": agrees,
            "coef": coef,
            **{k: outcome(test, v) for k, v in picks.items()},
        }
        folds.append(fold)
        log(
            f"fold {name}: C {cv['chosen_c']} ({cv['per_c']}); lexical "
            f"{fold['lexical']['answer_f1']:.3f}, oracle {fold['oracle']['answer_f1']:.3f}, "
            f"learned {fold['learned']['answer_f1']:.3f} ({fold['learned']['changed_graded']} changed)"
        )
    result = {
        "machine": common.machine_info(),
        "eval": "doc2dial (IBM), Feng et al. 2020 — ../shared/eval/doc2dial",
        "mode": "quick" if args.quick else "full",
        "dialogues": len(in_run),
        "turns": len(turns),
        "min_label_f1": fact_train.MIN_LABEL_F1,
        "cs": [str(c) for c in fact_train.CS],
        "quotes_not_found": missing,
        "rows_s": round(rows_s, 1),
        "folds": folds,
        "pooled": {k: outcome(pooled_rows, v) for k, v in pooled.items()},
        "headroom": headroom(pooled_rows),
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
    room = result["headroom"]
    print(
        f"\nHeadroom (pooled, {room['graded']} graded, {room['declined']} declined; oracles read "
        "the reply):\n"
        + common.markdown_table(
            ["oracle", "answer F1"], [[k, f(v)] for k, v in room.items() if isinstance(v, float)]
        )
    )
    print(f"\npeak RSS {result['peak_rss_mb']} MiB, {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
