"""docs/benchmarks.md and the README's headline table, rendered from a merged results file.

The template is this module: prose that explains a method is written here once, every number
comes from the results dict (bench/run.py writes it; `_figures` derives cost and ceilings).
A section whose script was skipped or failed says so instead of showing stale numbers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import _figures as fig

HEADLINE_START = "<!-- bench:headline:start -->"
HEADLINE_END = "<!-- bench:headline:end -->"
README_ANCHOR = "## Quick start"

EVAL_DATA = (
    "Evaluation data: `../shared/eval/` — doc2dial (IBM), Feng et al. 2020 (CC BY 3.0): 191 "
    "help-centre pages, 220 first-turn questions (191 answerable, 29 not); Bitext "
    "customer-support messages (CDLA-Sharing 1.0), sampled and relabelled, for escalation."
)
SCRIPT_TITLES = {
    "retrieval": "retrieval quality and speed",
    "retrieval_tune": "search at 100,000 chunks, confidence",
    "escalation": "escalation decision",
    "generation": "generation speed vs the raw backend",
    "answers": "answer quality, speed and CPU cost",
    "chat_load": "live chat under load",
    "warmup": "first answer after a start",
    "conversations": "scripted conversations",
    "reports": "reports over 100,000 conversations",
    "training_load": "answering while a specialisation trains",
}


# -- formatting -----------------------------------------------------------------------------------
def num(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, float):
        return f"{x:,.0f}" if digits == 0 else f"{x:.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def sec(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f} s"


def ms(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f} ms"


def pct(x: float | None, digits: int = 0) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f} %"


def times(x: float | None, digits: int = 2) -> str:
    if x is None:
        return "—"
    return f"×{x:,.0f}" if x >= 100 else f"×{x:.{digits}f}"


def usd(x: float | None) -> str:
    """Dollars with two significant digits, never in exponent notation."""
    if x is None:
        return "—"
    if x >= 0.995:
        return f"${x:,.2f}"
    decimals = max(2, 1 - math.floor(math.log10(x)))
    return f"${x:.{decimals}f}"


def price(x: float) -> str:
    """A list price as published (no rounding to two significant digits)."""
    return f"${x:.4f}".rstrip("0").rstrip(".")


def fold(x: float | None) -> str:
    """How many times as much: 471×."""
    return "—" if x is None else f"{x:,.0f}×"


def gib(n: float | None) -> str:
    return "—" if n is None else f"{n / 2**30:.1f} GiB"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A Markdown table; `align` gives one character per column (l or r, default l)."""
    marks = ["---:" if (align[i : i + 1] == "r") else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(marks) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _minutes(s: float | None) -> str:
    if s is None:
        return "—"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


# -- pieces shared by the doc and the README --------------------------------------------------------
def _default_pipeline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The generation row the headline quotes: our pipeline on ctransformers (the default
    backend) with the fewest threads, as a worker runs it."""
    pipes = [r for r in rows if r["mode"] == "pipeline"]
    pipes.sort(key=lambda r: (r["backend"] != "ctransformers", r["threads"] or 0))
    return pipes[0] if pipes else None


def _raw_for(rows: list[dict[str, Any]], row: dict[str, Any]) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in rows
            if r["mode"] == "raw"
            and r["backend"] == row["backend"]
            and r["threads"] == row["threads"]
        ),
        None,
    )


def headline_rows(results: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, this product, compared with in the same run) rows for the headline table."""
    rows: list[tuple[str, str, str]] = []
    derived = fig.derive(results)
    ans = fig.dig(fig.result(results, "answers"), "summary", "all") or {}
    if ans:
        rows.append(
            (
                f"Answer quality: token F1 against the human agent's reply (doc2dial, "
                f"{num(ans.get('graded'))} graded questions)",
                num(ans.get("f1"), 3),
                f"extractive baseline {num(ans.get('baseline_f1'), 3)} "
                f"({times(fig.ratio(ans.get('f1'), ans.get('baseline_f1')))})",
            )
        )
        rows.append(
            (
                "Unanswerable questions declined (handed to a person)",
                pct(ans.get("unanswerable_declined")),
                f"answerable questions declined: {pct(ans.get('answerable_declined'))}",
            )
        )
    spec = fig.result(results, "specialise")
    spec_after = fig.dig(spec, "pooled", "after") or {}
    if spec_after:
        spec_before = fig.dig(spec, "pooled", "before") or {}
        rows.append(
            (
                "Answer F1 with the chat model specialised on one half's agent replies "
                f"(doc2dial, other half{', quick run' if spec.get('quick') else ''})",
                num(spec_after.get("f1"), 3),
                f"shipped model {num(spec_before.get('f1'), 3)} on the same "
                f"{num(spec_before.get('questions'))} questions",
            )
        )
    quality = fig.result(results, "retrieval").get("quality") or {}
    if quality.get("hybrid"):
        h5 = fig.dig(quality, "hybrid", "span", "recall@5")
        d5 = fig.dig(quality, "dense", "span", "recall@5")
        rows.append(
            (
                "Retrieval recall@5 (hybrid; hit = the annotated span)",
                num(h5),
                f"dense-only FAISS {num(d5)} ({times(fig.ratio(h5, d5))})",
            )
        )
    esc = fig.dig(fig.result(results, "escalation"), "results", "held-out (odd lines)")
    if esc:
        rows.append(
            (
                "Escalation precision / recall (held-out half)",
                f"{num(esc.get('precision'))} / {num(esc.get('recall'))}",
                "targets ≥ 0.95 / ≥ 0.90",
            )
        )
    gen = derived["generation"]
    pipe = _default_pipeline(gen)
    if pipe:
        raw = _raw_for(gen, pipe) or {}
        label = f"{pipe['backend']}, {pipe['threads']} thread{'s' if pipe['threads'] != 1 else ''}"
        rows.append(
            (
                f"Time to first token p50 ({label})",
                sec(pipe["ttft_p50_s"]),
                f"raw backend {sec(raw.get('ttft_p50_s'))} ({times(pipe['ttft_ratio_vs_raw'])})",
            )
        )
        rows.append(
            (
                f"Decode speed ({label})",
                f"{num(pipe['tokens_per_s'], 0)} tokens/s",
                f"raw backend {num(raw.get('tokens_per_s'), 0)} "
                f"({times(pipe['rate_ratio_vs_raw'])}); memory-bandwidth ceiling "
                f"{num(pipe['ceiling_tokens_per_s'], 0)} ({pct(pipe['ceiling_share'])})",
            )
        )
    conv = fig.dig(fig.result(results, "conversations"), "summary") or {}
    if conv.get("cases"):
        rows.append(
            (
                "Scripted conversations passed (real chat path, real models)",
                f"{num(conv['passed'])} / {num(conv['cases'])} ({pct(conv.get('pass_rate'))})",
                f"turns {num(conv.get('turns_passed'))} / {num(conv.get('turns'))}; target: all",
            )
        )
    learned = fig.dig(fig.result(results, "learning"), "pooled") or {}
    if learned.get("after"):
        rows.append(
            (
                "Retrieval recall@5 after learning from past conversations (question memory, "
                "2-fold by dialogue, every turn)",
                num(fig.dig(learned, "after", "recall@5")),
                f"before: {num(fig.dig(learned, 'before', 'recall@5'))}; target ≥ 0.90",
            )
        )
    warm = fig.dig(fig.result(results, "warmup"), "summary") or {}
    if warm.get("on") and warm.get("off"):
        on, off = warm["on"], warm["off"]
        rows.append(
            (
                "First answer after a start: time to first token (model warm-up on)",
                f"{sec(on.get('first_ttft_s'))} ({times(on.get('ratio'), 1)} a warm answer)",
                f"warm-up off: {sec(off.get('first_ttft_s'))} "
                f"({times(off.get('ratio'), 1)} a warm answer); target ≤ ×2",
            )
        )
    pg = max(
        (
            x
            for x in fig.result(results, "reports").get("runs") or []
            if x.get("database") == "postgresql" and x.get("report_s") is not None
        ),
        key=lambda x: x.get("conversations") or 0,
        default=None,
    )
    if pg:
        rows.append(
            (
                f"Report of a month ({num(pg.get('conversations'))} conversations, PostgreSQL)",
                ms(pg["report_s"] * 1000, 0),
                f"filling the rollup from raw rows: {sec(pg.get('fill_s'), 1)}; target < 1 s",
            )
        )
    levels = fig.result(results, "chat_load").get("levels") or []
    levels = [lv for lv in levels if lv.get("done_p50_s") is not None]
    if len(levels) >= 2:
        one, top = (
            min(levels, key=lambda lv: lv["concurrency"]),
            max(levels, key=lambda lv: lv["concurrency"]),
        )
        rows.append(
            (
                f"Answer complete p50 with {top['concurrency']} concurrent conversations "
                "(websocket, 1.2 s debounce included)",
                sec(top["done_p50_s"], 1),
                f"{one['concurrency']} conversation: {sec(one['done_p50_s'], 1)} "
                f"({times(fig.ratio(top['done_p50_s'], one['done_p50_s']), 1)})",
            )
        )
    cost = derived["cost"]
    if cost:
        rows.append(
            (
                "CPU time per answered question (retrieval + generation + checks)",
                f"{cost['cpu_s_per_answer']:.2f} CPU-s",
                f"{cost['answered']} answered of {cost['questions']} questions; {cost['basis']}",
            )
        )
        rows.append(
            (
                "Compute cost per answered question",
                f"**{usd(cost['usd_per_answer'])}** at {price(fig.VCPU_HOUR_USD)} per vCPU-hour",
                f"Intercom Fin: {usd(fig.FIN_USD_PER_RESOLUTION)} per resolution, "
                f"**{fold(cost['times_cheaper'])}** as much",
            )
        )
    return rows


def headline_table(results: Mapping[str, Any]) -> str:
    rows = headline_rows(results)
    if not rows:
        return "_No figures: every benchmark was skipped or failed in this run._"
    return table(["figure", "this product", "compared with (same run)"], rows)


def _run_line(results: Mapping[str, Any]) -> str:
    m = results.get("machine") or {}
    return (
        f"{results.get('profile', '?')} profile, {str(results.get('started_at', ''))[:10]}; "
        f"{m.get('cpu_model', 'unknown CPU')}, {m.get('cpus_available', '?')} vCPUs, "
        f"{gib(m.get('ram_bytes'))} RAM, CPU only"
    )


def readme_section(results: Mapping[str, Any], results_file: str) -> str:
    return "\n".join(
        [
            HEADLINE_START,
            "## Headline figures",
            "",
            f"Measured by the benchmark suite (`make bench`; {_run_line(results)}; results in "
            f"`{results_file}`). How each figure is measured, its baseline and the rest are in "
            "[docs/benchmarks.md](docs/benchmarks.md); prices and their sources are there too.",
            "",
            headline_table(results),
            HEADLINE_END,
        ]
    )


def update_readme(readme: str, section: str) -> str:
    """Replace the marked headline section, or insert it before "## Quick start" (else at the
    end); the rest of the README is left byte for byte as it was."""
    pattern = re.compile(re.escape(HEADLINE_START) + r".*?" + re.escape(HEADLINE_END), re.S)
    if pattern.search(readme):
        return pattern.sub(lambda _: section, readme, count=1)
    at = readme.find("\n" + README_ANCHOR)
    if at == -1:
        return readme.rstrip("\n") + "\n\n" + section + "\n"
    return readme[: at + 1] + section + "\n\n" + readme[at + 1 :]


# -- the benchmarks page --------------------------------------------------------------------------
def _status_note(results: Mapping[str, Any], name: str) -> str | None:
    """Why a script's section has no numbers, or None when it ran."""
    e = fig.entry(results, name)
    status = e.get("status")
    if status == "ok" and e.get("result"):
        return None
    if not e:
        return "Not run in this suite run."
    reason = e.get("reason") or ""
    if status == "skipped":
        return f"Skipped in this run: {reason}."
    return f"No figures: the script {status or 'did not report'}{': ' + reason if reason else ''}."


def _img(images: Sequence[str], name: str, alt: str, img_prefix: str) -> list[str]:
    return [f"![{alt}]({img_prefix}{name})", ""] if name in images else []


def section_header(results: Mapping[str, Any], results_file: str) -> list[str]:
    m = results.get("machine") or {}
    v = results.get("versions") or {}
    bw = results.get("bandwidth") or {}
    model = results.get("model") or {}
    services = results.get("services") or {}
    git = results.get("git") or {}
    load_start = (m.get("loadavg") or [None])[0]
    load_end = (results.get("loadavg_end") or [None])[0]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by bench/run.py from the results file named below. Edit the template "
        "in bench/_report.py, not this file. -->",
        "",
        "Every figure on this page comes from one run of the benchmark suite, `bench/run.py`, "
        "which runs each script under `bench/` and compares each figure with a baseline "
        "measured in the same run: the raw backend library for generation, raw "
        "sentence-transformers for embedding, raw FAISS for search, an extractive baseline "
        "for answers. Anyone can rerun it: `make bench` (full suite, under 60 minutes on 2 "
        "cores) or `make bench-quick` (under 5 minutes, for a check before a release; it "
        "writes to `var/bench/quick/` and leaves this page alone). "
        "`python bench/run.py --render <results file> --publish` redraws this page, its plots "
        "and the README's headline table from a results file.",
        "",
        f"**This run:** {_run_line(results)}; {_minutes(results.get('wall_s'))} in all; "
        f"commit `{git.get('commit') or '?'}`{' with local changes' if git.get('dirty') else ''}; "
        f"results `{results_file}`.",
        "",
    ]
    if results.get("note"):
        lines += [f"**Note:** {results['note']}", ""]
    if results.get("profile") == "quick":
        lines += [
            "**Quick profile:** fewer questions and prompts, smaller indexes and no 100,000-chunk "
            "section (see the arguments in *The run* below), so these figures are noisier than "
            "a full run's.",
            "",
        ]
    cpus = m.get("cpus_available") or 1
    if load_start is not None and load_start > 0.5 * cpus:
        lines += [
            f"**Caveat:** the machine was busy with other work when the run started (load "
            f"average {load_start:.1f} on {cpus} CPUs), so absolute latencies are pessimistic; "
            "ratios within one run are fair.",
            "",
        ]
    gbps = bw.get("copy_gbps") or {}
    bw_text = (
        ", ".join(f"{g:.1f} GB/s with {t} thread{'s' if t != '1' else ''}" for t, g in gbps.items())
        + " (numpy copy of a "
        + f"{bw.get('buffer_mb', '?')} MiB array, read + write bytes per second)"
        if gbps
        else "not measured"
    )
    lines += [
        table(
            ["machine", ""],
            [
                [
                    "CPU",
                    f"{m.get('cpu_model', '?')}: {m.get('cpus_available', '?')} of "
                    f"{m.get('cpus_logical', '?')} logical CPUs available to the run "
                    f"(physical cores: {m.get('cpus_physical', '?')})",
                ],
                ["RAM", gib(m.get("ram_bytes"))],
                ["OS", f"{m.get('os', '?')}, Linux {m.get('kernel', '?')}, {m.get('arch', '?')}"],
                ["memory bandwidth", bw_text],
                [
                    "load average (1 min)",
                    f"{num(load_start, 2)} at the start, {num(load_end, 2)} at the end",
                ],
                ["services", services.get("description", "—")],
                [
                    "chat model",
                    f"`{model.get('name')}`, {num(model.get('bytes'))} bytes "
                    f"({num((model.get('bytes') or 0) / 1e6, 1)} MB; sha256 "
                    f"{model.get('sha256_12', '?')}…, from {model.get('source', '?')})"
                    if model.get("bytes")
                    else f"not found: {model.get('error', '?')}",
                ],
            ],
        ),
        "",
        table(list(v), [[x or "not installed" for x in v.values()]]) if v else "",
        "",
        EVAL_DATA,
        "",
    ]
    return lines


def section_headline(results: Mapping[str, Any]) -> list[str]:
    return [
        "## Headline figures",
        "",
        "The README shows this table. Prices and their sources: *Cost per answer* below.",
        "",
        headline_table(results),
        "",
    ]


def section_run(results: Mapping[str, Any]) -> list[str]:
    rows = []
    notes = []
    run_notes: list[str] = []
    for name, e in (results.get("scripts") or {}).items():
        args = " ".join(e.get("args") or [])
        status = e.get("status", "?")
        if status not in ("ok", "skipped"):
            status = f"**{status}**"
        over = e.get("wall_s") and e.get("budget_s") and e["wall_s"] > e["budget_s"]
        rows.append(
            [
                f"`{name}`",
                SCRIPT_TITLES.get(name, "—"),
                f"`{args}`" if args else "—" if e.get("status") == "skipped" else "(defaults)",
                status,
                _minutes(e.get("wall_s")) + (" (over budget)" if over else ""),
                "—" if e.get("status") == "skipped" else _minutes(e.get("budget_s")),
                num(e.get("cpu_s"), 0) + (" s" if e.get("cpu_s") is not None else ""),
            ]
        )
        if e.get("status") != "ok" and e.get("reason"):
            notes.append(f"- `{name}`: {e['reason']}")
        elif e.get("reason"):
            run_notes.append(f"- `{name}`: {e['reason']}")
        for what, why in (e.get("skipped_parts") or {}).items():
            notes.append(f"- `{name}`, {what}: skipped, {why}")
    prep = results.get("prepare") or {}
    lines = [
        "## The run",
        "",
        "`bench/run.py` runs each script as a subprocess with its quick or full arguments, "
        "writes its JSON into the results file and measures its wall time and CPU time (user + "
        "system of the script and every process it started). Each script has a time budget; one "
        "that runs past twice its budget is stopped."
        + (
            f" Budgets were scaled by {results['budget_scale']:g} for this run (`--budget-scale`)."
            if (results.get("budget_scale") or 1) != 1
            else ""
        ),
        "",
        table(
            ["script", "measures", "arguments", "status", "wall time", "budget", "CPU time"],
            rows,
            "lllllrr",
        ),
        "",
    ]
    if prep.get("eval_kb"):
        kb = prep["eval_kb"]
        built = (
            f"reused from the cache ({num(kb.get('chunks'))} chunks)"
            if kb.get("cached")
            else f"built in {_minutes(kb.get('wall_s'))} ({num(kb.get('chunks'))} chunks), then cached"
        )
        lines += [
            f"Before the scripts, the shared eval knowledge base (`bench/_common.py`: the 191 "
            f"doc2dial pages through the real ingestion path) was {built}.",
            "",
        ]
    if run_notes:
        lines += ["Notes on this run:", "", *run_notes, ""]
    if notes:
        lines += ["Not measured in this run:", "", *notes, ""]
    return lines


def section_retrieval(results: Mapping[str, Any], images: Sequence[str], img: str) -> list[str]:
    lines = ["## Retrieval (`bench/retrieval.py`)", ""]
    note = _status_note(results, "retrieval")
    r = fig.result(results, "retrieval")
    if note:
        return [*lines, note, ""]
    quick = r.get("mode") == "quick"
    lines += [
        f"`python bench/retrieval.py` ingests the {num(r.get('documents'))} doc2dial pages "
        "through the product's own services (upload → parse → chunk → embed → store → index; "
        f"{num(r.get('chunks'))} chunks) and evaluates the {num(r.get('answerable'))} answerable "
        "first-turn questions"
        + (
            " (the quick profile evaluates the cached eval knowledge base, built once through "
            "the same path)"
            if quick
            else ""
        )
        + ". A hit is a retrieved chunk that overlaps the human-annotated grounding span (the "
        'strict test the eval README recommends); "doc recall" counts any chunk of a '
        "grounding page. Dense-only is the FAISS search alone, lexical-only is BM25 alone, "
        "hybrid is what the product runs.",
        "",
    ]
    q = r.get("quality") or {}
    rows = []
    for name, label in (
        ("dense", "dense only (all-MiniLM-L6-v2, FAISS)"),
        ("lexical", "lexical only (BM25)"),
        ("hybrid", "hybrid (product)"),
    ):
        s, d = fig.dig(q, name, "span") or {}, fig.dig(q, name, "doc") or {}
        cells = [
            label,
            num(s.get("recall@1")),
            num(s.get("recall@5")),
            num(s.get("recall@10")),
            num(s.get("mrr@10")),
            num(d.get("recall@5")),
        ]
        if name == "hybrid":
            cells = [f"**{c}**" for c in cells]
        rows.append(cells)
    lines += [
        table(["method", "recall@1", "recall@5", "recall@10", "MRR@10", "doc recall@5"], rows),
        "",
        *_img(images, "recall_at_k.png", "recall@k for k = 1..10", img),
    ]
    h = fig.dig(q, "hybrid", "span") or {}
    d = fig.dig(q, "dense", "span") or {}
    lx = fig.dig(q, "lexical", "span") or {}
    if h and d:
        better = all(
            (h.get(k) or 0) >= (d.get(k) or 0)
            for k in ("recall@1", "recall@5", "recall@10", "mrr@10")
        )
        lines += [
            f"Hybrid against dense-only: recall@5 {num(h.get('recall@5'))} vs "
            f"{num(d.get('recall@5'))} ({(h.get('recall@5') or 0) - (d.get('recall@5') or 0):+.3f}), "
            f"MRR@10 {num(h.get('mrr@10'))} vs {num(d.get('mrr@10'))}"
            + (" — better on every measure" if better else "")
            + f"; lexical-only reaches recall@5 {num(lx.get('recall@5'))}.",
            "",
        ]
        h5 = h.get("recall@5") or 0
        doc5 = fig.dig(q, "hybrid", "doc", "recall@5")
        if h5 < 0.9:
            lines += [
                f"Hybrid does **not** reach the 0.90 recall@5 target on span hits: doc2dial "
                'questions are often vague first turns ("I need help with my benefits") whose '
                "annotated span is one sentence in a long page; at page level hybrid finds the "
                f"right page in the top 5 for {pct(doc5)} of questions. The variant sweep "
                "below measures what else was tried and how many spans are out of reach.",
                "",
            ]
    c = r.get("confidence") or {}
    if c:
        lines += [
            "Retrieval confidence (`support/search/hybrid.py`, logistic on the top cosine and BM25 "
            f"coverage): AUC {num(c.get('auc'), 2)} between answerable and unanswerable questions; "
            f"at the default threshold {c.get('threshold')}, {pct(c.get('unanswerable_below_threshold'))} "
            f"of the unanswerable and {pct(c.get('answerable_below_threshold'), 1)} of the "
            "answerable questions fall below it.",
            "",
        ]
    ing = r.get("ingestion") or {}
    if ing:
        text = (
            f"Embedding: our embedder encodes {num(ing.get('our_encode_chunks_per_s'), 1)} chunks/s "
            f"against {num(ing.get('raw_encode_chunks_per_s'), 1)} chunks/s for raw "
            f"`SentenceTransformer.encode` (batch {ing.get('raw_encode_batch_size', 64)}) on the same "
            f"{num(ing.get('encoded_chunks') or r.get('chunks'))} texts in the same run (ratio "
            f"{num(ing.get('our_encode_ratio_vs_raw'), 2)}). "
        )
        if ing.get("chunks_per_s"):
            fair = "raw_texts_match_ingested" in ing
            text += (
                f"Ingestion end to end: {num(ing.get('chunks_per_s'), 1)} chunks/s (ratio "
                f"{num(ing.get('ratio_vs_raw_encode'), 2)} to raw encode"
                + (
                    " of the same texts with the same batch size and threads, timed just before "
                    "and just after the ingestion: upload, parsing, chunking, embedding in "
                    "multi-document batches, database writes and the index build included)"
                    if fair
                    else ": per-document batches, parsing and database writes)"
                )
                + (", model loading included" if ing.get("includes_model_load") else "")
                + "."
            )
        else:
            text += f"Ingestion end to end: {ing.get('note') or 'not timed'} (full profile only)."
        lines += [text, ""]
    lat = r.get("latency_ms") or {}
    if lat:
        syn = lat.get("synthetic") or {}
        core, raw = lat.get("eval_size_search_core") or {}, lat.get("eval_size_raw_faiss") or {}
        sraw = syn.get("raw_faiss") or {}
        rows = [
            [
                f"eval KB ({num(r.get('chunks'))} chunks), `passages_search` (query embedding, "
                "hybrid search, database join)",
                f"{ms(fig.dig(lat, 'eval_size_product_path', 'p50'))} / "
                f"{ms(fig.dig(lat, 'eval_size_product_path', 'p95'))}",
                "",
                "",
            ],
            [
                "eval KB, hybrid search core (`hybrid_search`, query vector given)",
                f"{ms(core.get('p50'), 2)} / {ms(core.get('p95'), 2)}",
                f"{ms(raw.get('p50'), 3)} / {ms(raw.get('p95'), 3)}",
                times(fig.ratio(core.get("p50"), raw.get("p50")), 1),
            ],
            [
                f"{num(syn.get('chunks'))} synthetic chunks ({syn.get('kind', '?')} index, built in "
                f"{sec(syn.get('build_s'), 1)}), hybrid search core",
                f"{ms(syn.get('p50'), 2)} / {ms(syn.get('p95'), 2)}",
                f"{ms(sraw.get('p50'), 3)} / {ms(sraw.get('p95'), 3)}",
                times(fig.ratio(syn.get("p50"), sraw.get("p50")), 1),
            ],
        ]
        th = r.get("threads") or {}
        threads = (
            f"{th.get('torch')} torch and {th.get('faiss')} FAISS thread(s), as a serving worker"
            if th
            else "2 FAISS threads"
        )
        asked = f"{lat['questions']} questions" if lat.get("questions") else "every question"
        lines += [
            f"Search latency, top 10 ({threads}; {asked}, {lat.get('repeats', 2)} pass(es)). "
            "The baseline is the same FAISS index searched directly (dense only: no BM25, no "
            "fusion, no filtering):",
            "",
            table(["search", "p50 / p95", "raw FAISS p50 / p95", "ratio (p50)"], rows, "lrrr"),
            "",
        ]
    return lines


VARIANTS_FILE = Path(__file__).resolve().parent / "results" / "retrieval_variants.json"


def load_variants(path: Path = VARIANTS_FILE) -> dict[str, Any] | None:
    """The committed result of the hand-run sweep (not part of a suite run)."""
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data


def _variant_family(name: str) -> str:
    return name.split(" ", 1)[0]


def section_retrieval_variants(v: Mapping[str, Any] | None) -> list[str]:
    """The retrieval-variant sweep: best of each family (chosen on dev), then every row."""
    if not v or not v.get("rows"):
        return []
    rows = [r for r in v["rows"] if "all" in r]
    chosen, baseline = v.get("chosen"), v.get("baseline")

    def cells(r: Mapping[str, Any]) -> list[str]:
        a, d, t = r["all"], r["dev"], r["test"]
        out = [
            r["variant"],
            num(d["r@5"]),
            num(t["r@5"]),
            num(a["r@1"]),
            num(a["r@5"]),
            num(a["r@10"]),
            num(a["mrr@10"]),
        ]
        return [f"**{c}**" for c in out] if r["variant"] == chosen else out

    best: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        fam = _variant_family(r["variant"])
        key = (r["dev"]["r@5"], r["dev"]["mrr@10"])
        if fam not in best or key > (best[fam]["dev"]["r@5"], best[fam]["dev"]["mrr@10"]):
            best[fam] = r
    short = [r for r in rows if r["variant"] == baseline or r["variant"].startswith("baseline ")]
    short += [r for fam, r in best.items() if fam != "baseline" and r["variant"] != chosen]
    short += [r for r in rows if r["variant"] == chosen]
    headers = ["variant", "dev R@5", "test R@5", "R@1", "R@5", "R@10", "MRR@10"]
    lines = [
        "### Retrieval variants (`bench/retrieval_variants.py`)",
        "",
        "Run by hand while tuning (not part of a suite run; its results file is "
        "`bench/results/retrieval_variants.json`). Each variant chunks the 191 pages with the "
        "product's parser and chunker, embeds with the product's embedder and scores with its "
        "BM25 index; span hits on the 191 answerable questions. Variants were chosen on the "
        "dev half (even lines of questions.jsonl) and are reported on the held-out test half "
        "(odd lines) and on all; one question is ±0.005 on all, ±0.010 on a half, so "
        "differences under ~0.02 are noise. Below: the baseline, the best row of each family "
        "by dev recall@5, and the adopted configuration (bold); every row follows.",
        "",
        table(headers, [cells(r) for r in short]),
        "",
    ]
    oracle = [r for r in v["rows"] if str(r.get("variant", "")).startswith("oracle")]
    for r in oracle:
        s = r["summary"]
        lines += [
            f"Reach, {r['variant'][len('oracle ') :]}: the grounding span's best chunk ranks "
            f"outside the top 5 of dense, BM25 and hybrid alike for "
            f"{s['best_of_all_methods_rank_gt_5']} of {s['questions']} questions, outside the "
            f"top 10 for {s['best_of_all_methods_rank_gt_10']}; hybrid holds it within the top "
            f"10 / 20 / 50 for {pct(s['hybrid_rank_le_10'])} / {pct(s['hybrid_rank_le_20'])} / "
            f"{pct(s['hybrid_rank_le_50'])}.",
            "",
        ]
    if v.get("notes"):
        lines += [str(v["notes"]), ""]
    c = v.get("confidence_refit")
    if c:
        lines += [
            f"Confidence re-fitted on {c['chunking']}-token chunks: AUC {num(c['auc_fitted_in_sample'])} "
            f"in-sample, {num(c['auc_fitted_cv10'])} in 10-fold cross-validation, against "
            f"{num(c['auc_shipped_model'])} for the shipped coefficients on the same chunks "
            f"(top cosine alone {num(c['auc_top_cosine'])}, BM25 coverage alone "
            f"{num(c['auc_lexical_coverage'])}).",
            "",
        ]
    lines += [
        "<details><summary>Every variant</summary>",
        "",
        table(headers, [cells(r) for r in rows]),
        "",
        "</details>",
        "",
    ]
    return lines


def section_tune(results: Mapping[str, Any]) -> list[str]:
    lines = ["## Search at scale and confidence (`bench/retrieval_tune.py`)", ""]
    note = _status_note(results, "retrieval_tune")
    t = fig.result(results, "retrieval_tune")
    if note:
        return [*lines, note, ""]
    big = t.get("latency_100k") or {}
    if big:
        rows = []
        for kind in ("hnsw", "flat"):
            k = big.get(kind) or {}
            if not k:
                continue

            def p(name: str, key: str = "p95_ms", k: dict[str, Any] = k) -> str:
                return ms(fig.dig(k, name, key), 1)

            rows.append(
                [
                    kind.upper() if kind == "hnsw" else "flat (exact)",
                    sec(k.get("build_s"), 0),
                    f"{p('hybrid_k10', 'p50_ms')} / {p('hybrid_k10')}",
                    p("hybrid_k10_with_deny_list"),
                    p("dense_k10"),
                    p("lexical_k10"),
                    times(
                        fig.ratio(
                            fig.dig(k, "hybrid_k10", "p95_ms"), fig.dig(k, "dense_k10", "p95_ms")
                        )
                    ),
                ]
            )
        ef = [
            f"{num(fig.dig(big, f'hnsw_clustered_ef{e}', 'recall10_vs_exact'), 2)} at efSearch {e}"
            for e in (16, 32, 64, 128)
            if big.get(f"hnsw_clustered_ef{e}")
        ]
        lines += [
            f"{num(big.get('chunks'))} synthetic chunks (random unit vectors; texts sampled from "
            f"the eval corpus' words; {t.get('faiss_threads', '?')} FAISS threads), top 10. "
            "Baselines: FAISS alone (dense) and BM25 alone on the same data.",
            "",
            table(
                [
                    "index",
                    "build",
                    "hybrid p50 / p95",
                    "with deny-list p95",
                    "dense alone p95",
                    "BM25 alone p95",
                    "hybrid / dense (p95)",
                ],
                rows,
                "lrrrrrr",
            ),
            "",
            f"BM25 index: built in {sec(big.get('bm25_build_s'), 0)}, "
            f"{num(big.get('bm25_file_mb'), 0)} MB. HNSW recall@10 against exact search on "
            'clustered vectors (real chunk embeddings plus noise; on random vectors "nearest" '
            f"means nothing): {', '.join(ef) or '—'} (the product's default is 128).",
            "",
        ]
    c = t.get("confidence") or {}
    if c:
        lines += [
            "Confidence model (logistic on the top cosine and BM25 coverage): the shipped "
            f"coefficients reach AUC {num(c.get('auc_shipped'), 3)} between answerable and "
            f"unanswerable questions on the eval set; refitted here, "
            f"{num(c.get('auc_fitted_in_sample'), 3)} in-sample and "
            f"{num(c.get('auc_fitted_cv10'), 3)} in 10-fold cross-validation (top cosine alone: "
            f"{num(fig.dig(c, 'feature_auc', 'top_cosine'), 3)}).",
            "",
        ]
    tp = t.get("throughput") or {}
    if tp:
        lines += [
            f"Embedding throughput on {num(tp.get('chunks'))} chunks: our embedder "
            f"{num(tp.get('threads1_embedder_encode'), 1)} chunks/s with one torch thread "
            f"({times(tp.get('threads1_ratio_vs_raw_default'))} the speed of raw `encode` at its defaults, "
            f"{times(tp.get('threads1_ratio_vs_best_raw'))} that of the best raw batch size), "
            f"{num(tp.get('threads2_embedder_encode'), 1)} chunks/s with two.",
            "",
        ]
    else:
        lines += [
            "Embedding batch size and torch threads: `python bench/retrieval_tune.py` without "
            "`--skip-throughput` compares our embedder with raw `encode` at batch 16 to 64 and "
            "one or two threads (about 8 minutes; not part of the suite).",
            "",
        ]
    lines += [
        "Fusion (convex combination, dense weight 0.7, BM25 max-normalised) was chosen against "
        "RRF and min-max/z-score variants; `support/search/hybrid.py` documents the comparison, "
        "and `python bench/retrieval_tune.py --grid` reruns the sweep (not part of the suite).",
        "",
    ]
    return lines


def section_generation(results: Mapping[str, Any], images: Sequence[str], img: str) -> list[str]:
    lines = ["## Generation speed (`bench/generation.py`)", ""]
    e = fig.entry(results, "generation")
    skipped = e.get("skipped_parts") or {}
    note = _status_note(results, "generation")
    if note:
        lines += [note, ""]
        for what, why in skipped.items():
            lines += [f"The {what} was skipped: {why}.", ""]
        return lines
    g = fig.result(results, "generation")
    rows = fig.derive(results)["generation"]
    derived = fig.derive(results)["ceiling"]
    n = rows[0]["n"] if rows else None
    lines += [
        f"`python bench/generation.py`: the first {num(n)} graded doc2dial questions that the "
        "pipeline answers, with prompts built exactly as the pipeline builds them. *raw* is the "
        "backend library's own API on the same prompt token ids (greedy, the same repetition "
        "penalty); *pipeline* is `answer_compose` without retrieval: fact selection, prompt, our "
        "streamed decoding loop (bias, penalty, sentence limit), the groundedness gate and "
        "citations. Tokens/s is the decode rate after the first token; the runs write "
        "different amounts of text (raw has no sentence limit), so compare rates, not totals. "
        "Each configuration runs in its own process, after one warm-up prompt.",
        "",
    ]
    table_rows = []
    for r in rows:
        vs = (
            ""
            if r["mode"] == "raw"
            else f"TTFT {times(r['ttft_ratio_vs_raw'])}, rate {times(r['rate_ratio_vs_raw'])}"
        )
        table_rows.append(
            [
                r["backend"],
                r["mode"],
                r["threads"],
                f"{sec(r['ttft_p50_s'])} / {sec(r['ttft_p95_s'])}",
                num(r["tokens_per_s"], 0),
                pct(r["ceiling_share"]),
                sec(r["total_p50_s"]),
                num(r["tokens_mean"], 1),
                f"{num(r['peak_rss_mb'], 0)} ({num(r['model_rss_mb'], 0)})",
                vs or "(baseline)",
            ]
        )
    lines += [
        table(
            [
                "backend",
                "mode",
                "threads",
                "TTFT p50 / p95",
                "tokens/s p50",
                "of ceiling",
                "total p50",
                "tokens (mean)",
                "peak RSS MB (model)",
                "pipeline vs raw",
            ],
            table_rows,
            "lllrrrrrrl",
        ),
        "",
    ]
    model = results.get("model") or {}
    if derived.get("tokens_per_s_1_thread"):
        lines += [
            "Ceiling: decoding reads every weight once per generated token, so tokens/s cannot "
            "exceed memory bandwidth / bytes of weights. With the copy bandwidth measured in "
            f"this run ({num(fig.bandwidth_for(results, 1), 1)} GB/s from one thread, "
            f"{num(fig.bandwidth_for(results), 1)} GB/s at best) and the "
            f"{num((model.get('bytes') or 0) / 1e6, 1)} MB GGUF file, the ceiling is "
            f"{num(derived['tokens_per_s_1_thread'], 0)} tokens/s (one thread) and "
            f"{num(derived['tokens_per_s_best'], 0)} tokens/s (best); *of ceiling* uses the "
            "bandwidth measured with the row's thread count where measured. A model this small is "
            "bound by compute and per-token overhead more than by memory, so it stays well "
            "below its ceiling.",
            "",
        ]
    lines += [
        *_img(images, "generation_latency.png", "TTFT and total time distributions", img),
        *_img(images, "tokens_per_s.png", "tokens/s against the bandwidth ceiling", img),
    ]
    targets = g.get("targets") or {}
    if targets:
        lines += [
            "Targets of the generation issue: TTFT p50 ≤ "
            f"{targets.get('ttft_p50_s')} s and p95 ≤ {targets.get('ttft_p95_s')} s; pipeline "
            f"decode rate ≥ {targets.get('rate_ratio')}× raw and TTFT ≤ "
            f"{targets.get('ttft_ratio')}× raw.",
            "",
        ]
    for what, why in skipped.items():
        lines += [f"The {what} was skipped: {why}.", ""]
    return lines


WARMUP_MODES = {
    "off": "off (asked at once)",
    "on": "on (asked when warm)",
    "at_once": "on (asked at once)",
}


def section_warmup(results: Mapping[str, Any]) -> list[str]:
    lines = ["## First answer after a start (`bench/warmup.py`)", ""]
    note = _status_note(results, "warmup")
    if note:
        return [*lines, note, ""]
    w = fig.result(results, "warmup")
    summary = w.get("summary") or {}
    m = w.get("machine") or {}
    lines += [
        "`python bench/warmup.py` builds `make run`'s demo knowledge base, then starts one fresh "
        "process per measurement with `make run`'s settings that does what a worker process "
        "does at start (`django.setup()`, the serving thread settings, `backends_warm_up_start()` "
        "with `SUPPORT_WARMUP` off or on) and answers "
        f"“{w.get('first_question', '?')}”, then {num(len(w.get('warm_questions') or []))} other "
        "questions (warm). TTFT is the answer's `first_token_ms`: from `answer_compose` to the "
        "model's first token, so it holds retrieval, any model loading and the prompt's "
        "evaluation. *first / warm* is the first answer's TTFT over the median warm TTFT of the "
        "same process (median over starts, the worst in brackets); *ready after* is the "
        "process's start to its first question. The models were loaded once before the "
        "measured starts (page cache, converted model copy), as on a restart of the same "
        f"machine. Load average at the start: {num(m.get('loadavg_1m'), 2)} on "
        f"{num(m.get('cpus'))} CPUs.",
        "",
    ]
    rows = []
    for mode, label in WARMUP_MODES.items():
        s = summary.get(mode)
        if not s:
            continue
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in (s.get("warm_up_parts_s") or {}).items())
        rows.append(
            [
                label,
                num(s.get("starts")),
                sec(s.get("first_ttft_s")),
                sec(s.get("first_retrieval_s")),
                sec(s.get("warm_ttft_s")),
                f"{times(s.get('ratio'), 1)} ({times(s.get('ratio_max'), 1)})",
                sec(s.get("ready_s"), 1),
                f"{sec(s.get('warm_up_s'), 1)}: {parts}" if parts else "—",
            ]
        )
    lines += [
        table(
            [
                "warm-up",
                "starts",
                "first TTFT p50",
                "of which retrieval",
                "warm TTFT p50",
                "first / warm",
                "ready after",
                "warm-up (parts)",
            ],
            rows,
            "lrrrrrrl",
        ),
        "",
    ]
    on = summary.get("on") or {}
    if on.get("ratio") is not None:
        met = "met" if w.get("target_met") else "**not met**"
        lines += [
            f"Target (issue 12): with the warm-up on, the first answer within "
            f"{num(w.get('target_ratio'), 1)}× a warm one: {met} "
            f"({times(on.get('ratio'), 1)}).",
            "",
        ]
    if not all(s.get("all_generated", True) for s in summary.values()):
        lines += ["Some answers were not generated by the model; their TTFT is missing.", ""]
    return lines


def section_answers(results: Mapping[str, Any]) -> list[str]:
    lines = ["## Answers (`bench/answers.py`)", ""]
    note = _status_note(results, "answers")
    if note:
        return [*lines, note, ""]
    a = fig.result(results, "answers")
    summaries = a.get("summary") or {}
    s = summaries.get("all") or {}
    settings = a.get("settings") or {}
    lines += [
        f"`python bench/answers.py`: {num(s.get('questions'))} first-turn questions "
        f"({num(s.get('graded'))} graded statements, {num(s.get('answerable'))} answerable, "
        f"{num(s.get('unanswerable'))} unanswerable) through `answer_compose`, the code path of "
        "`manage.py ask` (retrieval included), on the eval knowledge base. Quality is measured "
        "against the human agent's reply with token F1 and ROUGE-L (citation markers stripped, "
        "lowercased, punctuation and articles removed, SQuAD-style); declined questions score 0 "
        'in "all graded". Baseline (same run, same retrieval): the sentence of the top '
        "passage that shares most of the question's content words, quoted whole. The even "
        "questions (dev) were used for tuning; the odd ones (test) were not.",
        "",
    ]
    splits = [(name, summaries[name]) for name in ("all", "test", "dev") if summaries.get(name)]
    headers = ["measure"] + [f"{name}: pipeline / baseline" for name, _ in splits]

    def pair(key: str, base: str | None, fmt: Any = num) -> list[str]:
        return [f"{fmt(x.get(key))} / {fmt(x.get(base)) if base else '—'}" for _, x in splits]

    rows = [
        ["token F1 (all graded; declined = 0)", *pair("f1", "baseline_f1")],
        ["ROUGE-L (all graded)", *pair("rouge_l", "baseline_rouge_l")],
        ["token F1 (answered only)", *pair("f1_answered", "baseline_f1_answered")],
        ["ROUGE-L (answered only)", *pair("rouge_l_answered", "baseline_rouge_l_answered")],
        ["content words found in the prompt's facts", *pair("support_prompt", None)],
        ["content words found in the top-3 passages", *pair("support_passages", None)],
        ["unanswerable declined", *[pct(x.get("unanswerable_declined")) for _, x in splits]],
        ["answerable declined", *[pct(x.get("answerable_declined")) for _, x in splits]],
    ]
    lines += [table(headers, rows), ""]
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted((s.get("reasons") or {}).items()))
    lines += [
        table(
            ["generation (all questions)", "value"],
            [
                ["generations", num(s.get("generations"))],
                ["generations passing the groundedness gate", pct(s.get("grounded_rate"))],
                ["final answers grounded (answer or quote)", pct(s.get("final_answers_grounded"))],
                ["outcomes", outcomes or "—"],
                [
                    "model TTFT p50 / p95",
                    f"{ms(s.get('ttft_ms_p50'), 0)} / {ms(s.get('ttft_ms_p95'), 0)}",
                ],
                [
                    "first streamed text p50 (retrieval included)",
                    ms(s.get("first_delta_ms_p50"), 0),
                ],
                [
                    "total per generated answer p50 / p95",
                    f"{ms(s.get('generated_total_ms_p50'), 0)} / "
                    f"{ms(s.get('generated_total_ms_p95'), 0)}",
                ],
                [
                    "total per question p50 / p95",
                    f"{ms(s.get('total_ms_p50'), 0)} / {ms(s.get('total_ms_p95'), 0)}",
                ],
                ["retrieval p50", ms(s.get("retrieval_ms_p50"), 0)],
                [
                    "tokens generated / prompt tokens (mean)",
                    f"{num(s.get('tokens_mean'), 1)} / {num(s.get('prompt_tokens_mean'), 0)}",
                ],
            ],
        ),
        "",
    ]
    shown = [
        f"{label} {fmt.format(settings[key])}"
        for key, label, fmt in (
            ("prompt_version", "prompt", "`{}`"),
            ("retrieval_min_confidence", "minimum retrieval confidence", "{}"),
            ("model", "model", "`{}`"),
            ("backend", "backend", "`{}`"),
            ("threads", "threads", "{}"),
        )
        if settings.get(key) is not None
    ]
    if shown:
        lines += [f"Settings: {', '.join(shown)}.", ""]
    return lines


def section_cost(results: Mapping[str, Any]) -> list[str]:
    derived = fig.derive(results)
    cost, stack, busy = derived["cost"], derived["cost_stack"], derived["cost_throughput"]
    lines = ["## Cost per answer", ""]
    prices = (
        f"Prices: compute at the on-demand list price of an {fig.VM_NAME}, "
        f"{price(fig.VM_USD_PER_HOUR)} per hour, i.e. {price(fig.VCPU_HOUR_USD)} per vCPU-hour "
        f"({fig.VM_PRICE_SOURCE}, looked up {fig.VM_PRICE_DATE}); one CPU-second of a process "
        "is counted as one vCPU-second. For comparison, Intercom publicly lists its Fin AI agent "
        f"at **{usd(fig.FIN_USD_PER_RESOLUTION)} per resolution** (pricing page "
        f'{fig.FIN_PRICE_SOURCE} and help article "Fin AI Agent resolutions", '
        f"{fig.FIN_HELP_ARTICLE}, looked up {fig.FIN_PRICE_DATE}). Both prices are constants in "
        "`bench/_figures.py`."
    )
    if not cost:
        note = _status_note(results, "answers") or "No CPU time was recorded for the answers run."
        return [*lines, note, "", prices, ""]
    lines += [
        f"The answers run spent {num(cost['cpu_s'], 0)} CPU-seconds ({cost['basis']}) on "
        f"{num(cost['questions'])} questions, {num(cost['answered'])} of them answered (the rest "
        f"were declined and handed to a person): **{cost['cpu_s_per_answer']:.2f} CPU-seconds "
        f"per answered question**, retrieval, generation and the grounding checks included. At "
        f"{price(fig.VCPU_HOUR_USD)} per vCPU-hour that is **{usd(cost['usd_per_answer'])} per "
        f"answer** ({usd(cost['usd_per_1000_answers'])} per 1,000; "
        f"{num(cost['answers_per_vcpu_hour'], 0)} answers per vCPU-hour). Fin's price per "
        f"resolution is **{fold(cost['times_cheaper'])}** that.",
        "",
    ]
    if cost.get("cpu_s_loop") and cost.get("cpu_s_process"):
        lines += [
            f"(The whole answers process, loading the models included, used "
            f"{num(cost['cpu_s_process'], 0)} CPU-seconds.)",
            "",
        ]
    extra = []
    if stack:
        extra.append(
            f"- The whole serving stack under chat load (`bench/chat_load.py`: every process it "
            f"started, idle moments included): {stack['cpu_s_per_answer']:.2f} "
            f"CPU-seconds per answer over {num(stack['answers'])} answers → "
            f"{usd(stack['usd_per_answer'])} per answer."
        )
    if busy:
        extra.append(
            f"- A fully busy {busy['vcpus']}-vCPU machine at the best chat throughput measured "
            f"({num(busy['answers_per_hour'], 0)} answers per hour) costs "
            f"{price(busy['usd_per_hour'])} per hour, i.e. {usd(busy['usd_per_answer'])} per "
            f"answer (Fin's price is {fold(busy['times_cheaper'])} that)."
        )
    if extra:
        lines += ["Cross-checks from the same run:", "", *extra, ""]
    lines += [
        prices,
        "",
        "What this comparison leaves out: a machine is billed while it waits for customers; "
        "memory, storage, network and the people who run the service cost extra; and a Fin "
        "*resolution* is a conversation closed without the customer asking for more help, while "
        "an answered question here may still end with a person. Declined questions are not "
        "counted as answers, but their CPU time is.",
        "",
    ]
    return lines


def section_escalation(results: Mapping[str, Any]) -> list[str]:
    lines = ["## Escalation (`bench/escalation.py`)", ""]
    note = _status_note(results, "escalation")
    if note:
        return [*lines, note, ""]
    # Imported here: _escalation_report builds on this module's formatters.
    from bench import _escalation_report

    e = fig.result(results, "escalation")
    sample = e.get("sample") or 1
    lines += _escalation_report.provenance(results, e)
    lines += [
        f"`python bench/escalation.py`: {num(e.get('messages'))} labelled customer messages "
        "(`../shared/eval/escalation/messages.jsonl`"
        + (f"; every {sample}th pair of lines in the quick profile" if sample > 1 else "")
        + "), each decided as the first message of a new conversation with the real embedder. "
        "Scored reasons: `customer_request` + `frustration`; rules, example phrasings and "
        "thresholds were tuned on the even lines only, and are reported on the held-out odd "
        "lines too. Targets: precision ≥ 0.95, recall ≥ 0.90.",
        "",
    ]
    rows = []
    for name, r in (e.get("results") or {}).items():
        rows.append(
            [
                name,
                num(r.get("precision")),
                num(r.get("recall")),
                r.get("tp"),
                r.get("fp"),
                r.get("fn"),
                f"{r.get('undecided_escalated')} / {r.get('undecided')}",
            ]
        )
    lines += [
        table(
            [
                "split",
                "precision",
                "recall",
                "TP",
                "FP",
                "FN",
                'undecided ("how do I contact you") escalated',
            ],
            rows,
        ),
        "",
    ]
    t, tr = e.get("time_ms") or {}, e.get("time_ms_rules_only") or {}
    if t:
        lines += [
            f"Decision time per message (embedder warm): p50 {ms(t.get('p50'))}, p95 "
            f"{ms(t.get('p95'))} with embeddings (what the worker runs before answering); the "
            f"rules alone (what the web process runs on every message) p50 {ms(tr.get('p50'), 2)}, "
            f"p95 {ms(tr.get('p95'), 2)}.",
            "",
        ]
    d = e.get("doc2dial_questions") or {}
    if d:
        lines += [
            f"Must-not-escalate check: of {num(d.get('questions'))} ordinary help-centre questions "
            f"(doc2dial first and later turns), {num(d.get('escalated'))} escalated by "
            f"`customer_request`/`frustration` ({pct(d.get('rate'), 1)}).",
            "",
        ]
    return lines + _escalation_report.section(e)


def section_chat_load(results: Mapping[str, Any], images: Sequence[str], img: str) -> list[str]:
    lines = ["## Live chat under load (`bench/chat_load.py`)", ""]
    note = _status_note(results, "chat_load")
    if note:
        return [*lines, note, ""]
    c = fig.result(results, "chat_load")
    cfg = c.get("config") or {}
    if cfg.get("topology") == "embedded":
        topology = (
            "`make run`'s topology, started by the script: one `manage.py serve` process "
            "(uvicorn with the Celery worker as a thread, concurrency 2), SQLite, the in-memory "
            "channel layer and broker, the demo knowledge base, the default model."
        )
    else:
        topology = (
            "Production-style topology started by the script: one uvicorn process, one "
            "separate Celery worker process (`--pool threads --concurrency 1`), a private Redis, "
            f"a fresh {cfg.get('database', 'PostgreSQL')} database, the demo knowledge base, the "
            "default model."
        )
    lines += [
        topology + f" Simulated customers over real websockets, each asking "
        f"{cfg.get('questions_per_customer', '?')} of 10 demo questions; the 1.2 s debounce is "
        "included in every time to first delta (TTFD). The baseline for each level is one "
        "conversation alone.",
        "",
    ]
    levels = sorted(c.get("levels") or [], key=lambda lv: lv.get("concurrency", 0))
    one = next((lv for lv in levels if lv.get("done_p50_s") is not None), None)
    rows = [
        [
            lv.get("concurrency"),
            lv.get("asked"),
            lv.get("answered"),
            sec(lv.get("ttfd_p50_s")),
            sec(lv.get("ttfd_p95_s")),
            sec(lv.get("done_p50_s")),
            sec(lv.get("done_p95_s")),
            num(lv.get("answers_per_min"), 1),
            num(lv.get("cpu_s_per_answer"), 2),
            times(fig.ratio(lv.get("done_p50_s"), (one or {}).get("done_p50_s")), 1),
        ]
        for lv in levels
    ]
    lines += [
        table(
            [
                "concurrent conversations",
                "asked",
                "answered",
                "TTFD p50",
                "TTFD p95",
                "done p50",
                "done p95",
                "answers/min",
                "CPU s/answer",
                "done p50 vs 1",
            ],
            rows,
            "rrrrrrrrrr",
        ),
        "",
        *_img(images, "chat_load.png", "latency and throughput against concurrency", img),
    ]
    warm = c.get("warmup") or {}
    if warm.get("done_s") is not None:
        lines += [
            f"Cold first answer (the worker loads and converts the models): first delta "
            f"{sec(warm.get('first_delta_s'), 1)}, stored {sec(warm.get('done_s'), 1)}; not "
            "included above.",
            "",
        ]
    idle = c.get("idle") or {}
    if idle:
        lines += [
            f"Idle connections held by one ASGI process: **{num(idle.get('alive'))} of "
            f"{num(idle.get('target'))}** opened and alive after {num(idle.get('hold_s'), 0)} s "
            f"quiet (app-level ping on all, protocol ping on {num(idle.get('ws_ping_sample'))}); "
            f"its RSS went from {num(idle.get('web_rss_before_mb'), 0)} MB to "
            f"{num(idle.get('web_rss_after_mb'), 0)} MB (≈ {num(idle.get('rss_per_connection_kb'), 0)} "
            "KB per connection"
            + (" with permessage-deflate" if cfg.get("compression") else "")
            + ").",
            "",
        ]
    if levels:
        best = max((lv.get("answers_per_min") or 0) for lv in levels)
        worker = max((lv.get("worker_rss_mb") or 0) for lv in levels)
        lost = sum((lv.get("asked") or 0) - (lv.get("answered") or 0) for lv in levels)
        lines += [
            f"Reading: throughput is bounded by generation (about {best:.0f} answers per minute "
            "here), and latency grows with the number of simultaneous questions: scale by adding "
            f"worker processes (one model copy each; the worker's RSS was about {worker:.0f} MB). "
            + (
                "No answer was lost at any level."
                if lost == 0
                else f"{lost} question(s) got no stored answer within the time limits."
            ),
            "",
        ]
    found = {k: v for k, v in (c.get("log_exceptions") or {}).items() if v}
    if found:
        text = "; ".join(
            f"{k}: " + ", ".join(f"{e} ×{n}" for e, n in v.items()) for k, v in found.items()
        )
        lines += [f"Unhandled exceptions in the server logs: {text}.", ""]
    lines += [
        "This benchmark found two real defects, fixed before these figures: with redis-py 8, "
        "channels-redis 4.3 dropped quiet sockets every ~5 s (read timeout shorter than its "
        "BZPOPMIN wait) and crashed consumers on connect/disconnect bursts (pool capped at 100). "
        "The product's `support.channel_layers.RedisChannelLayer` (read timeout above the wait, a "
        "larger pool) fixes both (tests in `tests/foundation/test_channel_layer.py` fail on the "
        "stock layer).",
        "",
    ]
    return lines


def section_conversations(results: Mapping[str, Any]) -> list[str]:
    lines = ["## Scripted conversations (`bench/conversations.py`)", ""]
    note = _status_note(results, "conversations")
    if note:
        return [*lines, note, ""]
    c = fig.result(results, "conversations")
    s = c.get("summary") or {}
    lines += [
        "`python bench/conversations.py` plays every conversation of "
        "`tests/conversations/cases.py` (the CI test's cases, the same runner) through the real "
        "chat path: the customer's websocket, the services, the answer task with the real "
        "embedder and chat model over `make run`'s demo knowledge base, and the agent services "
        "(claim, reply, hand back, resolve). A case passes when every turn has the expected "
        "outcome (answer, decline, handoff, acknowledgement) and its reply states each fact it "
        "must and none it must not: follow-ups, topic switches, off-topic after on-topic, hand "
        "back, paraphrases, numbers and codes. Target: every case passes.",
        "",
        table(
            ["measure", "value"],
            [
                ["conversations passed", f"{num(s.get('passed'))} / {num(s.get('cases'))}"],
                ["pass rate", pct(s.get("pass_rate"))],
                ["turns passed", f"{num(s.get('turns_passed'))} / {num(s.get('turns'))}"],
                ["wall time", sec(c.get("seconds"), 0)],
            ],
            "lr",
        ),
        "",
    ]
    failing = s.get("failing") or []
    if failing:
        lines += ["Failing conversations and what went wrong:", ""]
        lines += [f"- **{f['case']}**: {' | '.join(f['problems'])}" for f in failing]
        lines.append("")
    return lines


REPORTS_BY_HAND_FILE = Path(__file__).resolve().parent / "results" / "reports-by-hand.json"


def load_reports_by_hand(path: Path = REPORTS_BY_HAND_FILE) -> dict[str, Any] | None:
    """The committed by-hand run of bench/reports.py (the sizes the suite does not run)."""
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None


def section_reports(
    results: Mapping[str, Any], by_hand: Mapping[str, Any] | None = None
) -> list[str]:
    lines = ["## Reports (`bench/reports.py`)", ""]
    note = _status_note(results, "reports")
    if note:
        return [*lines, note, ""]
    r = fig.result(results, "reports")
    m = r.get("machine") or {}
    lines += [
        f"`python bench/reports.py` seeds "
        f"{' and '.join(num(n) for n in r.get('sizes') or [r.get('conversations')])} "
        "conversations over "
        f"{num(r.get('days'))} days with `bulk_create` into a fresh database (the mix is in the "
        "script's docstring: declines, thumbs, hand-overs with claims, replies and ratings, "
        "returning customers) and times the reports of docs/reports.md. *fill* is the first "
        "report of the month with an empty rollup table: every day computed from the raw rows "
        "by grouped queries and stored; *one day* is what a beat run costs per changed day; "
        "*month from the rollup* is `report_build` over the month once the days are stored "
        "(median of 5); *report page* is the admin report page of the month as a manager "
        "opens it (tables, SVG charts and template; median of 5); *`report --json`* runs the command in a fresh process, Django's start "
        "included (a bare `manage.py check` beside it); *beat run* is `report_rollup_run` an "
        "hour after the last message; the metrics columns are the first `/metrics` snapshot of "
        "a process (it reads the whole history) and the next one. Load average at the start: "
        f"{num(m.get('loadavg_1m'), 2)} on {num(m.get('cpus'))} CPUs.",
        "",
    ]
    rows = []
    runs = list(r.get("runs") or [])
    done = {(x.get("database"), x.get("conversations")) for x in runs if "report_s" in x}
    hand_runs = [
        {**x, "by_hand": True}
        for x in (by_hand or {}).get("runs") or []
        if "report_s" in x and (x.get("database"), x.get("conversations")) not in done
    ]
    for run in [*runs, *hand_runs]:
        if "skipped" in run or "error" in run:
            why = run.get("skipped") or "failed (see the results file)"
            rows.append([run.get("database", "?"), "", why, "", "", "", "", "", "", ""])
            continue
        rows.append(
            [
                run["database"] + (" (by hand)" if run.get("by_hand") else ""),
                num(run.get("conversations")),
                sec(run.get("seed_s"), 0),
                f"{sec(run.get('fill_s'), 1)} ({sec(run.get('fill_per_day_s'))}/day)",
                sec(run.get("day_refresh_s")),
                ms((run.get("report_s") or 0) * 1000, 0),
                ms(run["page_s"] * 1000, 0) if run.get("page_s") is not None else "—",
                f"{sec(run.get('command_s'))} ({sec(run.get('django_start_s'))})",
                f"{sec(run.get('beat_run_s'))} ({num(run.get('beat_days'))} days)",
                f"{sec(run.get('metrics_first_scrape_s'))} / "
                f"{ms((run.get('metrics_next_scrape_s') or 0) * 1000, 0)}",
            ]
        )
    lines += [
        table(
            [
                "database",
                "conversations",
                "seed",
                "fill",
                "one day",
                "month from the rollup",
                "report page",
                "`report --json` (bare start)",
                "beat run",
                "metrics first / next",
            ],
            rows,
            "lrrrrrrrrr",
        ),
        "",
    ]
    if hand_runs:
        hm = (by_hand or {}).get("machine") or {}
        lines += [
            "Rows marked *(by hand)* are sizes the suite does not run (`bench/run.py` gives "
            "SQLite 20,000 conversations, PostgreSQL 20,000 and 100,000 when DATABASE_URL names "
            "one): `python bench/reports.py --conversations "
            f"{','.join(str(n) for n in (by_hand or {}).get('sizes') or [])}` on "
            f"{(by_hand or {}).get('date') or '?'!s}, load average "
            f"{num(hm.get('loadavg_1m'), 1)} at its start "
            "(`bench/results/reports-by-hand.json`).",
            "",
        ]
    pgs = [
        x
        for x in [*runs, *hand_runs]
        if x.get("database") == "postgresql" and x.get("report_s") is not None
    ]
    pg = max(pgs, key=lambda x: x.get("conversations") or 0, default=None)
    if pg is not None:
        target = r.get("target_report_s") or 1.0
        worst = max(pg["report_s"], pg.get("page_s") or 0.0)
        met = "met" if worst < target else "**not met**"
        lines += [
            f"Target (issue 16): a month of {num(pg.get('conversations'))} conversations in "
            f"under {num(target, 0)} s on PostgreSQL: {met} ({ms(pg['report_s'] * 1000, 0)}"
            + (
                f"; the report page {ms(pg['page_s'] * 1000, 0)}"
                if pg.get("page_s") is not None
                else ""
            )
            + ").",
            "",
        ]
    return lines


def section_training_load(results: Mapping[str, Any]) -> list[str]:
    lines = ["## Answering while a specialisation trains (`bench/training_load.py`)", ""]
    note = _status_note(results, "training_load")
    if note:
        return [*lines, note, ""]
    r = fig.result(results, "training_load")
    if r.get("skipped"):
        return [*lines, f"Skipped: {r['skipped']}.", ""]
    s = r.get("summary") or {}
    idle, loaded = s.get("idle") or {}, s.get("loaded") or {}
    loads = s.get("loadavg_1m") or {}
    m = r.get("machine") or {}
    lines += [
        "`python bench/training_load.py` answers the demo knowledge base's questions through "
        "`answer_compose` (retrieval, the decision, the chat model) in one serving process "
        "(`make run`'s settings, the serving thread settings, models warmed up) while the "
        f"trainer (`{r.get('trainer')}`) runs beside it as the training worker does: "
        f"`nice -n {num(r.get('trainer_niceness'))}`, "
        f"`SUPPORT_SPECIALISE_THREADS={num(r.get('trainer_threads'))}`. The trainer of the "
        "retriever is `manage.py specialise --retrieval` (the Celery task's `run_execute`) over "
        f"{num(r.get('examples'))} approved examples made from the demo pages, with epochs enough "
        "to outlast the measurement. Each of "
        f"{num(len(r.get('questions') or []))} questions is asked {num(r.get('rounds'))} "
        "time(s) idle and as often while training, in alternating order and never twice in a row "
        "(the model reuses the previous prompt's prefix), the trainer paused (SIGSTOP) for the "
        "idle answers: both halves share the machine's other load and the trainer's state. The loaded answers start once the run is in its training stage. TTFT "
        "is `first_token_ms` (question to the model's first token, retrieval and prompt "
        f"included); answers cut to {num(r.get('max_answer_tokens'))} tokens. *trainer cores* is "
        "the CPU the trainer used while the answers ran. Load average (1 min) before the "
        f"answers: {num(loads.get('min'), 1)} to {num(loads.get('max'), 1)} on "
        f"{num(m.get('cpus'))} CPUs.",
        "",
        table(
            ["phase", "answers", "TTFT p50", "TTFT p95", "trainer cores"],
            [
                [
                    "idle (trainer paused)",
                    num(idle.get("n")),
                    sec(idle.get("p50_s")),
                    sec(idle.get("p95_s")),
                    num(s.get("trainer_cores_idle"), 2),
                ],
                [
                    "while training",
                    num(loaded.get("n")),
                    sec(loaded.get("p50_s")),
                    sec(loaded.get("p95_s")),
                    num(s.get("trainer_cores_loaded"), 2),
                ],
            ],
            "lrrrr",
        ),
        "",
    ]
    met = "met" if r.get("target_met") else "**not met**"
    lines += [
        f"Target (issues 14 and 15): TTFT while training ≤ {num(r.get('target_ratio'), 1)}× "
        f"idle: {met} (medians {times(s.get('ratio_p50'))}, p95 {times(s.get('ratio_p95'))}, "
        f"median per question {times(s.get('pair_ratio_median'))}).",
        "",
    ]
    return lines


def section_specialise(results: Mapping[str, Any]) -> list[str]:
    """The chat model and the retriever specialised on one half of the dev dialogues."""
    lines = ["## Specialising on the company's past answers (`bench/specialise.py`)", ""]
    note = _status_note(results, "specialise")
    r = fig.result(results, "specialise")
    if note:
        lines += [note, ""]
    elif r:
        before, after = fig.dig(r, "pooled", "before") or {}, fig.dig(r, "pooled", "after") or {}
        folds = r.get("folds") or []
        lines += [
            "`python bench/specialise.py` imports one half's agent replies of the doc2dial dev "
            "dialogues as approved examples (question, history, answer: no span, no document), "
            "specialises the chat model on them through `specialise --model --force` (samples "
            "built as the answer pipeline builds its prompt, LoRA, GGUF export and its check, "
            "the gate, whose verdict is recorded; forced so that the effect is measured), and "
            "answers the other half's questions through the full pipeline with the shipped and "
            "the specialised model. "
            + (
                "Quick run: one fold, a capped number of replies, questions and steps. "
                if r.get("quick")
                else ""
            )
            + "F1 and ROUGE-L against the agents' replies (a decline scores 0); extractive F1 "
            "quotes the top passage's best sentence; support is the share of the answers' "
            "content words found in their facts.",
            "",
            table(
                [
                    "model",
                    "questions",
                    "F1",
                    "ROUGE-L",
                    "extractive F1",
                    "support",
                    "unanswerable declined",
                    "answerable declined",
                    "TTFT p50",
                    "tokens/s",
                ],
                [
                    [
                        label,
                        num(p.get("questions")),
                        num(p.get("f1")),
                        num(p.get("rouge_l")),
                        num(p.get("baseline_f1")),
                        num(p.get("support_prompt")),
                        num(p.get("unanswerable_declined")),
                        num(p.get("answerable_declined")),
                        sec((p.get("ttft_ms_p50") or 0) / 1000 or None),
                        num(p.get("tokens_per_s"), 1),
                    ]
                    for label, p in (("shipped", before), ("specialised", after))
                ],
                "lrrrrrrrrr",
            ),
            "",
            table(
                ["fold", "samples", "steps", "training", "peak RSS", "served", "gate"],
                [
                    [
                        f.get("fold"),
                        num(f.get("trained_on")),
                        num(f.get("steps")),
                        sec(f.get("training_s"), 0),
                        f"{num(f.get('peak_rss_mb'), 0)} MB",
                        f.get("served_qtype") or "–",
                        "promoted" if f.get("gate_promoted") else "refused",
                    ]
                    for f in folds
                ],
                "lrrrrll",
            ),
            "",
        ]
        t = r.get("targets") or {}
        met = (
            (after.get("f1") or 0) >= t.get("f1", 1)
            and (after.get("support_prompt") or 0) >= t.get("support", 1)
            and (after.get("unanswerable_declined") or 0) >= t.get("unanswerable_declined", 1)
        )
        lines += [
            f"Target (issue 15): F1 ≥ {num(t.get('f1'), 2)} with support ≥ "
            f"{num(t.get('support'), 2)} and unanswerable declined ≥ "
            f"{num(t.get('unanswerable_declined'), 2)}: {'met' if met else '**not met**'}.",
            "",
        ]
    rnote = _status_note(results, "specialise_retrieval")
    rr = fig.result(results, "specialise_retrieval")
    lines += ["### The retriever (`bench/specialise_retrieval.py`)", ""]
    if rnote:
        return [*lines, rnote, ""]
    if not rr:
        return lines
    lines += [
        "The same split for the retriever: `specialise --retrieval --force` on one half's "
        "replies, span recall@5 and MRR@10 of the other half's answerable questions before and "
        "after, without question memory (the retriever alone)"
        + (" (quick run: one fold, capped replies and questions)." if rr.get("quick") else "."),
        "",
        table(
            ["fold", "pairs", "steps", "training", "recall@5", "MRR@10", "gate"],
            [
                [
                    f.get("fold"),
                    num(f.get("trained_on")),
                    num(f.get("steps")),
                    sec(f.get("training_s"), 0),
                    f"{num(fig.dig(f, 'before', 'recall_at_5'))} → "
                    f"{num(fig.dig(f, 'after', 'recall_at_5'))}",
                    f"{num(fig.dig(f, 'before', 'mrr_at_10'))} → "
                    f"{num(fig.dig(f, 'after', 'mrr_at_10'))}",
                    (f.get("gate") or "")[:90],
                ]
                for f in rr.get("folds") or []
            ],
            "lrrrrrl",
        ),
        "",
    ]
    return lines


def section_learning(results: Mapping[str, Any]) -> list[str]:
    lines = ["## Learning from past conversations: question memory (`bench/learning.py`)", ""]
    note = _status_note(results, "learning")
    if note:
        return [*lines, note, ""]
    r = fig.result(results, "learning")
    pooled = r.get("pooled") or {}
    lines += [
        "`python bench/learning.py` splits the doc2dial dialogues by dialogue into two halves. "
        "One half's agent replies are imported as a help desk would have them "
        "(`examples_import`: question, history and reply; no span, no document, so grounding is "
        "inferred from the reply; the held-back split applies) and approved; "
        "`index_rebuild` publishes the question memory. Then every turn of the other half is "
        "searched as a standalone query, without the memory (before) and with it (after), and "
        "the halves swap. The memory weight of each fold is chosen by cross-validation inside "
        "its training half with the least key score that counts, never on the evaluated half; "
        f"*shipped* uses the defaults ({num(r.get('shipped_memory_weight'), 1)} / "
        f"{num(r.get('shipped_memory_min_score'), 2)}) instead. Declines are the retrieval "
        f"decision (confidence below {num(r.get('threshold'), 2)}). "
        f"{num(r.get('dialogues'))} dialogues, {num(r.get('turns'))} turns, "
        f"{num(r.get('imported'))} replies imported, "
        f"{num(r.get('held_back_percent'))} % of exchanges held back.",
        "",
    ]
    rows = []
    for fold in [*(r.get("folds") or []), {"fold": "pooled", **pooled}]:
        b, a = fold.get("before") or {}, fold.get("after") or {}
        cv = fold.get("weight_cv") or {}
        rows.append(
            [
                fold.get("fold"),
                (
                    f"{num(cv.get('chosen'), 1)} / {num(cv.get('chosen_min_score'), 2)}"
                    if cv
                    else "—"
                ),
                num(b.get("answerable")),
                f"{num(b.get('recall@5'))} → {num(a.get('recall@5'))}",
                f"{num(b.get('mrr@10'))} → {num(a.get('mrr@10'))}",
                f"{pct(b.get('unanswerable_declined'))} → {pct(a.get('unanswerable_declined'))}",
                f"{pct(b.get('answerable_declined'))} → {pct(a.get('answerable_declined'))}",
                num(fig.dig(fold, "after_shipped", "recall@5")),
                num(fold.get("keys")) if "keys" in fold else "—",
                sec(fold.get("memory_build_s"), 1) if "memory_build_s" in fold else "—",
            ]
        )
    lines += [
        table(
            [
                "fold",
                "weight / least key score (CV)",
                "answerable",
                "recall@5",
                "MRR@10",
                "unanswerable declined",
                "answerable declined",
                "recall@5, shipped",
                "keys",
                "memory build",
            ],
            rows,
            "llrrrrrrrr",
        ),
        "",
    ]
    first = pooled.get("first_turns") or {}
    if first:
        lines += [
            f"First turns only: recall@5 {num(fig.dig(first, 'before', 'recall@5'))} → "
            f"{num(fig.dig(first, 'after', 'recall@5'))}, MRR@10 "
            f"{num(fig.dig(first, 'before', 'mrr@10'))} → "
            f"{num(fig.dig(first, 'after', 'mrr@10'))}.",
            "",
        ]
    met = "met" if r.get("target_met") else "**not met**"
    lines += [
        f"Target (issue 14): recall@5 ≥ {num(r.get('target_recall5'), 2)} on the evaluated "
        f"halves: {met} ({num(fig.dig(pooled, 'after', 'recall@5'))}). Peak RSS "
        f"{num(r.get('peak_rss_mb'), 0)} MiB, {sec(r.get('seconds'), 0)} in all.",
        "",
    ]
    return [*lines, *_learning_answers(r)]


_ANSWER_VARIANTS = (
    ("before", "neither"),
    ("question_memory", "question memory alone"),
    ("answer_memory", "answer memory alone"),
    ("both", "both"),
)


def _learning_answers(r: Mapping[str, Any]) -> list[str]:
    """Answer memory's table: each mechanism alone and both, on the answers (no generation:
    the pipeline's quote or decline, or the approved answer)."""
    pooled = fig.dig(r, "pooled", "answer_memory") or {}
    if not pooled:
        return []
    lines = [
        "### Answer memory",
        "",
        "The same folds through the answer pipeline without generation (`decide`, then the "
        "quote or the decline, or answer memory's approved answer): answer token F1 against "
        "the agent's reply over the graded questions (a decline scores 0), how many answers "
        "came from memory and their F1 next to what the same questions got without it, how many "
        "matches the fact check refused, and the pipeline's declines. The similarity threshold "
        "of each fold is cross-validated inside its training half (answer F1; above 1 is off); "
        f"the shipped default is {num(r.get('shipped_answer_memory_min_similarity'), 2)}.",
        "",
    ]
    rows = []
    for fold in [*(r.get("folds") or []), {"fold": "pooled", "answer_memory": pooled}]:
        am = fold.get("answer_memory") or {}
        chosen = fig.dig(am, "threshold_cv", "chosen")
        for key, label in _ANSWER_VARIANTS:
            m = am.get(key) or {}
            uses_memory = key in ("answer_memory", "both")
            rows.append(
                [
                    fold.get("fold"),
                    label,
                    (num(chosen, 2) if chosen is not None else "per fold") if uses_memory else "—",
                    num(m.get("answer_f1")),
                    num(m.get("from_memory")),
                    (
                        f"{num(m.get('from_memory_f1'))} vs {num(m.get('from_memory_f1_without'))}"
                        if m.get("from_memory_graded")
                        else "—"
                    ),
                    num(m.get("rejected_by_check")),
                    pct(m.get("unanswerable_declined")),
                    pct(m.get("answerable_declined")),
                ]
            )
    lines += [
        table(
            [
                "fold",
                "mechanisms",
                "threshold (CV)",
                "answer F1",
                "from memory",
                "their F1 vs without",
                "refused by the check",
                "unanswerable declined",
                "answerable declined",
            ],
            rows,
            "lllrrrrrr",
        ),
        "",
    ]
    generated = pooled.get("generated") or {}
    if generated.get("questions"):
        lines += [
            f"Against the model: for {num(generated.get('questions'))} of the answers from "
            f"memory the whole pipeline (generation included, answer memory off) scored F1 "
            f"{num(generated.get('generated_f1'))}; the approved answers "
            f"{num(generated.get('memory_f1'))}.",
            "",
        ]
    return lines


def render_benchmarks(
    results: Mapping[str, Any],
    *,
    results_file: str,
    images: Sequence[str] = (),
    img_prefix: str = "img/",
) -> str:
    """The whole docs/benchmarks.md."""
    parts = [
        *section_header(results, results_file),
        *section_headline(results),
        *section_run(results),
        *section_retrieval(results, images, img_prefix),
        *section_retrieval_variants(load_variants()),
        *section_tune(results),
        *section_generation(results, images, img_prefix),
        *section_warmup(results),
        *section_answers(results),
        *section_conversations(results),
        *section_reports(results, load_reports_by_hand()),
        *section_learning(results),
        *section_training_load(results),
        *section_specialise(results),
        *section_cost(results),
        *section_escalation(results),
        *section_chat_load(results, images, img_prefix),
    ]
    text = "\n".join(parts)
    return re.sub(r"\n{3,}", "\n\n", text).rstrip() + "\n"
