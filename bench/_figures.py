"""Figures derived from a merged results file: cost per answer, the memory-bandwidth ceiling of
decoding, generation speed against the raw backend. Pure functions of the results dict (no I/O),
so the report, the README table and the tests all read the same numbers.

Every accessor tolerates a missing script or key (a skipped or failed benchmark, an older
results file): it returns None and the report says "not measured".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# -- prices ---------------------------------------------------------------------------------------
# Cloud compute: AWS EC2 On-Demand, Linux, US East (N. Virginia), m7i.large: general purpose,
# 2 vCPU, 8 GiB, $0.1008 per hour, i.e. $0.0504 per vCPU-hour. Source: the AWS "Amazon EC2
# On-Demand Pricing" page, https://aws.amazon.com/ec2/pricing/on-demand/ (m7i.xlarge is listed at
# $0.2016/h, twice m7i.large); looked up 2026-11-28. Prices change: update the constant and date.
VM_NAME = "AWS EC2 m7i.large (2 vCPU, 8 GiB), on-demand, Linux, us-east-1"
VM_USD_PER_HOUR = 0.1008
VM_VCPUS = 2
VCPU_HOUR_USD = VM_USD_PER_HOUR / VM_VCPUS
VM_PRICE_SOURCE = "https://aws.amazon.com/ec2/pricing/on-demand/"
VM_PRICE_DATE = "2026-11-28"

# Commercial AI agent: Intercom Fin, "$0.99 per resolution" on Intercom's pricing page
# (https://www.intercom.com/pricing) and its help article "Fin AI Agent resolutions"
# (https://www.intercom.com/help/en/articles/8205718-fin-ai-agent-resolutions); looked up
# 2026-11-28. A resolution is a conversation Fin closed without the customer asking for more help.
FIN_USD_PER_RESOLUTION = 0.99
FIN_PRICE_SOURCE = "https://www.intercom.com/pricing"
FIN_HELP_ARTICLE = "https://www.intercom.com/help/en/articles/8205718-fin-ai-agent-resolutions"
FIN_PRICE_DATE = "2026-11-28"


# -- access ---------------------------------------------------------------------------------------
def entry(results: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The runner's record of one script (status, wall_s, cpu_s, ...), or {}."""
    scripts = results.get("scripts") or {}
    return dict(scripts.get(name) or {})


def result(results: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The JSON one script wrote, or {} when it was skipped, failed or is absent."""
    return dict(entry(results, name).get("result") or {})


def dig(data: Any, *path: str | int) -> Any:
    """data[path[0]][path[1]]...; None as soon as a step is missing."""
    for step in path:
        if isinstance(data, Mapping):
            data = data.get(step)  # type: ignore[call-overload]
        elif isinstance(data, list) and isinstance(step, int) and -len(data) <= step < len(data):
            data = data[step]
        else:
            return None
        if data is None:
            return None
    return data


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing or b is zero."""
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- cost -----------------------------------------------------------------------------------------
def cost_per_answer(
    cpu_s: float | None,
    answers: int | None,
    *,
    usd_per_vcpu_hour: float = VCPU_HOUR_USD,
    reference_usd: float = FIN_USD_PER_RESOLUTION,
) -> dict[str, float] | None:
    """CPU-seconds per answer and what they cost at `usd_per_vcpu_hour` (one CPU-second of a
    process = one vCPU-second), next to `reference_usd` per answer."""
    if not cpu_s or not answers:
        return None
    per_answer = cpu_s / answers
    usd = per_answer * usd_per_vcpu_hour / 3600
    return {
        "cpu_s_per_answer": per_answer,
        "usd_per_answer": usd,
        "usd_per_1000_answers": usd * 1000,
        "answers_per_vcpu_hour": 3600 / per_answer,
        "reference_usd": reference_usd,
        "times_cheaper": reference_usd / usd,
    }


def answers_counts(answers: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(questions asked, questions answered rather than declined) of an answers.py run."""
    rows = answers.get("rows")
    if rows:
        return len(rows), sum(1 for r in rows if not r.get("declined"))
    s = dig(answers, "summary", "all") or {}
    n, yes, no = s.get("questions"), s.get("answerable"), s.get("unanswerable")
    if n is None or yes is None or no is None:
        return n, None
    declined = yes * (s.get("answerable_declined") or 0) + no * (
        s.get("unanswerable_declined") or 0
    )
    return n, round(n - declined)


def answers_cost(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """Headline cost: CPU time of the answers run / questions answered.

    Prefers the CPU time of the question loop that answers.py reports (`cpu_s`); without it,
    the runner's measure of the whole process (which also loads the models, so it is higher).
    """
    ans = result(results, "answers")
    if not ans:
        return None
    questions, answered = answers_counts(ans)
    loop_cpu = ans.get("cpu_s")
    process_cpu = entry(results, "answers").get("cpu_s")
    cpu = loop_cpu or process_cpu
    cost = cost_per_answer(cpu, answered)
    if cost is None:
        return None
    return {
        **cost,
        "questions": questions,
        "answered": answered,
        "cpu_s": cpu,
        "cpu_s_process": process_cpu,
        "cpu_s_loop": loop_cpu,
        "basis": "question loop" if loop_cpu else "whole process, model loading included",
    }


def stack_cost(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """CPU of the whole serving stack (web, worker, broker) per answer over the chat levels."""
    levels = result(results, "chat_load").get("levels") or []
    cpu = sum(lv.get("cpu_s") or 0 for lv in levels)
    answers = sum((lv.get("answered") or 0) - (lv.get("declined") or 0) for lv in levels)
    if not any("cpu_s" in lv for lv in levels):
        return None
    cost = cost_per_answer(cpu, answers)
    return None if cost is None else {**cost, "cpu_s": cpu, "answers": answers}


def throughput_cost(results: Mapping[str, Any]) -> dict[str, Any] | None:
    """Price of this machine's vCPUs for an hour / answers per hour at the best chat level:
    the cost per answer of a fully busy machine (idle time not billed elsewhere)."""
    levels = result(results, "chat_load").get("levels") or []
    rates = [lv["answers_per_min"] for lv in levels if lv.get("answers_per_min")]
    vcpus = dig(results, "machine", "cpus_available")
    if not rates or not vcpus:
        return None
    per_hour = max(rates) * 60
    usd_hour = vcpus * VCPU_HOUR_USD
    return {
        "answers_per_hour": per_hour,
        "vcpus": vcpus,
        "usd_per_hour": usd_hour,
        "usd_per_answer": usd_hour / per_hour,
        "times_cheaper": FIN_USD_PER_RESOLUTION / (usd_hour / per_hour),
    }


# -- decoding against the memory-bandwidth ceiling ------------------------------------------------
def ceiling_tokens_per_s(bandwidth_gbps: float | None, model_bytes: int | None) -> float | None:
    """Upper bound on decode speed: each generated token reads every weight once, so
    tokens/s <= bandwidth / bytes of weights (~ the GGUF file size)."""
    if not bandwidth_gbps or not model_bytes:
        return None
    return bandwidth_gbps * 1e9 / model_bytes


def bandwidth_for(results: Mapping[str, Any], threads: int | None = None) -> float | None:
    """Measured copy bandwidth with this many threads (the best measured, if not measured)."""
    bw = results.get("bandwidth") or {}
    by_threads = bw.get("copy_gbps") or {}
    if threads is not None and str(threads) in by_threads:
        return float(by_threads[str(threads)])
    best = bw.get("best_gbps")
    return float(best) if best else None


def generation_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (backend, mode, threads) of generation.py, with the raw backend as baseline
    and the share of the bandwidth ceiling."""
    gen = result(results, "generation").get("results") or {}
    model_bytes = dig(results, "model", "bytes")
    raw = {
        (r.get("backend"), r.get("threads")): r.get("summary") or {}
        for r in gen.values()
        if r.get("mode") == "raw"
    }
    rows = []
    for key, r in gen.items():
        s = r.get("summary") or {}
        base = raw.get((r.get("backend"), r.get("threads"))) or {}
        ceiling = ceiling_tokens_per_s(bandwidth_for(results, r.get("threads")), model_bytes)
        rows.append(
            {
                "key": key,
                "backend": r.get("backend"),
                "mode": r.get("mode"),
                "threads": r.get("threads"),
                "n": s.get("n"),
                "ttft_p50_s": s.get("ttft_p50_s"),
                "ttft_p95_s": s.get("ttft_p95_s"),
                "total_p50_s": s.get("total_p50_s"),
                "tokens_per_s": s.get("tokens_per_s_p50"),
                "tokens_mean": s.get("tokens_mean"),
                "peak_rss_mb": r.get("peak_rss_mb"),
                "model_rss_mb": r.get("model_rss_mb"),
                "ttft_ratio_vs_raw": None
                if r.get("mode") == "raw"
                else ratio(s.get("ttft_p50_s"), base.get("ttft_p50_s")),
                "rate_ratio_vs_raw": None
                if r.get("mode") == "raw"
                else ratio(s.get("tokens_per_s_p50"), base.get("tokens_per_s_p50")),
                "ceiling_tokens_per_s": ceiling,
                "ceiling_share": ratio(s.get("tokens_per_s_p50"), ceiling),
            }
        )
    rows.sort(key=lambda x: (str(x["backend"]), x["threads"] or 0, x["mode"] != "raw"))
    return rows


def derive(results: Mapping[str, Any]) -> dict[str, Any]:
    """Everything above, for the results file (so each published number is traceable)."""
    model_bytes = dig(results, "model", "bytes")
    return {
        "prices": {
            "vm": VM_NAME,
            "vm_usd_per_hour": VM_USD_PER_HOUR,
            "vcpu_hour_usd": VCPU_HOUR_USD,
            "vm_price_source": VM_PRICE_SOURCE,
            "vm_price_date": VM_PRICE_DATE,
            "fin_usd_per_resolution": FIN_USD_PER_RESOLUTION,
            "fin_price_source": FIN_PRICE_SOURCE,
            "fin_price_date": FIN_PRICE_DATE,
        },
        "cost": answers_cost(results),
        "cost_stack": stack_cost(results),
        "cost_throughput": throughput_cost(results),
        "ceiling": {
            "model_bytes": model_bytes,
            "tokens_per_s_1_thread": ceiling_tokens_per_s(bandwidth_for(results, 1), model_bytes),
            "tokens_per_s_best": ceiling_tokens_per_s(bandwidth_for(results), model_bytes),
        },
        "generation": generation_rows(results),
    }
