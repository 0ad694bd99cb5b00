"""bench/escalation.py measures an earlier commit's rules next to the shipped ones."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def test_the_baseline_rules_are_those_of_the_commit() -> None:
    from bench import escalation

    try:
        baseline = escalation.load_ruleset(escalation.BASELINE_REV)
    except (subprocess.CalledProcessError, OSError) as exc:  # no history (an exported tarball)
        pytest.skip(f"baseline commit not available: {exc}")
    assert baseline.package is not escalation.SHIPPED.package
    # A typo in a short word: missed before the latest change, found now.
    assert not baseline.request.asks_for_person("tlk to agent")
    assert escalation.SHIPPED.request.asks_for_person("tlk to agent")
    # Both decide through their own package.
    assert baseline.decide_text("talk to a human", (), baseline.thresholds(), None).escalate
