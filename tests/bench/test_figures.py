"""Cost, ceiling and ratio arithmetic of bench/_figures.py, and the bandwidth probe."""

from __future__ import annotations

from typing import Any

import pytest

from bench import _figures as fig
from bench import _machine


def test_cost_per_answer_arithmetic() -> None:
    cost = fig.cost_per_answer(100.0, 50, usd_per_vcpu_hour=0.036, reference_usd=1.0)
    assert cost is not None
    assert cost["cpu_s_per_answer"] == pytest.approx(2.0)
    # 2 CPU-s at $0.036 per vCPU-hour = 2 * 0.036 / 3600 = $0.00002.
    assert cost["usd_per_answer"] == pytest.approx(2e-5)
    assert cost["usd_per_1000_answers"] == pytest.approx(0.02)
    assert cost["answers_per_vcpu_hour"] == pytest.approx(1800)
    assert cost["times_cheaper"] == pytest.approx(50_000)


def test_cost_per_answer_needs_cpu_and_answers() -> None:
    assert fig.cost_per_answer(None, 10) is None
    assert fig.cost_per_answer(10.0, 0) is None


def test_price_constants_are_consistent() -> None:
    assert pytest.approx(fig.VM_USD_PER_HOUR / fig.VM_VCPUS) == fig.VCPU_HOUR_USD
    assert fig.FIN_USD_PER_RESOLUTION == 0.99


def test_ceiling_is_bandwidth_over_model_bytes() -> None:
    assert fig.ceiling_tokens_per_s(30.0, 100_000_000) == pytest.approx(300.0)
    assert fig.ceiling_tokens_per_s(None, 100) is None
    assert fig.ceiling_tokens_per_s(30.0, 0) is None


def test_bandwidth_for_thread_count_falls_back_to_best(results: dict[str, Any]) -> None:
    assert fig.bandwidth_for(results, 1) == 30.0
    assert fig.bandwidth_for(results, 2) == 40.0
    assert fig.bandwidth_for(results, 8) == 40.0
    assert fig.bandwidth_for({}, 1) is None


def test_answers_counts_from_rows_and_from_summary(results: dict[str, Any]) -> None:
    answers = fig.result(results, "answers")
    assert fig.answers_counts(answers) == (4, 2)
    del answers["rows"]
    # 3 answerable with 1/3 declined, 1 unanswerable declined: 4 - 2 = 2.
    assert fig.answers_counts(answers) == (4, 2)


def test_answers_cost_prefers_the_question_loop(results: dict[str, Any]) -> None:
    cost = fig.answers_cost(results)
    assert cost is not None
    assert cost["basis"] == "question loop"
    assert cost["cpu_s_per_answer"] == pytest.approx(150.0)  # 300 CPU-s / 2 answered
    del results["scripts"]["answers"]["result"]["cpu_s"]
    cost = fig.answers_cost(results)
    assert cost is not None
    assert cost["basis"].startswith("whole process")
    assert cost["cpu_s_per_answer"] == pytest.approx(250.0)  # the runner's 500 CPU-s / 2


def test_stack_and_throughput_cost(results: dict[str, Any]) -> None:
    stack = fig.stack_cost(results)
    assert stack is not None
    assert stack["cpu_s_per_answer"] == pytest.approx(26.0 / 10)
    busy = fig.throughput_cost(results)
    assert busy is not None
    assert busy["answers_per_hour"] == pytest.approx(1200)
    assert busy["usd_per_answer"] == pytest.approx(2 * fig.VCPU_HOUR_USD / 1200)


def test_generation_rows_compare_with_the_raw_backend(results: dict[str, Any]) -> None:
    rows = {r["key"]: r for r in fig.generation_rows(results)}
    raw, pipe = rows["ctransformers/raw/1t"], rows["ctransformers/pipeline/1t"]
    assert raw["ttft_ratio_vs_raw"] is None
    assert pipe["ttft_ratio_vs_raw"] == pytest.approx(1.0 / 1.2)
    assert pipe["rate_ratio_vs_raw"] == pytest.approx(75 / 60)
    # 1 thread: 30 GB/s over 100 MB = 300 tokens/s.
    assert pipe["ceiling_tokens_per_s"] == pytest.approx(300.0)
    assert pipe["ceiling_share"] == pytest.approx(0.25)


def test_everything_tolerates_an_empty_results_file() -> None:
    derived = fig.derive({})
    assert derived["cost"] is None
    assert derived["cost_stack"] is None
    assert derived["cost_throughput"] is None
    assert derived["generation"] == []
    assert fig.dig({"a": [1, {"b": 2}]}, "a", 1, "b") == 2
    assert fig.dig({"a": None}, "a", "b") is None


def test_memory_bandwidth_probe_is_positive() -> None:
    bw = _machine.memory_bandwidth(buffer_mb=4, repeats=1, threads=2)
    assert set(bw["copy_gbps"]) == {"1", "2"}
    assert bw["best_gbps"] > 0


def test_versions_and_machine_info_need_no_heavy_imports() -> None:
    versions = _machine.versions()
    assert versions["python"]
    assert "torch" in versions and "llama-cpp-python" in versions
    info = _machine.machine_info()
    assert info["cpus_available"] >= 1 and info["ram_bytes"] > 0
