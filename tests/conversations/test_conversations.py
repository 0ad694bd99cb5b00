"""Every scripted conversation (tests/conversations/cases.py) passes through the real chat
path with the real models: the facts each reply must state, and never the ones it must not.

One test plays every case over one demo knowledge base (ingesting it per case would cost more
than the conversations). `KNOWN_FAILING` lists the cases the bot does not pass yet, each with
the reason (issue 12); such a case that starts passing fails this test until it is taken off
the list, so the list can only shrink with the bot's real behaviour.
"""

from __future__ import annotations

from typing import Any

import pytest

from .cases import CASES
from .runner import case_run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

KNOWN_FAILING: dict[str, str] = {
    "relocating": "declined: confidence 0.07; 'relocating' shares no word with 'Moving house' "
    "and the top passage is 'Changing your plan'; with the paraphrase bridge on (off by "
    "default) 'Moving house' ranks first, but the confidence stays at most 0.29 and no "
    "sentence holds half of the question's words (docs/generation.md, 'Paraphrase bridge')",
    # A customer's own wording, tried by hand (2026-12-03): the knowledge base covers each.
    "money back": "declined: confidence 0.15 (top passage 'Refunds' right); 'money back' and "
    "'two weeks' are not 'refund' and '14 days' to the lexical side",
    "charged each month": "quotes the part-month charge sentence: it shares 'charge' and "
    "'month'; 'Bills are issued on the 1st ... the 15th' says 'billed', not 'charged'",
    "activation time": "'Activating your line' is not retrieved ('activation' is not "
    "'activated' to the plural stemmer); quotes the refund sentence ('within 14 days of "
    "activation')",
    # A customer's own wording, tried by hand with `ask` (2026-12-04): the knowledge base covers
    # each; declined at a retrieval confidence under 0.3 (measured before the dense rescue, which
    # rescues none of them: no sentence holds half of the question's words).
    "line goes live": "declined: confidence 0.13; 'goes live' is not 'activated'",
    "no coverage at the new address": "declined: confidence 0.09; 'don't cover my new place' "
    "is not 'cannot provide service at the new address'",
    "router not returned": "declined: confidence 0.15; 'send the router back' is not 'return'",
    "fastest plan": "declined: confidence 0.14; 'fastest' shares no word with the FAQ row",
    "router hot": "declined: confidence 0.10; 'very hot' is not 'overheating'",
    "overpayment": "declined: confidence 0.10; 'overpaid' is not 'overpayments'",
    "fair use": "declined (no_facts, confidence 0.34): 'fair use policy' against 'fair-use "
    "cap'; no sentence holds half of the question's words",
    "router setup": "declined: confidence 0.11; 'set up' is not 'installing'",
    "paypal": "declined: confidence 0.23; 'paypal' is a word the knowledge base lacks (the "
    "right answer lists the ways to pay, which PayPal is not among)",
    "upgrade price": "declined: confidence 0.06; 'cost more' is not 'the price changes'",
    "our phone number": "answered with the Home Phone FAQ row ('Add your old number ...'): the "
    "question asks for a number no sentence states, and nothing in decide tells that apart",
}


async def test_scripted_conversations(
    demo_env: Any,
    conversations_report: list[dict[str, Any]],
    conversations_only: set[str] | None,
) -> None:
    failed: dict[str, str] = {}
    cases = [c for c in CASES if conversations_only is None or c.name in conversations_only]
    for case in cases:
        result = await case_run(case, demo_env)
        conversations_report.append(
            {
                "case": case.name,
                "passed": result.passed,
                "turns": [
                    {
                        "customer": t.turn.customer,
                        "expect": t.turn.expect,
                        "outcome": t.outcome,
                        "text": t.text,
                        "problems": t.problems,
                    }
                    for t in result.turns
                ],
            }
        )
        if not result.passed:
            failed[case.name] = result.describe()
    unexpected = [failed[n] for n in failed if n not in KNOWN_FAILING]
    fixed = [n for n in KNOWN_FAILING if n not in failed and any(c.name == n for c in cases)]
    assert not unexpected, "\n".join(unexpected)
    assert not fixed, f"these cases pass now; take them off KNOWN_FAILING: {fixed}"
