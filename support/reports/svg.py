"""Charts drawn on the server as inline SVG: readable without JavaScript, each with a <title>
and an aria-label, every mark with its value in a <title> (a tooltip, and read by screen
readers). The numbers themselves are in the HTML table beside each chart (page.py).

Every text that reaches the markup goes through `_esc` (labels can be agents' names)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

# Colour-blind-safe (Okabe-Ito), readable on the admin's light and dark themes.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9")
WIDTH = 640
FONT = 'font-family="sans-serif" font-size="11"'


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float | int]


def _esc(text: object) -> str:
    return escape(str(text))


def _num(value: float) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _nice_max(value: float) -> float:
    """The axis top: the smallest 1, 2 or 5 x 10^k at or above `value` (1 when nothing)."""
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def _open(title: str, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="report-chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" '
        f"aria-label={quoteattr(title)}>",
        f"<title>{_esc(title)}</title>",
    ]


def _legend(series: Sequence[Series], y: int) -> list[str]:
    out, x = [], 50
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{y}" {FONT} fill="currentColor">{_esc(s.name)}</text>')
        x += 24 + 7 * len(s.name)
    return out


def _axes(top: float, x0: int, y0: int, plot_h: int, plot_w: int) -> list[str]:
    out = []
    for i in range(5):
        value = top * i / 4
        y = y0 - plot_h * i / 4
        out.append(
            f'<line x1="{x0}" y1="{y:.1f}" x2="{x0 + plot_w}" y2="{y:.1f}" '
            f'stroke="currentColor" stroke-opacity="0.15"/>'
        )
        out.append(
            f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" {FONT} '
            f'fill="currentColor">{_esc(_num(value))}</text>'
        )
    return out


def _x_labels(labels: Sequence[str], x_of: list[float], y: int) -> list[str]:
    # At most about 16 labels fit: show every n-th.
    every = max(1, math.ceil(len(labels) / 16))
    return [
        f'<text x="{x:.1f}" y="{y}" text-anchor="middle" {FONT} fill="currentColor">'
        f"{_esc(label)}</text>"
        for i, (label, x) in enumerate(zip(labels, x_of, strict=True))
        if i % every == 0
    ]


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """Grouped vertical bars: one group per label, one bar per series."""
    height, x0, y0 = 240, 50, 190
    plot_w, plot_h = WIDTH - x0 - 24, 170
    top = _nice_max(max((float(v) for s in series for v in s.values), default=0))
    group = plot_w / max(1, len(labels))
    bar = group * 0.8 / max(1, len(series))
    out = _open(title, height) + _axes(top, x0, y0, plot_h, plot_w)
    for si, s in enumerate(series):
        colour = PALETTE[si % len(PALETTE)]
        for li, value in enumerate(s.values):
            h = plot_h * float(value) / top
            x = x0 + li * group + group * 0.1 + si * bar
            out.append(
                f'<rect x="{x:.1f}" y="{y0 - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{_esc(labels[li])}, {_esc(s.name)}: '
                f"{_esc(_num(value))}</title></rect>"
            )
    centres = [x0 + (i + 0.5) * group for i in range(len(labels))]
    out += _x_labels(labels, centres, y0 + 14)
    out += _legend(series, height - 10)
    out.append("</svg>")
    return "".join(out)


def line_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> str:
    """One line per series over the labels (days, hours)."""
    height, x0, y0 = 240, 50, 190
    plot_w, plot_h = WIDTH - x0 - 24, 170
    top = _nice_max(max((float(v) for s in series for v in s.values), default=0))
    n = len(labels)
    step = plot_w / max(1, n - 1)
    xs = [x0 + i * step for i in range(n)] if n > 1 else [x0 + plot_w / 2]
    out = _open(title, height) + _axes(top, x0, y0, plot_h, plot_w)
    for si, s in enumerate(series):
        colour = PALETTE[si % len(PALETTE)]
        points = [(xs[i], y0 - plot_h * float(v) / top) for i, v in enumerate(s.values)]
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
            + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
            + '"/>'
        )
        for i, (x, y) in enumerate(points):
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>'
                f"{_esc(labels[i])}, {_esc(s.name)}: {_esc(_num(s.values[i]))}</title></circle>"
            )
    out += _x_labels(labels, xs, y0 + 14)
    out += _legend(series, height - 10)
    out.append("</svg>")
    return "".join(out)


def hbar_chart(
    title: str, labels: Sequence[str], values: Sequence[float | int | None], *, unit: str = ""
) -> str:
    """Horizontal bars, one per label (a missing value draws no bar and reads "–")."""
    row, x0 = 20, 190
    height = 30 + row * len(labels)
    plot_w = WIDTH - x0 - 70
    top = _nice_max(max((float(v) for v in values if v is not None), default=0))
    out = _open(title, height)
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 10 + i * row
        w = 0.0 if value is None else plot_w * float(value) / top
        shown = "–" if value is None else f"{_num(value)}{(' ' + unit) if unit else ''}"
        out.append(
            f'<text x="{x0 - 6}" y="{y + 13}" text-anchor="end" {FONT} fill="currentColor">'
            f"{_esc(label)}</text>"
        )
        out.append(
            f'<rect x="{x0}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[0]}"><title>{_esc(label)}: {_esc(shown)}</title></rect>'
        )
        out.append(
            f'<text x="{x0 + w + 4:.1f}" y="{y + 13}" {FONT} fill="currentColor">'
            f"{_esc(shown)}</text>"
        )
    out.append("</svg>")
    return "".join(out)
