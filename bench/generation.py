"""Generation speed: the backend library's own API ("raw") vs our answer pipeline, per backend.

Usage (from the repository root, with the project venv)::

    python bench/generation.py                 # ~20 prompts, both backends, 1 and 2 threads
    python bench/generation.py --quick         # 8 prompts, 1 thread only
    python bench/generation.py --questions 30 --threads 1

The parent process builds the prompts exactly as the pipeline does: for the first N graded
doc2dial questions that the pipeline answers (retrieval confidence and facts above the
thresholds), `passages_search` -> `facts_select` -> `prompt_build` (the model's chat template,
answer_v2) plus the pipeline's logit bias. Then every (backend, mode, threads) combination
runs in its own subprocess, so its peak RSS is its own:

- raw, ctransformers: `ctransformers.LLM.generate(prompt_ids, top_k=1, repetition_penalty=1.3,
  last_n_tokens=64)` on the ctransformers-compatible GGUF copy, with the config our backend
  uses (batch 512). It has no logit bias; it re-uses the common prefix with the previous call
  (`reset=True` keeps it), like our loop. Stops at end-of-turn or the token limit.
- raw, llama-cpp: `Llama.create_completion(prompt=prompt_ids, temperature=0, top_k=1,
  repeat_penalty=1.3, logit_bias=<the pipeline's>, stream=True)` (its own prefix re-use).
- pipeline: `answer_compose(question=..., search=<precomputed>, on_delta=...)` end to end
  without retrieval: fact selection (embeddings), prompt, streamed generation with our
  decoding loop (bias, penalty, sentence limit), the groundedness gate and citations.
  TTFT = call to the first generated token (as for raw); "model TTFT" = the model's own part
  of it; "first text shown" = call to the first on_delta (the stream holds text back until
  it is supported by the facts, e.g. until a word is complete).

Tokens/s is the decode rate after the first token ((n - 1) / (t_last - t_first)); the runs
write different amounts of text (raw has no sentence limit), so compare rates, not totals.
Each subprocess warms up on one prompt (not counted) before the measured ones. Peak RSS
(ru_maxrss) of the pipeline process includes Django and the embedding model (retrieval's);
"model" is the peak's growth from loading the chat model on (weights, KV cache and compute
buffers: ctransformers sizes these by the evaluation batch, our loop evaluates prompts in
128-token chunks).

Writes bench/results/generation-<timestamp>.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common

TARGETS = {"ttft_p50_s": 1.0, "ttft_p95_s": 2.0, "rate_ratio": 0.9, "ttft_ratio": 1.15}


# -- parent: prompts ----------------------------------------------------------------------------
def build_prompts(n: int) -> list[dict[str, Any]]:
    from support.answers.decide import MIN_FACT_SCORE
    from support.answers.facts import facts_select
    from support.answers.generate import ANSWER_MAX_TOKENS
    from support.answers.prompt import fact_bias, prompt_build
    from support.backends import get_chat_model
    from support.conf import get_support_settings
    from support.retrieval import passages_search

    conf = get_support_settings()
    model = get_chat_model()
    max_new = min(conf.max_answer_tokens, ANSWER_MAX_TOKENS)
    items = []
    for q in common.load_questions():
        if not q.graded:
            continue
        search = passages_search(query=q.text, k=5)
        if search.confidence < conf.retrieval_min_confidence:
            continue
        facts = facts_select(question=q.text, passages=search.passages)
        if not facts or max(f.score for f in facts) < MIN_FACT_SCORE:
            continue
        prompt = prompt_build(
            question=q.text, facts=facts, history=(), model=model, max_new_tokens=max_new
        )
        items.append(
            {
                "id": q.id,
                "question": q.text,
                "search": search,
                "prompt_ids": list(prompt.token_ids),
                "bias": fact_bias(model, prompt.facts),
                "max_tokens": max_new,
            }
        )
        if len(items) == n + 1:  # one extra for the warm-up
            break
    return items


# -- children -----------------------------------------------------------------------------------
def _child_raw_ctransformers(items: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    from ctransformers import LLM
    from ctransformers.llm import Config

    from support.llm.ctransformers_backend import _cpu_library
    from support.llm.gguf_compat import ensure_compatible_gguf

    model_path, cache_dir = Path(os.environ["BENCH_MODEL"]), Path(os.environ["BENCH_CACHE"])
    rss0 = common.peak_rss_mb()
    compat = ensure_compatible_gguf(model_path, cache_dir)
    config = Config(context_length=4096, batch_size=512, threads=threads)
    llm = LLM(str(compat), "gguf", config=config, lib=_cpu_library())
    rows = []
    for item in items:
        started = time.perf_counter()
        times = []
        for _ in llm.generate(
            item["prompt_ids"],
            top_k=1,
            top_p=1.0,
            temperature=1.0,
            repetition_penalty=1.3,
            last_n_tokens=64,
            threads=threads,
            reset=True,
        ):
            times.append(time.perf_counter() - started)
            if len(times) >= item["max_tokens"]:
                break
        rows.append(_timing_row(item, times, time.perf_counter() - started))
    return {"rows": rows, "rss_before_model_mb": rss0}


def _child_raw_llamacpp(items: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    import llama_cpp

    rss0 = common.peak_rss_mb()
    llm = llama_cpp.Llama(
        model_path=os.environ["BENCH_MODEL"],
        n_ctx=4096,
        n_batch=128,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    rows = []
    for item in items:
        started = time.perf_counter()
        times = []
        for _ in llm.create_completion(
            prompt=item["prompt_ids"],
            max_tokens=item["max_tokens"],
            temperature=0.0,
            top_k=1,
            top_p=1.0,
            min_p=0.0,
            repeat_penalty=1.3,
            logit_bias=item["bias"],
            stream=True,
        ):
            times.append(time.perf_counter() - started)
        rows.append(_timing_row(item, times, time.perf_counter() - started))
    llm.close()  # else llama.cpp's finaliser fails noisily at interpreter exit
    return {"rows": rows, "rss_before_model_mb": rss0}


def _child_pipeline(items: list[dict[str, Any]], threads: int, backend: str) -> dict[str, Any]:
    from support import backends
    from support.answers.pipeline import answer_compose
    from support.conf import get_support_settings
    from support.llm import CTransformersChatModel, LlamaCppChatModel

    backends.get_embedder().encode(["warm up"])
    conf = get_support_settings()
    rss0 = common.peak_rss_mb()
    if backend == "ctransformers":
        model: Any = CTransformersChatModel(
            conf.resolved_model_path(), cache_dir=conf.model_cache_dir, threads=threads
        )
    else:
        model = LlamaCppChatModel(conf.resolved_model_path(), threads=threads)
    backends.set_backend("chat_model", model)
    rows = []
    for item in items:
        times: list[float] = []
        started = time.perf_counter()

        def on_delta(_: str, started: float = started, times: list[float] = times) -> None:
            times.append(time.perf_counter() - started)

        draft = answer_compose(question=item["question"], search=item["search"], on_delta=on_delta)
        total = time.perf_counter() - started
        t = draft.timings
        n = int(t.get("tokens") or 0)
        decode_s = (t.get("generate_ms", 0) - t.get("ttft_ms", 0)) / 1000
        rows.append(
            {
                "id": item["id"],
                # Call to the first token, as raw measures it: fact selection, prompt
                # building and the model's own TTFT.
                "ttft_s": (t["first_token_ms"] / 1000) if "first_token_ms" in t else None,
                "model_ttft_s": (t.get("ttft_ms") or 0) / 1000 or None,
                # The stream shows text only once it is supported by the facts so far.
                "first_text_s": times[0] if times else None,
                "tokens": n,
                "tokens_per_s": (n - 1) / decode_s if n > 1 and decode_s > 0 else None,
                "total_s": total,
                "prompt_tokens": t.get("prompt_tokens"),
                "cached_prompt_tokens": t.get("cached_prompt_tokens"),
                "same_prompt": t.get("prompt_tokens") == len(item["prompt_ids"]),
                "action": draft.action,
                "reason": draft.reason,
            }
        )
    if backend == "llamacpp":
        model.llama.close()
    return {"rows": rows, "rss_before_model_mb": rss0}


def _timing_row(item: dict[str, Any], times: list[float], total: float) -> dict[str, Any]:
    n = len(times)
    return {
        "id": item["id"],
        "ttft_s": times[0] if times else None,
        "tokens": n,
        "tokens_per_s": (n - 1) / (times[-1] - times[0])
        if n > 1 and times[-1] > times[0]
        else None,
        "total_s": total,
        "prompt_tokens": len(item["prompt_ids"]),
    }


def child_main(args: argparse.Namespace) -> int:
    # Raw children read only the JSON (no Django, nothing but the library in their RSS); the
    # pipeline child also needs the pickled search results.
    items = json.loads(Path(args.items).read_text())
    threads = int(args.threads)
    for item in items:
        item["bias"] = {int(k): v for k, v in item["bias"].items()}
    if args.mode == "raw" and args.backend == "ctransformers":
        result = _child_raw_ctransformers(items, threads)
    elif args.mode == "raw":
        result = _child_raw_llamacpp(items, threads)
    else:
        common.eval_kb(quiet=True)  # Django first: the search results hold project classes
        with open(Path(args.items).with_suffix(".pkl"), "rb") as fh:
            searches = pickle.load(fh)
        for item in items:
            item["search"] = searches[item["id"]]
        result = _child_pipeline(items, threads, args.backend)
    # The first prompt warmed the process up (and shares the system-prompt prefix with the
    # measured ones, as in production).
    result["warmup"] = result["rows"][0]
    result["rows"] = result["rows"][1:]
    result["peak_rss_mb"] = common.peak_rss_mb()
    Path(args.child_out).write_text(json.dumps(result))
    return 0


# -- parent: orchestration ----------------------------------------------------------------------
def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    p = common.percentile
    return {
        "n": len(rows),
        "ttft_p50_s": p((r["ttft_s"] for r in rows), 50),
        "ttft_p95_s": p((r["ttft_s"] for r in rows), 95),
        "model_ttft_p50_s": p((r.get("model_ttft_s") for r in rows if "model_ttft_s" in r), 50),
        "first_text_p50_s": p((r.get("first_text_s") for r in rows if "first_text_s" in r), 50),
        "tokens_per_s_p50": p((r["tokens_per_s"] for r in rows), 50),
        "tokens_mean": common.mean(r["tokens"] for r in rows),
        "total_p50_s": p((r["total_s"] for r in rows), 50),
        "cached_prompt_tokens_mean": common.mean(
            r["cached_prompt_tokens"] for r in rows if r.get("cached_prompt_tokens") is not None
        ),
        "prompt_tokens_mean": common.mean(r["prompt_tokens"] for r in rows),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    ap.add_argument("--backends", default="ctransformers,llamacpp")
    ap.add_argument("--quick", action="store_true", help="8 prompts, 1 thread")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("raw", "pipeline"), help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--items", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help="also write the results JSON here")
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.quick:
        args.questions, args.threads = 8, "1"

    kb = common.eval_kb()
    from support.conf import get_support_settings

    conf = get_support_settings()
    backends_wanted = [b.strip() for b in args.backends.split(",") if b.strip()]
    if "llamacpp" in backends_wanted:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("llama-cpp-python is not importable: skipping it", file=sys.stderr)
            backends_wanted.remove("llamacpp")
    threads = [int(t) for t in args.threads.split(",")]
    print(f"building {args.questions} prompts with the pipeline...", file=sys.stderr)
    items = build_prompts(args.questions)

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-gen-") as tmp:
        items_path = Path(tmp) / "items.json"
        items_path.write_text(
            json.dumps([{k: v for k, v in i.items() if k != "search"} for i in items])
        )
        items_path.with_suffix(".pkl").write_bytes(
            pickle.dumps({i["id"]: i["search"] for i in items})
        )
        env = os.environ | {
            "BENCH_MODEL": str(conf.resolved_model_path()),
            "BENCH_CACHE": str(conf.model_cache_dir),
            "SUPPORT_DATA_DIR": str(kb.data_dir),
        }
        for backend in backends_wanted:
            for n_threads in threads:
                for mode in ("raw", "pipeline"):
                    key = f"{backend}/{mode}/{n_threads}t"
                    out = Path(tmp) / "out.json"
                    print(f"  {key} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
                    subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child",
                            "--mode",
                            mode,
                            "--backend",
                            backend,
                            "--threads",
                            str(n_threads),
                            "--items",
                            str(items_path),
                            "--child-out",
                            str(out),
                        ],
                        env=env,
                        check=True,
                    )
                    child = json.loads(out.read_text())
                    results[key] = {
                        "backend": backend,
                        "mode": mode,
                        "threads": n_threads,
                        "summary": summarize(child["rows"]),
                        "peak_rss_mb": round(child["peak_rss_mb"], 1),
                        # Peak minus the peak before the model loaded: what the model and
                        # its generation added (the pipeline process also holds Django, the
                        # embedding model and torch).
                        "model_rss_mb": round(
                            child["peak_rss_mb"] - child["rss_before_model_mb"], 1
                        ),
                        "warmup": child["warmup"],
                        "rows": child["rows"],
                        "loadavg_1m_after": round(os.getloadavg()[0], 2),
                    }

    comparisons = {}
    for backend in backends_wanted:
        for n_threads in threads:
            raw = results[f"{backend}/raw/{n_threads}t"]["summary"]
            pipe = results[f"{backend}/pipeline/{n_threads}t"]["summary"]
            comparisons[f"{backend}/{n_threads}t"] = {
                "ttft_ratio": (pipe["ttft_p50_s"] / raw["ttft_p50_s"])
                if pipe["ttft_p50_s"] and raw["ttft_p50_s"]
                else None,
                "rate_ratio": (pipe["tokens_per_s_p50"] / raw["tokens_per_s_p50"])
                if pipe["tokens_per_s_p50"] and raw["tokens_per_s_p50"]
                else None,
            }
    payload = {
        "bench": "generation",
        "machine": common.machine_info(),
        "questions": [i["id"] for i in items[1:]],
        "targets": TARGETS,
        "results": results,
        "comparisons": comparisons,
    }
    path = common.write_results("generation", payload, also=args.out)

    f = common.fmt
    table = []
    for r in results.values():
        s = r["summary"]
        cmp = comparisons[f"{r['backend']}/{r['threads']}t"]
        table.append(
            [
                r["backend"],
                r["mode"],
                r["threads"],
                f"{f(s['ttft_p50_s'], 2)} / {f(s['ttft_p95_s'], 2)}",
                f(s["model_ttft_p50_s"], 2),
                f(s["first_text_p50_s"], 2),
                f(s["tokens_per_s_p50"], 1),
                f(s["prompt_tokens_mean"], 0)
                + (
                    f" ({f(s['cached_prompt_tokens_mean'], 0)} reused)"
                    if s["cached_prompt_tokens_mean"] is not None
                    else ""
                ),
                f(s["tokens_mean"], 1),
                f"{r['peak_rss_mb']:.0f} ({r['model_rss_mb']:.0f})",
                ""
                if r["mode"] == "raw"
                else f"TTFT ×{f(cmp['ttft_ratio'], 2)}, rate ×{f(cmp['rate_ratio'], 2)}",
            ]
        )
    m = payload["machine"]
    print(
        f"## Generation speed ({len(items) - 1} prompts; {m['cpus']} CPUs, "
        f"load {m['loadavg_1m']})\n"
    )
    print(
        common.markdown_table(
            [
                "backend",
                "mode",
                "threads",
                "TTFT p50 / p95 (s)",
                "model TTFT p50 (s)",
                "first text shown p50 (s)",
                "tokens/s p50",
                "prompt tokens",
                "tokens out",
                "peak RSS MB (model)",
                "pipeline vs raw",
            ],
            table,
        )
    )
    print(
        f"\nTargets: TTFT p50 ≤ {TARGETS['ttft_p50_s']} s, p95 ≤ {TARGETS['ttft_p95_s']} s; "
        f"pipeline rate ≥ {TARGETS['rate_ratio']:.0%} of raw; pipeline TTFT ≤ "
        f"{TARGETS['ttft_ratio']}× raw."
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
