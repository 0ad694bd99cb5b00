"""docs/benchmarks.md and the README headline rendered from a fixture results file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import _report as report

README = """# Product

Intro line.

## Quick start

Run it.

## More
"""


def test_benchmarks_page_shows_figures_baselines_and_ratios(results: dict[str, Any]) -> None:
    page = report.render_benchmarks(
        results, results_file="bench/results/x.json", images=["recall_at_k.png"]
    )
    assert page.startswith("# Benchmarks\n")
    assert "bench/results/x.json" in page
    # machine and versions
    assert "AMD EPYC" in page and "24.0 GiB" in page and "30.0 GB/s with 1 thread" in page
    assert "| torch |" in page and "not installed" in page
    # retrieval: hybrid row in bold, raw FAISS baseline and ratio
    assert "| **hybrid (product)** | **0.530** | **0.760** |" in page
    assert "×80.0" in page  # search core 8 ms vs raw FAISS 0.1 ms
    # generation: pipeline vs raw and the ceiling
    assert "TTFT ×0.83, rate ×1.25" in page
    assert "300 tokens/s (one thread)" in page
    # only the plots that exist are linked
    assert "![recall@k for k = 1..10](img/recall_at_k.png)" in page
    assert "tokens_per_s.png" not in page
    # cost and the commercial comparison
    assert "$0.99 per resolution" in page and "looked up" in page
    assert "150.00 CPU-seconds per answered question" in page
    # skipped things say why
    assert "llama.cpp backend was skipped: llama-cpp-python is not installed" in page
    assert "full suite only" in page
    assert "No answer was lost at any level." in page


def test_empty_results_render_without_numbers() -> None:
    page = report.render_benchmarks({}, results_file="r.json")
    assert "# Benchmarks" in page
    assert page.count("Not run in this suite run.") >= 5
    assert "No figures" in page


def test_failed_script_is_reported(results: dict[str, Any]) -> None:
    results["scripts"]["answers"] = {"status": "timeout", "reason": "stopped after 960 s"}
    page = report.render_benchmarks(results, results_file="r.json")
    assert "the script timeout: stopped after 960 s" in page
    assert "**timeout**" in page


def test_headline_rows(results: dict[str, Any]) -> None:
    rows = {
        figure.split(" (")[0]: (value, base)
        for figure, value, base in report.headline_rows(results)
    }
    value, base = rows["Compute cost per answered question"]
    # 150 CPU-s per answer at $0.0504 per vCPU-hour = $0.0021.
    assert value.startswith("**$0.0021**")
    assert base.startswith("Intercom Fin: $0.99 per resolution, **471×** as much")
    assert rows["Retrieval recall@5"][0] == "0.760"
    assert "target" in rows["Escalation precision / recall"][1]


def test_money_and_number_formats() -> None:
    assert report.usd(0.000028) == "$0.000028"
    assert report.usd(0.0504) == "$0.050"
    assert report.usd(0.99) == "$0.99"
    assert report.usd(1234.5) == "$1,234.50"
    assert report.times(35357.1) == "×35,357"
    assert report.times(1.254) == "×1.25"
    assert report.num(None) == "—"
    assert report.pct(0.115, 1) == "11.5 %"


def test_readme_section_is_inserted_once_and_replaced(results: dict[str, Any]) -> None:
    section = report.readme_section(results, "bench/results/x.json")
    first = report.update_readme(README, section)
    assert first.index("## Headline figures") < first.index("## Quick start")
    assert first.startswith("# Product\n\nIntro line.\n\n" + report.HEADLINE_START)
    assert first.endswith("## Quick start\n\nRun it.\n\n## More\n")
    assert report.update_readme(first, section) == first
    changed = report.update_readme(first, section.replace("0.760", "0.999"))
    assert "0.999" in changed and changed.count(report.HEADLINE_START) == 1
    assert changed.replace("0.999", "0.760") == first


def test_readme_without_anchor_gets_the_section_at_the_end(results: dict[str, Any]) -> None:
    out = report.update_readme("# Only a title\n", report.readme_section(results, "r.json"))
    assert out.startswith("# Only a title\n\n" + report.HEADLINE_START)


def test_real_readme_keeps_everything_else(results: dict[str, Any]) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    out = report.update_readme(readme, report.readme_section(results, "r.json"))
    start, end = out.index(report.HEADLINE_START), out.index(report.HEADLINE_END)
    rest = out[:start] + out[end + len(report.HEADLINE_END) :]
    if report.HEADLINE_START in readme:
        s, e = readme.index(report.HEADLINE_START), readme.index(report.HEADLINE_END)
        readme = readme[:s] + readme[e + len(report.HEADLINE_END) :]
    assert rest.replace("\n", "") == readme.replace("\n", "")


def test_stored_results_of_earlier_runs_render() -> None:
    """The renderer reads the real key names: feed it the per-script files in bench/results."""
    stored = Path(__file__).resolve().parents[2] / "bench" / "results"
    scripts: dict[str, Any] = {}
    for name, pattern in (
        ("retrieval", "retrieval-*.json"),
        ("retrieval_tune", "retrieval_tune.json"),
        ("escalation", "escalation-*.json"),
        ("chat_load", "chat_load-*.json"),
        ("generation", "generation-*.json"),
        ("answers", "answers-*.json"),
    ):
        files = sorted(stored.glob(pattern))
        if files:
            result = json.loads(files[-1].read_text(encoding="utf-8"))
            scripts[name] = {"status": "ok", "args": [], "result": result}
    if not scripts:
        pytest.skip("no stored results")
    page = report.render_benchmarks({"scripts": scripts}, results_file="r.json")
    assert "Traceback" not in page
    for name in scripts:
        assert f"`{name}`" in page


def _warmup_start(mode: str, first: float, warm: Sequence[float]) -> dict[str, Any]:
    def answer(ttft: float) -> dict[str, Any]:
        return {"ttft_s": ttft, "model_ttft_s": ttft / 2, "retrieval_s": 0.1, "generated": True}

    parts = {"embedder": {"s": 4.0, "ok": True}, "chat_model": {"s": 2.0, "ok": True}}
    return {
        "mode": mode,
        "setup_s": 3.0,
        "ready_s": 3.0 if mode == "off" else 9.0,
        "warm_up": None if mode == "off" else {"ok": True, "total_s": 6.0, "parts": parts},
        "first": answer(first),
        "warm": [answer(t) for t in warm],
    }


def test_warmup_section_and_headline(results: dict[str, Any]) -> None:
    from bench import warmup

    rows = {
        "off": [_warmup_start("off", 12.0, [1.0, 2.0, 3.0]), _warmup_start("off", 8.0, [2.0])],
        "on": [_warmup_start("on", 2.0, [1.0, 1.0]), _warmup_start("on", 3.0, [1.0])],
    }
    summary = {mode: warmup.summarize(r) for mode, r in rows.items()}
    # Per start: 12 / 2 = 6 and 8 / 2 = 4 (off); 2 / 1 and 3 / 1 (on); medians over starts.
    assert summary["off"]["ratio"] == 5.0 and summary["off"]["ratio_max"] == 6.0
    assert summary["on"]["ratio"] == 2.5 and summary["on"]["first_ttft_s"] == 2.5
    assert summary["on"]["warm_up_parts_s"] == {"embedder": 4.0, "chat_model": 2.0}
    results["scripts"]["warmup"] = {
        "status": "ok",
        "result": {
            "summary": summary,
            "first_question": "How do I reset my router?",
            "warm_questions": ["a", "b"],
            "target_ratio": 2.0,
            "target_met": False,
            "machine": {"cpus": 2, "loadavg_1m": 0.4},
        },
    }
    page = report.render_benchmarks(results, results_file="r.json")
    assert "## First answer after a start (`bench/warmup.py`)" in page
    assert "| on (asked when warm) | 2 | 2.50 s | 0.10 s | 1.00 s | ×2.5 (×3.0) |" in page
    assert "6.0 s: embedder 4.0 s, chat_model 2.0 s" in page
    assert "within 2.0× a warm one: **not met** (×2.5)" in page
    figures = {figure: value for figure, value, _ in report.headline_rows(results)}
    value = figures["First answer after a start: time to first token (model warm-up on)"]
    assert value == "2.50 s (×2.5 a warm answer)"


def test_warmup_section_says_why_it_is_missing(results: dict[str, Any]) -> None:
    results["scripts"].pop("warmup", None)
    page = report.render_benchmarks(results, results_file="r.json")
    section = page.split("## First answer after a start", 1)[1].split("\n## ", 1)[0]
    assert "Not run in this suite run." in section


def test_reports_section_and_headline(results: dict[str, Any]) -> None:
    run = {
        "database": "postgresql",
        "conversations": 100_000,
        "seed_s": 180.0,
        "fill_s": 40.5,
        "fill_per_day_s": 1.35,
        "day_refresh_s": 1.2,
        "report_s": 0.052,
        "command_s": 3.4,
        "django_start_s": 3.0,
        "beat_run_s": 6.0,
        "beat_days": 7,
        "metrics_first_scrape_s": 2.5,
        "metrics_next_scrape_s": 0.02,
    }
    results["scripts"]["reports"] = {
        "status": "ok",
        "result": {
            "conversations": 100_000,
            "days": 30,
            "target_report_s": 1.0,
            "machine": {"cpus": 2, "loadavg_1m": 5.9},
            "sizes": [20_000, 100_000],
            "runs": [
                {**run, "conversations": 20_000, "seed_s": 30.0, "report_s": 0.03},
                run,
                {"database": "sqlite", "error": "boom"},
            ],
        },
    }
    page = report.render_benchmarks(results, results_file="r.json")
    assert "## Reports (`bench/reports.py`)" in page
    assert "| postgresql | 100,000 | 180 s | 40.5 s (1.35 s/day) | 1.20 s | 52 ms |" in page
    assert "| postgresql | 20,000 | 30 s |" in page
    assert "| sqlite |  | failed (see the results file) |" in page
    # The target is stated for the largest PostgreSQL run.
    assert "a month of 100,000 conversations in under 1 s on PostgreSQL: met (52 ms)" in page
    assert "seeds 20,000 and 100,000 conversations" in page
    figures = {figure: value for figure, value, _ in report.headline_rows(results)}
    assert figures["Report of a month (100,000 conversations, PostgreSQL)"] == "52 ms"
    results["scripts"].pop("reports")
    page = report.render_benchmarks(results, results_file="r.json")
    section = page.split("## Reports (`bench/reports.py`)", 1)[1].split("\n## ", 1)[0]
    assert "Not run in this suite run." in section


def test_learning_section_and_headline(results: dict[str, Any]) -> None:
    def m(r5: float, mrr: float, una: float, ans: float) -> dict[str, Any]:
        return {
            "answerable": 500,
            "recall@5": r5,
            "mrr@10": mrr,
            "unanswerable_declined": una,
            "answerable_declined": ans,
        }

    fold = {
        "fold": "A",
        "weight_cv": {"chosen": 0.9, "chosen_min_score": 0.75},
        "before": m(0.7, 0.55, 0.8, 0.1),
        "after": m(0.78, 0.62, 0.8, 0.1),
        "after_shipped": m(0.77, 0.6, 0.8, 0.1),
        "keys": 400,
        "memory_build_s": 3.25,
    }
    results["scripts"]["learning"] = {
        "status": "ok",
        "result": {
            "folds": [fold, {**fold, "fold": "B"}],
            "pooled": {
                "before": m(0.7, 0.55, 0.8, 0.1),
                "after": m(0.78, 0.62, 0.8, 0.1),
                "after_shipped": m(0.77, 0.6, 0.8, 0.1),
                "first_turns": {"before": m(0.8, 0.6, 0.8, 0.1), "after": m(0.85, 0.7, 0.8, 0.1)},
            },
            "shipped_memory_weight": 0.9,
            "threshold": 0.3,
            "target_recall5": 0.9,
            "target_met": False,
        },
    }
    page = report.render_benchmarks(results, results_file="r.json")
    section = page.split("## Learning from past conversations", 1)[1].split("\n## ", 1)[0]
    assert "### Answer memory" not in section  # a result from before answer memory
    assert "| A | 0.9 / 0.75 | 500 | 0.700 → 0.780 | 0.550 → 0.620 | 80 % → 80 % |" in section
    assert "| pooled | — | 500 |" in section
    assert "**not met** (0.780)" in section
    figures = {figure.split(" (")[0]: value for figure, value, _ in report.headline_rows(results)}
    assert figures["Retrieval recall@5 after learning from past conversations"] == "0.780"
    results["scripts"].pop("learning")
    page = report.render_benchmarks(results, results_file="r.json")
    assert "Not run in this suite run." in page.split("## Learning from past", 1)[1]


def test_learning_answer_memory_table(results: dict[str, Any]) -> None:
    def a(f1: float, learned: int, una: float = 0.9, ans: float = 0.15) -> dict[str, Any]:
        return {
            "answer_f1": f1,
            "from_memory": learned,
            "from_memory_graded": learned,
            "from_memory_f1": 0.6 if learned else None,
            "from_memory_f1_without": 0.2 if learned else None,
            "rejected_by_check": 2 if learned else 0,
            "unanswerable_declined": una,
            "answerable_declined": ans,
        }

    variants = {
        "before": a(0.2, 0),
        "question_memory": a(0.21, 0),
        "answer_memory": a(0.23, 12),
        "both": a(0.24, 14),
    }
    fold = {"fold": "A", "answer_memory": {"threshold_cv": {"chosen": 0.92}, **variants}}
    results["scripts"]["learning"] = {
        "status": "ok",
        "result": {
            "folds": [fold],
            "pooled": {
                "answer_memory": {
                    **variants,
                    "generated": {"questions": 8, "memory_f1": 0.6, "generated_f1": 0.3},
                }
            },
            "shipped_answer_memory_min_similarity": 0.92,
        },
    }
    page = report.render_benchmarks(results, results_file="r.json")
    section = page.split("### Answer memory", 1)[1].split("\n## ", 1)[0]
    assert "| A | neither | — | 0.200 | 0 | — | 0 | 90 % | 15 % |" in section
    assert "| A | answer memory alone | 0.92 | 0.230 | 12 | 0.600 vs 0.200 | 2 |" in section
    assert "| pooled | both | per fold | 0.240 | 14 |" in section
    assert "for 8 of the answers from memory" in section and "F1 0.300" in section


def test_specialise_section_shows_both_models_and_the_retriever(results: dict[str, Any]) -> None:
    def p(f1: float, una: float) -> dict[str, Any]:
        return {
            "questions": 40,
            "f1": f1,
            "rouge_l": f1 - 0.05,
            "baseline_f1": 0.31,
            "support_prompt": 0.97,
            "unanswerable_declined": una,
            "answerable_declined": 0.12,
            "ttft_ms_p50": 1234.0,
            "tokens_per_s": 24.5,
        }

    fold = {
        "fold": "A",
        "trained_on": 45,
        "steps": 12,
        "training_s": 301.0,
        "peak_rss_mb": 2400.0,
        "served_qtype": "Q4_1",
        "gate_promoted": False,
        "gate": "forced (held-back answer F1 did not improve)",
    }
    results["scripts"]["specialise"] = {
        "status": "ok",
        "result": {
            "quick": True,
            "folds": [fold],
            "pooled": {"before": p(0.331, 0.8), "after": p(0.417, 0.9)},
            "targets": {"f1": 0.40, "support": 0.95, "unanswerable_declined": 0.85},
        },
    }
    results["scripts"]["specialise_retrieval"] = {
        "status": "ok",
        "result": {
            "quick": True,
            "folds": [
                {
                    "fold": 1,
                    "trained_on": 121,
                    "steps": 8,
                    "training_s": 285.0,
                    "before": {"recall_at_5": 0.553, "mrr_at_10": 0.41},
                    "after": {"recall_at_5": 0.538, "mrr_at_10": 0.40},
                    "gate": "forced (recall@5 dropped)",
                }
            ],
        },
    }
    page = report.render_benchmarks(results, results_file="x.json")
    section = page.split("## Specialising on the company's past answers")[1].split("\n## ")[0]
    assert "| shipped | 40 | 0.331 |" in section
    assert "| specialised | 40 | 0.417 |" in section
    assert "1.23 s" in section and "24.5" in section
    assert "| A | 45 | 12 |" in section and "refused" in section
    # 0.417 >= 0.40, support 0.97 >= 0.95, 0.9 >= 0.85: met.
    assert "unanswerable declined ≥ 0.85: met" in section
    assert "0.553 → 0.538" in section
    headline = dict((r[0], r[1:]) for r in report.headline_rows(results))
    row = next(v for k, v in headline.items() if k.startswith("Answer F1 with the chat model"))
    assert row == ("0.417", "shipped model 0.331 on the same 40 questions")


def test_specialise_section_says_when_the_target_is_missed(results: dict[str, Any]) -> None:
    after = {"f1": 0.35, "support_prompt": 0.99, "unanswerable_declined": 0.9, "questions": 4}
    results["scripts"]["specialise"] = {
        "status": "ok",
        "result": {
            "folds": [],
            "pooled": {"before": after, "after": after},
            "targets": {"f1": 0.40, "support": 0.95, "unanswerable_declined": 0.85},
        },
    }
    page = report.render_benchmarks(results, results_file="x.json")
    assert "**not met**" in page.split("## Specialising on the company's past answers")[1]
