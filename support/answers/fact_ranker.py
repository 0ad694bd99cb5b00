"""The fact ranker learned from approved examples: which candidate sentence a quote quotes.

`facts_select` ranks sentences lexically. Given a promoted ranker (`manage.py specialise
--facts`, support/learning/fact_train.py), `facts_rerank` re-scores every candidate sentence of
the top passages (`facts.fact_candidates`) with a logistic regression over the lexical score,
the sentence's place, its cosine to the question and what past approved exchanges say: the
*span memory* (the past questions whose best sentence this was) and the *soft answer memory*
(how much of it the approved answers of the most similar past questions repeat). Its best
statement is quoted first (`Fact.chosen`) and joins the prompt's facts; the decline decision
does not change (docs/learning.md, "Fact selection").

The served ranker is a numbered folder under SUPPORT_DATA_DIR/fact_rankers (support/versioned.py:
CURRENT, HISTORY, LAST), swapped atomically; none promoted (or SUPPORT_FACT_RANKER off) means the
lexical ranking. Plain numpy: no model is loaded, and sentence vectors are cached by text.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ..versioned import VersionedFolders
from .facts import Candidate
from .measures import normalize_tokens
from .types import Fact
from .words import content_words

logger = logging.getLogger(__name__)

RANKER_FILE = "ranker.json"
PAST_FILE = "past.npz"
FORMAT = 1
# The soft answer memory reads the approved answers of this many most similar past questions.
NEAREST = 5
# Sentence vectors kept in memory by text (a few MB at 384 floats each).
SENTENCE_CACHE = 20_000

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
FEATURES = BASE_FEATURES + MEMORY_FEATURES


def _complete(path: Path) -> bool:
    return (path / RANKER_FILE).is_file() and (path / PAST_FILE).is_file()


FACT_RANKERS = VersionedFolders(prefix="fact-ranker-v", complete=_complete, what="fact ranker")


def sentence_key(text: str) -> str:
    """What the span memory compares sentences by: their content words."""
    return " ".join(content_words(text))


def _f1(pred: Sequence[str], ref: Sequence[str]) -> float:
    """Token F1 of normalised token lists (support.answers.measures.token_f1's rule)."""
    if not pred or not ref:
        return float(list(pred) == list(ref))
    from collections import Counter

    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


@dataclass(frozen=True, slots=True)
class PastQuestions:
    """Approved exchanges the memory features read: each question's vector, its approved
    answer, the key of its best candidate sentence ("" when none was good enough) and its
    conversation (a question never reads its own conversation's exchanges)."""

    vectors: NDArray[np.float32]  # (n, dimension)
    answers: tuple[str, ...]
    label_keys: tuple[str, ...]
    groups: tuple[str, ...]

    @classmethod
    def empty(cls, dimension: int) -> PastQuestions:
        return cls(np.zeros((0, dimension), dtype=np.float32), (), (), ())

    def __len__(self) -> int:
        return len(self.answers)


def candidate_features(
    *,
    candidates: Sequence[Candidate],
    question_vector: NDArray[np.float32],
    sentence_vectors: NDArray[np.float32],
    past: PastQuestions,
    today: int | None,
    group: str | None = None,
) -> NDArray[np.float64]:
    """(len(candidates), len(FEATURES)): what the ranker scores each candidate by. `today` is
    the candidate the lexical ranking quotes; `group` leaves out that conversation's past
    exchanges (training)."""
    n = len(candidates)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return out
    cos = sentence_vectors @ question_vector
    ranks = np.array([c.fact.rank for c in candidates])
    best_cos = int(cos.argmax())
    for i, c in enumerate(candidates):
        words = len(c.fact.text.split())
        out[i, :16] = (
            c.fact.score,
            c.fact.bonus,
            c.fact.rank,
            c.fact.rank - ranks.max(),
            float(i == today),
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
            float(i == best_cos),
        )
    if not len(past):
        return out
    allowed = np.ones(len(past), dtype=bool)
    if group is not None:
        allowed &= np.asarray(past.groups) != group
    sims = past.vectors @ question_vector
    keys = np.asarray(past.label_keys)
    for i, c in enumerate(candidates):
        same = (keys == sentence_key(c.fact.text)) & allowed
        if same.any():
            out[i, 16] = float(sims[same].max())
            out[i, 17] = math.log1p(int(same.sum()))
    mem = out[:, 16]
    out[:, 18] = (mem == mem.max()) & (mem > 0)
    masked = np.where(allowed, sims, -1.0)
    near = [j for j in np.argsort(-masked)[:NEAREST] if allowed[j]]
    if near:
        weights = np.clip(sims[near], 0.0, None)
        answers = [normalize_tokens(past.answers[j]) for j in near]
        for i, c in enumerate(candidates):
            tokens = normalize_tokens(c.fact.text)
            f1s = np.array([_f1(tokens, a) for a in answers])
            out[i, 19] = float(np.max(f1s * weights))
            out[i, 20] = float(f1s[0])
        soft = out[:, 19]
        out[:, 21] = soft == soft.max()
    return out


@dataclass(frozen=True, slots=True)
class FactRanker:
    """A standardised logistic regression over FEATURES, and the past exchanges it reads."""

    mean: NDArray[np.float64]
    scale: NDArray[np.float64]
    coef: NDArray[np.float64]
    intercept: float
    past: PastQuestions
    meta: dict[str, Any]
    # The candidate sentences met in training and their vectors: a serving process starts with
    # them cached (embedding a chunk's sentences at its first question costs most of the time).
    sentences: tuple[str, ...] = ()
    sentence_matrix: NDArray[np.float32] | None = None

    def scores(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        scaled: NDArray[np.float64] = (features - self.mean) / self.scale
        return scaled @ self.coef + self.intercept

    def choose(self, features: NDArray[np.float64], texts: Sequence[str]) -> int:
        """The best-scored candidate; questions only when every candidate is one (as
        extractive_answer quotes)."""
        scores = self.scores(features)
        statements = [i for i, t in enumerate(texts) if not t.rstrip().endswith("?")]
        pool = statements or list(range(len(texts)))
        return max(pool, key=lambda i: (scores[i], -i))


def ranker_save(ranker: FactRanker, folder: Path) -> None:
    """Write the ranker's files into `folder` (a staging folder: `install` renames it)."""
    folder.mkdir(parents=True, exist_ok=True)
    dimension = ranker.past.vectors.shape[1]
    matrix = ranker.sentence_matrix
    np.savez(
        folder / PAST_FILE,
        vectors=ranker.past.vectors.astype(np.float32),
        sentences=(
            matrix.astype(np.float32)
            if matrix is not None
            else np.zeros((0, dimension), dtype=np.float32)
        ),
    )
    payload = {
        "format": FORMAT,
        "features": list(FEATURES),
        "mean": ranker.mean.tolist(),
        "scale": ranker.scale.tolist(),
        "coef": ranker.coef.tolist(),
        "intercept": ranker.intercept,
        "answers": list(ranker.past.answers),
        "label_keys": list(ranker.past.label_keys),
        "groups": list(ranker.past.groups),
        "meta": ranker.meta,
        "sentences": list(ranker.sentences if ranker.sentence_matrix is not None else ()),
    }
    (folder / RANKER_FILE).write_text(json.dumps(payload), encoding="utf-8")


def ranker_load(folder: Path) -> FactRanker:
    payload = json.loads((folder / RANKER_FILE).read_text(encoding="utf-8"))
    if payload.get("format") != FORMAT or tuple(payload["features"]) != FEATURES:
        raise ValueError(f"{folder} holds a fact ranker of another format")
    with np.load(folder / PAST_FILE) as arrays:
        vectors = arrays["vectors"].astype(np.float32)
        matrix = arrays["sentences"].astype(np.float32)
    sentences = tuple(payload.get("sentences", ()))
    if len(sentences) != len(matrix):
        raise ValueError(f"{folder}: {len(sentences)} sentences, {len(matrix)} vectors")
    return FactRanker(
        mean=np.asarray(payload["mean"], dtype=np.float64),
        scale=np.asarray(payload["scale"], dtype=np.float64),
        coef=np.asarray(payload["coef"], dtype=np.float64),
        intercept=float(payload["intercept"]),
        past=PastQuestions(
            vectors,
            tuple(payload["answers"]),
            tuple(payload["label_keys"]),
            tuple(payload["groups"]),
        ),
        meta=payload.get("meta", {}),
        sentences=sentences,
        sentence_matrix=matrix,
    )


# -- serving ------------------------------------------------------------------------------------
_lock = threading.Lock()
_served: tuple[Path, int, FactRanker] | None = None
_sentences: OrderedDict[str, NDArray[np.float32]] = OrderedDict()


def served_ranker(root: Path) -> FactRanker | None:
    """The promoted ranker under `root` (None: the lexical ranking), reloaded when CURRENT
    changes (one small read per call)."""
    global _served
    version = FACT_RANKERS.current(root)
    if version is None:
        return None
    cached = _served
    if cached is not None and cached[0] == root and cached[1] == version:
        return cached[2]
    with _lock:
        if _served is None or _served[:2] != (root, version):
            try:
                loaded = ranker_load(FACT_RANKERS.folder(root, version))
            except (OSError, ValueError, KeyError) as exc:
                # A damaged or foreign folder must not stop answers: the lexical ranking.
                logger.warning("fact ranker v%s not loaded (%s): lexical ranking", version, exc)
                return None
            _served = (root, version, loaded)
            _cache_fill(loaded)
        return _served[2]


def sentence_cache_fill(ranker: FactRanker) -> None:
    """Cache the sentence vectors the ranker carries (its training's candidates)."""
    with _lock:
        _cache_fill(ranker)


def _cache_fill(ranker: FactRanker) -> None:
    if ranker.sentence_matrix is None:
        return
    pairs = zip(ranker.sentences, ranker.sentence_matrix, strict=True)
    for text, vector in list(pairs)[-SENTENCE_CACHE:]:
        _sentences[text] = vector
    while len(_sentences) > SENTENCE_CACHE:
        _sentences.popitem(last=False)


def sentence_vectors(
    texts: Sequence[str], encode: Callable[[list[str]], NDArray[np.float32]]
) -> NDArray[np.float32]:
    """The texts' sentence vectors, the uncached ones encoded in one call."""
    with _lock:
        missing = [t for t in dict.fromkeys(texts) if t not in _sentences]
    if missing:
        fresh = encode(missing)
        with _lock:
            for text, vector in zip(missing, fresh, strict=True):
                _sentences[text] = vector
            while len(_sentences) > SENTENCE_CACHE:
                _sentences.popitem(last=False)
    with _lock:
        cached = {t: _sentences.get(t) for t in texts}
    found = {t: v for t, v in cached.items() if v is not None}
    again = [t for t, v in cached.items() if v is None]
    if again:  # evicted meanwhile: encode those again
        found.update(zip(again, encode(again), strict=True))
    return np.stack([found[t] for t in texts]).astype(np.float32)


def reset() -> None:
    """Forget the served ranker and the sentence vectors (tests, a new embedder)."""
    global _served
    with _lock:
        _served = None
        _sentences.clear()


def facts_rerank(
    *,
    facts: Sequence[Fact],
    candidates: Sequence[Candidate],
    ranker: FactRanker,
    question_vector: NDArray[np.float32],
    encode: Callable[[list[str]], NDArray[np.float32]],
    max_facts: int,
) -> tuple[Fact, ...]:
    """`facts` with the ranker's pick among the candidates marked `chosen` (quoted first): a
    fact already, or put in place of the lowest-ranked one (passage and reading order kept)."""
    vector = np.asarray(question_vector, dtype=np.float32).reshape(-1)
    if not candidates or (len(ranker.past) and ranker.past.vectors.shape[1] != vector.shape[0]):
        # Another embedder than the one it was trained with: its memories cannot be read.
        return tuple(facts)
    question_vector = vector
    texts = [c.fact.text for c in candidates]
    today = _today(facts, candidates)
    features = candidate_features(
        candidates=candidates,
        question_vector=question_vector,
        sentence_vectors=sentence_vectors(texts, encode),
        past=ranker.past,
        today=today,
    )
    pick = candidates[ranker.choose(features, texts)].fact
    chosen = replace(pick, chosen=True)
    kept = [f for f in facts if f.text != pick.text]
    if len(kept) >= max_facts:
        kept.remove(min(kept, key=lambda f: f.rank))
    order = {c.fact.text: i for i, c in enumerate(candidates)}
    return tuple(sorted([*kept, chosen], key=lambda f: order.get(f.text, len(order))))


def _today(facts: Sequence[Fact], candidates: Sequence[Candidate]) -> int | None:
    """The candidate the lexical ranking quotes (extractive_answer's pick)."""
    statements = [f for f in facts if not f.text.rstrip().endswith("?")] or list(facts)
    if not statements:
        return None
    best = max(statements, key=lambda f: f.rank)
    return next((i for i, c in enumerate(candidates) if c.fact.text == best.text), None)
