"""A small merged results file, shaped like bench/run.py's output (no models, no I/O)."""

from __future__ import annotations

import copy
from typing import Any

import pytest


def _span(r1: float, r5: float, r10: float) -> dict[str, float]:
    # recall@k rising linearly between the given points is enough for the plots.
    out = {f"recall@{k}": r1 + (r5 - r1) * (k - 1) / 4 for k in range(1, 6)}
    out |= {f"recall@{k}": r5 + (r10 - r5) * (k - 5) / 5 for k in range(6, 11)}
    out["mrr@10"] = (r1 + r5) / 2
    return out


def _gen(backend: str, mode: str, threads: int, ttft: float, rate: float) -> dict[str, Any]:
    rows = [
        {"id": f"q{i}", "ttft_s": ttft * (0.8 + 0.1 * i), "tokens_per_s": rate, "total_s": 2 * ttft}
        for i in range(5)
    ]
    return {
        "backend": backend,
        "mode": mode,
        "threads": threads,
        "summary": {
            "n": 5,
            "ttft_p50_s": ttft,
            "ttft_p95_s": ttft * 1.3,
            "tokens_per_s_p50": rate,
            "tokens_mean": 30.0,
            "total_p50_s": 2 * ttft,
        },
        "peak_rss_mb": 700.0,
        "model_rss_mb": 200.0,
        "rows": rows,
    }


RESULTS: dict[str, Any] = {
    "schema": 1,
    "profile": "full",
    "started_at": "2026-11-28T01:00:00+00:00",
    "wall_s": 1500.0,
    "target_s": 1800.0,
    "machine": {
        "cpu_model": "AMD EPYC",
        "cpus_logical": 2,
        "cpus_physical": 1,
        "cpus_available": 2,
        "ram_bytes": 24 * 2**30,
        "os": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1",
        "arch": "x86_64",
        "python": "3.11.7",
        "loadavg": [0.3, 0.2, 0.1],
    },
    "loadavg_end": [1.9, 1.5, 1.0],
    "versions": {"python": "3.11.7", "torch": "2.13.0", "llama-cpp-python": None},
    "model": {"name": "model.gguf", "bytes": 100_000_000, "sha256_12": "abc", "source": "test"},
    "git": {"commit": "deadbeef", "dirty": False},
    "services": {"topology": "embedded", "description": "embedded defaults"},
    "bandwidth": {"copy_gbps": {"1": 30.0, "2": 40.0}, "best_gbps": 40.0, "buffer_mb": 256},
    "prepare": {"eval_kb": {"status": "ok", "cached": True, "chunks": 933, "wall_s": 3.0}},
    "scripts": {
        "retrieval": {
            "status": "ok",
            "args": ["--synthetic", "20000"],
            "wall_s": 250.0,
            "cpu_s": 400.0,
            "budget_s": 300,
            "result": {
                "mode": "full",
                "documents": 191,
                "chunks": 933,
                "answerable": 191,
                "unanswerable": 29,
                "quality": {
                    "dense": {"span": _span(0.38, 0.65, 0.77), "doc": _span(0.58, 0.77, 0.84)},
                    "lexical": {"span": _span(0.44, 0.72, 0.80), "doc": _span(0.60, 0.81, 0.85)},
                    "hybrid": {"span": _span(0.53, 0.76, 0.83), "doc": _span(0.68, 0.85, 0.90)},
                },
                "confidence": {
                    "auc": 0.79,
                    "threshold": 0.5,
                    "answerable_below_threshold": 0.115,
                    "unanswerable_below_threshold": 0.62,
                },
                "ingestion": {
                    "seconds": 90.0,
                    "chunks_per_s": 10.4,
                    "encoded_chunks": 933,
                    "raw_encode_chunks_per_s": 18.0,
                    "our_encode_chunks_per_s": 18.5,
                    "our_encode_ratio_vs_raw": 1.03,
                    "ratio_vs_raw_encode": 0.58,
                },
                "latency_ms": {
                    "eval_size_product_path": {"p50": 40.0, "p95": 60.0},
                    "eval_size_search_core": {"p50": 8.0, "p95": 12.0},
                    "eval_size_raw_faiss": {"p50": 0.1, "p95": 0.2},
                    "synthetic": {
                        "chunks": 20000,
                        "kind": "flat",
                        "build_s": 8.0,
                        "p50": 30.0,
                        "p95": 45.0,
                        "raw_faiss": {"p50": 2.0, "p95": 3.0},
                    },
                },
            },
        },
        "retrieval_tune": {"status": "skipped", "reason": "full suite only", "args": []},
        "escalation": {
            "status": "ok",
            "args": [],
            "wall_s": 100.0,
            "cpu_s": 110.0,
            "budget_s": 120,
            "result": {
                "messages": 4514,
                "sample": 1,
                "results": {
                    "tune (even lines)": {
                        "precision": 1.0,
                        "recall": 0.981,
                        "tp": 155,
                        "fp": 0,
                        "fn": 3,
                        "undecided": 78,
                        "undecided_escalated": 68,
                    },
                    "held-out (odd lines)": {
                        "precision": 0.993,
                        "recall": 0.95,
                        "tp": 151,
                        "fp": 1,
                        "fn": 8,
                        "undecided": 78,
                        "undecided_escalated": 71,
                    },
                },
                "time_ms": {"p50": 26.0, "p95": 43.0},
                "time_ms_rules_only": {"p50": 0.1, "p95": 0.16},
                "doc2dial_questions": {"questions": 1172, "escalated": 1, "rate": 0.0009},
            },
        },
        "generation": {
            "status": "ok",
            "args": ["--backends", "ctransformers"],
            "wall_s": 200.0,
            "cpu_s": 300.0,
            "budget_s": 240,
            "skipped_parts": {"llama.cpp backend": "llama-cpp-python is not installed"},
            "result": {
                "targets": {
                    "ttft_p50_s": 1.0,
                    "ttft_p95_s": 2.0,
                    "rate_ratio": 0.9,
                    "ttft_ratio": 1.15,
                },
                "results": {
                    "ctransformers/raw/1t": _gen("ctransformers", "raw", 1, 1.2, 60.0),
                    "ctransformers/pipeline/1t": _gen("ctransformers", "pipeline", 1, 1.0, 75.0),
                },
            },
        },
        "answers": {
            "status": "ok",
            "args": [],
            "wall_s": 400.0,
            "cpu_s": 500.0,
            "budget_s": 480,
            "result": {
                "cpu_s": 300.0,
                "settings": {"prompt_version": "answer_v2", "model": "model.gguf", "threads": 1},
                "summary": {
                    "all": {
                        "questions": 4,
                        "graded": 2,
                        "answerable": 3,
                        "unanswerable": 1,
                        "f1": 0.25,
                        "baseline_f1": 0.2,
                        "unanswerable_declined": 1.0,
                        "answerable_declined": 1 / 3,
                        "reasons": {"grounded": 2, "low_confidence": 2},
                        "ttft_ms_p50": 900.0,
                    }
                },
                "rows": [
                    {"id": "a", "declined": False, "total_ms": 1500.0, "first_delta_ms": 1000.0},
                    {"id": "b", "declined": False, "total_ms": 1700.0, "first_delta_ms": 1100.0},
                    {"id": "c", "declined": True, "total_ms": 50.0, "first_delta_ms": None},
                    {"id": "d", "declined": True, "total_ms": 40.0, "first_delta_ms": None},
                ],
            },
        },
        "chat_load": {
            "status": "ok",
            "args": ["--embedded"],
            "wall_s": 250.0,
            "cpu_s": 260.0,
            "budget_s": 300,
            "result": {
                "config": {
                    "topology": "embedded",
                    "questions_per_customer": 2,
                    "compression": True,
                },
                "levels": [
                    {
                        "concurrency": 1,
                        "asked": 2,
                        "answered": 2,
                        "declined": 0,
                        "ttfd_p50_s": 3.0,
                        "ttfd_p95_s": 3.5,
                        "done_p50_s": 4.0,
                        "done_p95_s": 4.5,
                        "answers_per_min": 12.0,
                        "cpu_s": 6.0,
                        "cpu_s_per_answer": 3.0,
                        "worker_rss_mb": 800.0,
                    },
                    {
                        "concurrency": 4,
                        "asked": 8,
                        "answered": 8,
                        "declined": 0,
                        "ttfd_p50_s": 9.0,
                        "ttfd_p95_s": 12.0,
                        "done_p50_s": 10.0,
                        "done_p95_s": 13.0,
                        "answers_per_min": 20.0,
                        "cpu_s": 20.0,
                        "cpu_s_per_answer": 2.5,
                        "worker_rss_mb": 820.0,
                    },
                ],
                "idle": {
                    "target": 100,
                    "alive": 100,
                    "hold_s": 5.0,
                    "ws_ping_sample": 50,
                    "web_rss_before_mb": 800.0,
                    "web_rss_after_mb": 810.0,
                    "rss_per_connection_kb": 100.0,
                },
            },
        },
    },
}


@pytest.fixture
def results() -> dict[str, Any]:
    return copy.deepcopy(RESULTS)
