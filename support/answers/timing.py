"""One recorder for an answer's timings (milliseconds since the answer started, or spans),
so the stages hold no clock arithmetic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Recorder:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.values: dict[str, float] = {}

    def now(self) -> float:
        """A reference point for a later `mark(..., since=...)`."""
        return time.perf_counter()

    def mark(self, key: str, *, since: float | None = None) -> float:
        """Record `key` as the time since the answer started (or since `since`); returns now."""
        now = time.perf_counter()
        self.values[key] = _ms(now - (self.started if since is None else since))
        return now

    def first(self, key: str) -> None:
        """`mark(key)` the first time only (first token, first text shown)."""
        if key not in self.values:
            self.mark(key)

    @contextmanager
    def span(self, key: str) -> Iterator[None]:
        """Record how long the block took as `key`."""
        begun = time.perf_counter()
        try:
            yield
        finally:
            self.mark(key, since=begun)

    def count(self, key: str, value: int) -> None:
        self.values[key] = value

    def finish(self) -> dict[str, float]:
        """The timings, with `total_ms`."""
        self.mark("total_ms")
        return dict(self.values)
