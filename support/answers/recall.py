"""Stage 3, recall (answer memory): an approved answer for a question asked before.

When the customer's question matches an approved example's question closely and retrieval found
that example's grounding chunk among the passages it would cite
(support.learning.answer_memory), the approved answer is the basis of the reply: it is checked
against that chunk like a model's answer (every sentence supported, its claims holding in one
sentence of the chunk: support.answers.grounding) and, if it holds, streamed and cited to the
chunk instead of generating. A person approved the words, but the knowledge base may have
changed since, and an inferred grounding is wrong for about one answer in five
(docs/learning.md): the check is what keeps a stale or misgrounded answer from being repeated.
An answer that fails it is dropped and the pipeline goes on as without memory.

Declines stay declines: recall runs only after `decide` found that the knowledge base answers
the question (a question declined for low retrieval confidence, an unknown product name or no
passages is never answered from memory). A `no_facts` decline, where retrieval was confident but
no single sentence holds half of the question's words, may be answered: the approved answer
then says what the sentences could not, and still has to pass the check against the chunk.

A follow-up searched with the turn before it in the query (retrieve.py) is not matched: the
keys are questions asked on their own.
"""

from __future__ import annotations

from ..learning.answer_memory import learned_answer_find
from .facts import MAX_PASSAGES
from .grounding import grounding_check
from .reasons import AnswerReason
from .types import Decision, Fact, Question, Recall, Retrieved, Route

# The example's chunk must be among the passages the facts come from (and citations point at).
RECALL_PASSAGES = MAX_PASSAGES


def may_recall(decision: Decision, retrieved: Retrieved, *, min_confidence: float) -> bool:
    """The knowledge base answers the question, as far as `decide` can tell: it was not
    declined, or declined only for want of a covering sentence while retrieval was confident."""
    if decision.route is not Route.DECLINE:
        return True
    return (
        decision.reason is AnswerReason.NO_FACTS and retrieved.search.confidence >= min_confidence
    )


def recall(
    question: Question,
    retrieved: Retrieved,
    decision: Decision,
    *,
    min_similarity: float,
    min_confidence: float,
) -> Recall | None:
    """The approved answer matching the question, checked against its chunk (accepted or
    not), or None when no example matches or the question may not be answered from memory."""
    search = retrieved.search
    if search.query != question.text or not may_recall(
        decision, retrieved, min_confidence=min_confidence
    ):
        return None
    found = learned_answer_find(search=search, min_similarity=min_similarity, top=RECALL_PASSAGES)
    if found is None:
        return None
    fact = Fact(n=found.match.rank, passage=found.passage, text=found.passage.text, score=1.0)
    return Recall(
        example_id=found.match.example_id,
        question=found.question,
        answer=found.answer,
        similarity=found.match.similarity,
        fact=fact,
        grounding=grounding_check(found.answer, [fact], question.text),
    )
