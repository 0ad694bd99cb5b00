"""Answer memory (docs/learning.md, "Answer memory"): an approved answer as the reply to a new
question that matches its question closely, when retrieval finds its grounding chunk too.

The keys are the question memory's (support.learning.memory: the questions of approved,
grounded, not held-back examples, embedded with the retriever's model, published with the index
version). A match needs two independent pieces of evidence:

- the question: the most similar key's dense cosine to the query (the same embedding the search
  made) is at least the threshold (SUPPORT_ANSWER_MEMORY_MIN_SIMILARITY, chosen on dev data by
  bench/learning.py);
- the knowledge base: one of that key's grounding chunks is among the first passages as the
  chunks' own texts rank them (the search without question-memory keys: with them, the key
  itself would have lifted its chunk, and the evidence would be circular), and among the
  passages the search returned, to be cited.

Only the most similar key is considered: when its chunk is not among the passages, retrieval and
the example disagree about what is asked, and a less similar key is weaker evidence still.
Whether the knowledge base answers the question at all stays the answer pipeline's decision
(support.answers.recall): answer memory never answers a question the pipeline declines as
off-topic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..models_learning import Example
from ..retrieval import Passage, SearchResult
from ..search.memory import QuestionMemory


@dataclass(frozen=True, slots=True)
class MemoryMatch:
    """The key that matched and the passage retrieval found for it."""

    key: int
    example_id: int
    similarity: float  # dense cosine of the query to the example's question
    chunk_id: int
    rank: int  # 1-based rank of that chunk among the passages


@dataclass(frozen=True, slots=True)
class LearnedAnswer:
    """An approved example's answer for a matched question."""

    match: MemoryMatch
    question: str  # the example's question
    answer: str
    passage: Passage  # the grounding chunk as retrieved (what the answer is cited to)


def answer_match(
    *,
    memory: QuestionMemory | None,
    query_vector: NDArray[np.float32] | None,
    passages: Sequence[Passage],
    min_similarity: float,
    top: int,
    own_ranking: Sequence[int] = (),
) -> MemoryMatch | None:
    """The most similar key, when its cosine is at least `min_similarity` and one of its
    grounding chunks is among the first `top` of `own_ranking` (the chunk ids as their own
    texts rank them; empty: the passages' order) and among the passages (the best-ranked such
    chunk); else None."""
    if memory is None or query_vector is None or not len(memory) or not passages:
        return None
    nearest = memory.nearest(query_vector, min_similarity=min_similarity)
    if not nearest:
        return None
    key, similarity = nearest[0]
    chunks = set(memory.key_chunks(key).tolist())
    own = list(own_ranking) or [p.chunk_id for p in passages]
    found = chunks & set(own[:top])
    for rank, passage in enumerate(passages, start=1):
        if passage.chunk_id in found:
            return MemoryMatch(
                key=key,
                example_id=int(memory.example_ids[key]),
                similarity=similarity,
                chunk_id=passage.chunk_id,
                rank=rank,
            )
    return None


def learned_answer_find(
    *, search: SearchResult, min_similarity: float, top: int
) -> LearnedAnswer | None:
    """The approved answer for the search's query (`answer_match` over the question memory of
    the index version searched), read from the database: an example rejected or no longer
    approved since the version was published answers nothing, and an edited answer counts at
    once."""
    match = answer_match(
        memory=search.memory,
        query_vector=search.query_vector,
        passages=search.passages,
        min_similarity=min_similarity,
        top=top,
        own_ranking=search.own_ranking,
    )
    if match is None:
        return None
    row = (
        Example.objects.filter(
            pk=match.example_id,
            state=Example.State.APPROVED,
            knowledge_gap=False,
            held_back=False,
        )
        .values_list("question", "answer")
        .first()
    )
    if row is None or not row[1].strip():
        return None
    passage = next(p for p in search.passages if p.chunk_id == match.chunk_id)
    return LearnedAnswer(match=match, question=row[0], answer=row[1].strip(), passage=passage)
