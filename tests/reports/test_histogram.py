"""The percentile estimate of the rollup histograms: within 4.5 % of the exact nearest rank."""

from __future__ import annotations

import math
import random

import pytest

from support.models import Message
from support.reports import histogram
from support.reports.sql import bucket_of
from support.reports.tally import Tally


def exact(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_are_within_the_documented_error(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(6, 2) for _ in range(2000)]
    hist = histogram.histogram_of(values)
    for p in (50, 90, 95, 99):
        estimate = histogram.percentile_ms(hist, p)
        truth = exact(values, p)
        assert estimate is not None
        assert abs(estimate - truth) <= max(0.045 * truth, 1.0), (p, estimate, truth)


def test_below_a_millisecond_and_empty() -> None:
    assert histogram.percentile_ms({}, 50) is None
    assert histogram.percentile_ms(histogram.histogram_of([0.0, 0.2, 0.9]), 95) == 0.5


def test_adding_tallies_adds_histograms_counts_and_hours() -> None:
    a, b = Tally(), Tally()
    a.bucket("x", 10, 2, 20.0)
    b.bucket("x", 10, 1, 9.0)
    b.bucket("x", 30, 1, 900.0)
    a.hour("h", 23, 1)
    b.hour("h", 23, 2)
    total = Tally().add(a).add(Tally.from_json(b.as_json()))
    assert total.hists["x"] == {10: 3, 30: 1}
    assert total.get("x.n") == 4
    assert total.sum("x") == 929.0
    assert total.hours["h"][23] == 3


@pytest.mark.django_db
def test_the_database_buckets_like_python() -> None:
    from tests.factories import MessageFactory

    values = [0.3, 1.0, 1.5, 2.0, 99.9, 100.0, 1234.5, 86_400_000.0]
    for v in values:
        MessageFactory(role=Message.Role.BOT, timings={"ttft_ms": v})
    from django.db.models import F, FloatField
    from django.db.models.fields.json import KT
    from django.db.models.functions import Cast

    rows = (
        Message.objects.annotate(ms=Cast(KT("timings__ttft_ms"), FloatField()))
        .annotate(b=bucket_of(F("ms")))
        .order_by("ms")
        .values_list("ms", "b")
    )
    for ms, b in rows:
        # Exact powers of two may land on either side of a bound in floating point.
        assert abs(b - histogram.bucket_index(ms)) <= (1 if math.log2(max(ms, 1)) % 1 == 0 else 0)
