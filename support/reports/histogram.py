"""Duration histograms with fixed log-spaced buckets: summable across days and channels, and
read as percentiles within 4.5 % (docs/reports.md, "Rollups and the accuracy of percentiles").

Bucket 0 holds values below 1 ms; bucket b >= 1 holds [2^((b-1)/8), 2^(b/8)) ms. The database
computes the bucket (`sql.bucket_of`), so this module only reads and adds histograms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

# Sub-buckets per doubling: the bounds grow by 2^(1/8) (~9 %); the geometric middle of a
# bucket is within 2^(1/16) - 1 (~4.4 %) of any value in it.
STEPS_PER_DOUBLING = 8

Histogram = dict[int, int]


def bucket_index(ms: float) -> int:
    """The bucket of a duration in ms (the same rule as `sql.bucket_of`; for tests and fakes)."""
    if ms < 1:
        return 0
    return math.floor(math.log2(ms) * STEPS_PER_DOUBLING) + 1


def bucket_middle_ms(bucket: int) -> float:
    """The estimate a bucket stands for: its geometric middle (0.5 ms for bucket 0)."""
    if bucket <= 0:
        return 0.5
    return float(2 ** ((bucket - 0.5) / STEPS_PER_DOUBLING))


def merge(into: Histogram, other: Mapping[int, int] | Mapping[str, int]) -> Histogram:
    """Add `other` (keys may be strings, as stored in JSON) into `into`; returns `into`."""
    for key, count in other.items():
        b = int(key)
        into[b] = into.get(b, 0) + int(count)
    return into


def percentile_ms(hist: Mapping[int, int], p: float) -> float | None:
    """The nearest-rank p-th percentile (0 < p <= 100) estimated from `hist`; None if empty."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(p / 100 * total))
    seen = 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return bucket_middle_ms(bucket)
    return bucket_middle_ms(max(hist))  # unreachable: the ranks add up to total


def histogram_of(values_ms: Iterable[float]) -> Histogram:
    """A histogram of raw values (tests; bench checks)."""
    hist: Histogram = {}
    for v in values_ms:
        b = bucket_index(v)
        hist[b] = hist.get(b, 0) + 1
    return hist
