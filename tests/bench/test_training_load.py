"""bench/training_load.py: the order of the answers, the summary, the import lines, the section."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Any

from bench import _report as report
from bench import training_load as tl


def test_schedule_pairs_every_question_and_never_repeats_one_in_a_row() -> None:
    questions = tl.QUESTIONS[:4]
    order = tl.schedule(questions, rounds=2)
    assert len(order) == 2 * 2 * len(questions)
    # Once idle and once loaded per question and round.
    assert Counter((r, q, p) for r, q, p in order) == {
        (r, q, p): 1 for r in range(2) for q in questions for p in ("idle", "loaded")
    }
    # The model would reuse a repeated question's whole prompt.
    assert all(a[1] != b[1] for a, b in pairwise(order))
    # ABBA: as many idle answers come first in a pair of neighbours as loaded ones.
    phases = [p for _, _, p in order]
    assert phases[:4] == ["idle", "loaded", "loaded", "idle"]
    assert phases.count("idle") == phases.count("loaded")


def _row(question: str, phase: str, ttft: float, **extra: Any) -> dict[str, Any]:
    row = {
        "question": question,
        "phase": phase,
        "round": 0,
        "generated": True,
        "ttft_s": ttft,
        "trainer_alive": True,
        "trainer_cores": 0.9 if phase == "loaded" else 0.0,
        "loadavg_1m": 2.5,
    }
    return row | extra


def test_summary_ratios_and_what_is_not_counted() -> None:
    rows = [
        _row("a", "idle", 1.0),
        _row("a", "loaded", 1.2),
        _row("b", "loaded", 1.6),
        _row("b", "idle", 0.8),
        # Not counted: an answer the model did not write, a loaded one after the trainer ended.
        _row("c", "idle", None, generated=False),
        _row("c", "loaded", 9.0, trainer_alive=False),
    ]
    s = tl.summarize(rows)
    assert (s["answers"], s["counted"]) == (6, 4)
    assert (s["idle"]["n"], s["loaded"]["n"]) == (2, 2)
    assert s["ratio_p50"] == s["loaded"]["p50_s"] / s["idle"]["p50_s"]
    assert round(s["pair_ratio_median"], 3) == round((1.2 + 2.0) / 2, 3)
    assert s["trainer_cores_loaded"] == 0.9 and s["trainer_cores_idle"] == 0.0


def test_examples_name_their_demo_page() -> None:
    lines = tl.demo_examples()
    assert len(lines) >= 16  # enough pairs to train on after the held-back share
    assert len({x["id"] for x in lines}) == len(lines)
    assert all(x["document"].endswith(".md") and x["answer"] for x in lines)


def test_section(results: dict[str, Any]) -> None:
    results["scripts"]["training_load"] = {
        "status": "ok",
        "result": {
            "trainer": "retrieval",
            "trainer_niceness": 10,
            "trainer_threads": 1,
            "examples": 40,
            "questions": ["a", "b"],
            "rounds": 2,
            "max_answer_tokens": 48,
            "target_ratio": 1.5,
            "target_met": True,
            "machine": {"cpus": 2},
            "summary": tl.summarize(
                [_row("a", "idle", 1.0), _row("a", "loaded", 1.2), _row("b", "loaded", 1.1)]
            ),
        },
    }
    page = report.render_benchmarks(results, results_file="r.json")
    section = page.split("## Answering while a specialisation trains", 1)[1].split("\n## ", 1)[0]
    assert "| while training | 2 | 1.15 s |" in section
    assert "≤ 1.5× idle: met" in section
    results["scripts"].pop("training_load")
    page = report.render_benchmarks(results, results_file="r.json")
    section = page.split("## Answering while a specialisation trains", 1)[1].split("\n## ", 1)[0]
    assert "Not run in this suite run." in section
