"""docs/benchmarks.md and the README headline rendered from a fixture results file."""

from __future__ import annotations

import json
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
