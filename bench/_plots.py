"""PNG plots for docs/benchmarks.md, drawn from a merged results file (matplotlib, Agg backend).

Each plot is written only when its data is in the results; `write_plots` returns the files it
wrote, so the report links exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import _figures as fig

# PNG metadata without the matplotlib version: re-rendering the same results gives the same file.
_META = {"Software": None}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ecdf(ax: Any, values: Sequence[float], label: str, **style: Any) -> None:
    xs = sorted(v for v in values if v is not None)
    if not xs:
        return
    ys = [0.0] + [(i + 1) / len(xs) for i in range(len(xs))]
    ax.step([xs[0], *xs], ys, where="post", label=f"{label} (n={len(xs)})", **style)


def plot_latency(results: Mapping[str, Any], path: Path) -> bool:
    """Time to first token and total answer time, as distributions, per backend and mode."""
    gen = fig.result(results, "generation").get("results") or {}
    answer_rows = fig.result(results, "answers").get("rows") or []
    series = [
        (
            key,
            [r.get("ttft_s") for r in v.get("rows") or []],
            [r.get("total_s") for r in v.get("rows") or []],
        )
        for key, v in sorted(gen.items())
    ]
    e2e_total = [
        r["total_ms"] / 1000 for r in answer_rows if not r.get("declined") and r.get("total_ms")
    ]
    e2e_first = [r["first_delta_ms"] / 1000 for r in answer_rows if r.get("first_delta_ms")]
    if not any(t or u for _, t, u in series) and not e2e_total:
        return False
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    palette = ["#2a6fb0", "#d08c2a", "#5b9a4a", "#8a4fb0", "#b04f4f", "#4fa5b0"]
    groups: dict[str, str] = {}
    for key, ttft, total in series:
        # One colour per backend and thread count: raw dashed, pipeline solid.
        group = key.replace("/raw/", "/").replace("/pipeline/", "/")
        color = groups.setdefault(group, palette[len(groups) % len(palette)])
        style = {"color": color, "linestyle": "--" if "/raw/" in key else "-"}
        _ecdf(left, [t for t in ttft if t is not None], key, **style)
        _ecdf(right, [t for t in total if t is not None], key, **style)
    if e2e_first:
        _ecdf(left, e2e_first, "answers.py: first text, retrieval incl.", color="black")
    if e2e_total:
        _ecdf(right, e2e_total, "answers.py: whole answer, retrieval incl.", color="black")
    left.set(
        title="Time to first token", xlabel="seconds", ylabel="share of answers ≤ x", ylim=(0, 1.02)
    )
    right.set(title="Total answer time", xlabel="seconds")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    figure.suptitle("Generation latency per backend (dashed: the backend's own API)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata=_META)
    plt.close(figure)
    return True


def plot_tokens_per_s(results: Mapping[str, Any], path: Path) -> bool:
    """Decode tokens/s per backend/mode/threads against the memory-bandwidth ceiling."""
    rows = [r for r in fig.generation_rows(results) if r["tokens_per_s"]]
    if not rows:
        return False
    derived = fig.derive(results)["ceiling"]
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.8))
    labels = [r["key"] for r in rows]
    values = [r["tokens_per_s"] for r in rows]
    colors = ["#9bb7d4" if r["mode"] == "raw" else "#2a6fb0" for r in rows]
    ax.barh(labels, values, color=colors)
    for i, r in enumerate(rows):
        share = f" ({r['ceiling_share']:.0%} of ceiling)" if r["ceiling_share"] else ""
        ax.text(values[i], i, f" {values[i]:.0f}{share}", va="center", fontsize=8)
    for key, style, text in (
        ("tokens_per_s_1_thread", ":", "ceiling, 1-thread copy bandwidth"),
        ("tokens_per_s_best", "--", "ceiling, best copy bandwidth"),
    ):
        one = derived.get("tokens_per_s_1_thread")
        if key == "tokens_per_s_best" and one and (derived.get(key) or 0) <= 1.01 * one:
            continue  # more threads did not copy faster: one line says it
        if derived.get(key):
            ax.axvline(
                derived[key],
                color="firebrick",
                linestyle=style,
                label=f"{text}: {derived[key]:.0f}",
            )
    ax.invert_yaxis()
    ax.set(xlabel="generated tokens/s (p50 over prompts, after the first token)")
    ax.set_title("Decode speed vs memory-bandwidth ceiling (bandwidth / GGUF bytes)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata=_META)
    plt.close(figure)
    return True


def plot_recall(results: Mapping[str, Any], path: Path) -> bool:
    """recall@k, k = 1..10, for dense, lexical and hybrid retrieval (span and page hits)."""
    quality = fig.result(results, "retrieval").get("quality") or {}
    if not quality:
        return False
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(7, 4.2))
    colors = {"dense": "#d08c2a", "lexical": "#5b9a4a", "hybrid": "#2a6fb0"}
    for name, q in quality.items():
        for hit, style in (("span", "-"), ("doc", ":")):
            m = q.get(hit) or {}
            ks = sorted(int(k.split("@")[1]) for k in m if k.startswith("recall@"))
            if ks:
                ax.plot(
                    ks,
                    [m[f"recall@{k}"] for k in ks],
                    style,
                    marker="o" if hit == "span" else None,
                    color=colors.get(name),
                    label=f"{name} ({'span hit' if hit == 'span' else 'page hit'})",
                )
    ax.set(xlabel="k (chunks retrieved)", ylabel="recall@k", ylim=(0, 1), xticks=range(1, 11))
    ax.set_title("Retrieval on doc2dial (answerable first-turn questions)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata=_META)
    plt.close(figure)
    return True


def plot_chat_load(results: Mapping[str, Any], path: Path) -> bool:
    """Latency and throughput against concurrent conversations."""
    levels = fig.result(results, "chat_load").get("levels") or []
    levels = sorted((lv for lv in levels if lv.get("answered")), key=lambda lv: lv["concurrency"])
    if not levels:
        return False
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [lv["concurrency"] for lv in levels]
    for key, label, style in (
        ("ttfd_p50_s", "first delta p50", "-o"),
        ("ttfd_p95_s", "first delta p95", "--o"),
        ("done_p50_s", "answer done p50", "-s"),
        ("done_p95_s", "answer done p95", "--s"),
    ):
        ys = [lv.get(key) for lv in levels]
        if any(y is not None for y in ys):
            left.plot(xs, ys, style, label=label)
    left.set(xlabel="concurrent conversations", ylabel="seconds", xticks=xs)
    left.set_title("Latency (1.2 s debounce included)", fontsize=10)
    right.plot(xs, [lv.get("answers_per_min") for lv in levels], "-o", color="#2a6fb0")
    right.set(xlabel="concurrent conversations", ylabel="answers per minute", xticks=xs)
    right.set_title("Throughput", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    left.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110, metadata=_META)
    plt.close(figure)
    return True


PLOTS: dict[str, Callable[[Mapping[str, Any], Path], bool]] = {
    "generation_latency.png": plot_latency,
    "tokens_per_s.png": plot_tokens_per_s,
    "recall_at_k.png": plot_recall,
    "chat_load.png": plot_chat_load,
}


def write_plots(results: Mapping[str, Any], img_dir: Path) -> list[str]:
    """Draw every plot whose data is present into `img_dir`; the file names written."""
    img_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in PLOTS.items():
        target = img_dir / name
        if draw(results, target):
            written.append(name)
        else:
            target.unlink(missing_ok=True)  # no stale plot from an earlier run
    return written
