"""The figures of one rollup row, and of a whole report once rows are added up: named counts,
sums (ms or CPU-ms), duration histograms and hour-of-day series. Stored as JSON in
`ReportDay.figures`; adding two tallies adds every entry, so a range is the sum of its days."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import histogram

HOURS = 24


@dataclass(slots=True)
class Tally:
    counts: dict[str, int] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)
    hists: dict[str, histogram.Histogram] = field(default_factory=dict)
    hours: dict[str, list[int]] = field(default_factory=dict)

    # --- writing --------------------------------------------------------------------------------
    def count(self, name: str, n: int | None = 1) -> None:
        if n:
            self.counts[name] = self.counts.get(name, 0) + int(n)

    def total(self, name: str, value: float | None) -> None:
        if value:
            self.sums[name] = self.sums.get(name, 0.0) + float(value)

    def bucket(self, name: str, bucket: int | None, n: int, sum_ms: float | None) -> None:
        """`n` durations of histogram bucket `bucket` adding up to `sum_ms`."""
        if bucket is None or not n:
            return
        hist = self.hists.setdefault(name, {})
        hist[int(bucket)] = hist.get(int(bucket), 0) + int(n)
        self.count(f"{name}.n", n)
        self.total(name, sum_ms)

    def hour(self, name: str, hour: int | None, n: int | None) -> None:
        if hour is None or not n:
            return
        series = self.hours.setdefault(name, [0] * HOURS)
        series[int(hour) % HOURS] += int(n)

    def add(self, other: Tally) -> Tally:
        for k, v in other.counts.items():
            self.count(k, v)
        for k, s in other.sums.items():
            self.total(k, s)
        for k, h in other.hists.items():
            histogram.merge(self.hists.setdefault(k, {}), h)
        for k, series in other.hours.items():
            mine = self.hours.setdefault(k, [0] * HOURS)
            for i, v in enumerate(series):
                mine[i] += v
        return self

    # --- reading --------------------------------------------------------------------------------
    def get(self, name: str) -> int:
        return self.counts.get(name, 0)

    def sum(self, name: str) -> float:
        return self.sums.get(name, 0.0)

    def names(self, prefix: str) -> list[str]:
        """The suffixes of the counts named `prefix` + suffix (agents, reasons), sorted."""
        return sorted({k[len(prefix) :].split(".")[0] for k in self.counts if k.startswith(prefix)})

    # --- JSON -----------------------------------------------------------------------------------
    def as_json(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "sums": {k: round(v, 3) for k, v in sorted(self.sums.items())},
            "hists": {k: {str(b): n for b, n in sorted(h.items())} for k, h in self.hists.items()},
            "hours": self.hours,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        out = cls()
        out.counts = {str(k): int(v) for k, v in (data.get("counts") or {}).items()}
        out.sums = {str(k): float(v) for k, v in (data.get("sums") or {}).items()}
        out.hists = {
            str(k): {int(b): int(n) for b, n in h.items()}
            for k, h in (data.get("hists") or {}).items()
        }
        out.hours = {str(k): [int(v) for v in s] for k, s in (data.get("hours") or {}).items()}
        return out
