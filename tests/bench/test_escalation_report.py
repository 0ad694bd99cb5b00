"""The escalation section's register and before/after parts (bench/_escalation_report.py)."""

from __future__ import annotations

from typing import Any

from bench import _escalation_report as escalation_report


def _register(recall: float, found: int) -> dict[str, Any]:
    request = {
        "precision": 1.0,
        "precision_ci95": [0.77, 1.0],
        "recall": recall,
        "recall_ci95": [0.62, 0.96],
        "found": found,
        "wanted": 15,
        "fired_wrong": 0,
    }
    return {
        "seed": 7,
        "folds": 5,
        "split": {"tune": {"none": 900, "person": 35}, "held_out": {"none": 400, "person": 15}},
        "held_out": {"customer_request": request, "frustration": request, "escalated": request},
        "tune": {"customer_request": request},
        "cv_threshold_fit": {
            "folds": [{"fitted": {"request_similarity": 2.0, "request_margin": 0.2}}],
            "spread": {
                "customer_request": {
                    "precision": {"mean": 1.0, "sd": 0.0},
                    "recall": {"mean": recall, "sd": 0.1},
                }
            },
            "fitted_on_whole_tune_part": {"request_similarity": 2.0, "request_margin": 0.2},
        },
    }


def test_the_register_and_before_after_are_rendered(results: dict[str, Any]) -> None:
    esc = results["scripts"]["escalation"]["result"]
    esc["register"] = _register(0.867, 13)
    esc["baseline"] = {
        "rev": "785ba182248a7c4a44d1",
        "results": esc["results"],
        "doc2dial_questions": {"escalated": 1},
        "register": _register(0.733, 11),
    }
    page = "\n".join(escalation_report.section(esc))
    assert "### Real customer register" in page
    assert (
        "| held-out | `customer_request` | 1.000 (0.77–1.00) | 0.867 (0.62–0.96) | 13 / 15 |"
        in page
    )
    assert "before (`785ba182248a`)" in page
    assert (
        "| HINT3 held-out part, `customer_request` | 1.000 (0.77–1.00) / 0.733 (0.62–0.96) | "
        "1.000 (0.77–1.00) / 0.867 (0.62–0.96) |"
    ) in page
    assert "left-out folds of the threshold fit | 1.000 / 0.733 | 1.000 / 0.867 |" in page


def test_a_missing_baseline_says_why(results: dict[str, Any]) -> None:
    esc = results["scripts"]["escalation"]["result"]
    esc["baseline"] = {"rev": "abc", "skipped": "CalledProcessError: not a git repository"}
    page = "\n".join(escalation_report.section(esc))
    assert "Before/after: not measured (CalledProcessError: not a git repository)." in page
    assert "### Real customer register" not in page  # no register in this results file


def test_a_rerun_of_the_script_alone_says_so(results: dict[str, Any]) -> None:
    esc = results["scripts"]["escalation"]["result"]
    results["git"] = {"commit": "aaaaaaaaaaaa", "dirty": False}
    esc["date"] = "2026-12-02T21:00:00+00:00"
    esc["git"] = {"commit": "bbbbbbbbbbbb", "dirty": False}
    note = escalation_report.provenance(results, esc, "bench/results/escalation-x.json")
    assert "Measured outside the suite run above" in note[0]
    assert (
        "on 2026-12-02 at commit `bbbbbbbbbbbb`, results `bench/results/escalation-x.json`"
        in (note[0])
    )
    esc["git"] = {"commit": "aaaaaaaaaaaa", "dirty": False}
    assert escalation_report.provenance(results, esc, "r.json") == []


def test_the_benchmarks_page_has_the_register_section(results: dict[str, Any]) -> None:
    from bench import _report

    esc = results["scripts"]["escalation"]["result"]
    esc["register"] = _register(0.867, 13)
    page = _report.render_benchmarks(results, results_file="bench/results/x.json")
    assert "## Escalation (`bench/escalation.py`)" in page
    assert "### Real customer register" in page
    assert "Measured outside the suite run" not in page  # same commit as the suite run
