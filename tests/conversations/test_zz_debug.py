import os
import pytest
from support.retrieval import passages_search
from support.answers.facts import fact_candidates, facts_select
from support.answers.pipeline import answer_compose

pytestmark = [pytest.mark.django_db(transaction=True)]
QS = os.environ.get("DBG_QS", "Do I need to be at home for the activation?").split("|")


def test_debug(demo_env):
    for q in QS:
        r = passages_search(query=q, k=5)
        print(f"\n=== {q}  conf {r.confidence:.3f}")
        for p in r.passages:
            print(f"  {p.rank}. {p.score:.3f} d{p.dense_score:.3f} l{p.lexical_score:.2f} {p.heading}")
        for c in fact_candidates(question=q, passages=r.passages):
            print(f"   cand {c.fact.score:.2f} b{c.fact.bonus:.2f} el{int(c.eligible)} sh{c.shared} h{c.heading} {c.fact.text[:90]}")
        print("  facts:", [f.text[:50] for f in facts_select(question=q, passages=r.passages)])
        d = answer_compose(question=q, generate=False)
        print("  -> nogen", d.action, d.reason, d.text[:200])
        d = answer_compose(question=q, generate=True)
        print("  -> gen", d.action, d.reason, d.text[:200])
