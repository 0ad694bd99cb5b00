"""Prometheus metrics, computed from the database when scraped (docs/operations.md, "Metrics").

Web and workers are separate processes, often on separate machines: an answer is stored by a
worker, an escalation by either, a claim by the web. Counters kept in process memory would
split across processes and vanish on restart. So every series is read from the tables that
record the events, and any web process answers a scrape with the same values.

Counters and histograms grow by what was stored since the previous scrape: each process keeps
the totals of rows older than `SETTLE` (the "ledger", folded in once) and adds the newer rows
afresh at each scrape, so a transaction that commits a little after its row got its id is still
counted. The first scrape of a process reads the whole history once (grouped queries).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, F, FloatField, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from ..answered import pending_answers_count
from ..conf import get_support_settings
from ..models import Escalation, Message
from .sql import EpochMs

REPORTS_PERMISSION = "support.view_reports"
# Rows younger than this are re-read at every scrape instead of being folded into the ledger.
SETTLE = timedelta(seconds=60)
TTFT_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
ANSWER_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
QUEUE_BUCKETS_S = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0)


@dataclass(slots=True)
class Hist:
    """A Prometheus histogram: cumulative counts per upper bound (seconds), count, sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    count: int = 0
    sum_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)

    def add(self, other: Hist) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.sum_s += other.sum_s

    def copy(self) -> Hist:
        return Hist(self.bounds, list(self.counts), self.count, self.sum_s)


@dataclass(slots=True)
class _Totals:
    answers: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    ttft: Hist = field(default_factory=lambda: Hist(TTFT_BUCKETS_S))
    answer_total: Hist = field(default_factory=lambda: Hist(ANSWER_BUCKETS_S))
    queue_wait: Hist = field(default_factory=lambda: Hist(QUEUE_BUCKETS_S))

    def add(self, other: _Totals) -> None:
        for mine, theirs in ((self.answers, other.answers), (self.reasons, other.reasons)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        self.ttft.add(other.ttft)
        self.answer_total.add(other.answer_total)
        self.queue_wait.add(other.queue_wait)

    def copy(self) -> _Totals:
        return _Totals(
            dict(self.answers),
            dict(self.reasons),
            self.ttft.copy(),
            self.answer_total.copy(),
            self.queue_wait.copy(),
        )


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    totals: _Totals
    queue_waiting: int
    queue_with_agent: int
    answers_pending: int


# --- reading the tables -------------------------------------------------------------------------
def _hist(rows: QuerySet[Any], field_ms: str, bounds: tuple[float, ...]) -> Hist:
    agg = rows.aggregate(
        n=Count(field_ms),
        s=Sum(field_ms),
        **{f"le{i}": Count("pk", filter=Q(**{f"{field_ms}__lte": b * 1000})) for i, b in
           enumerate(bounds)},
    )  # fmt: skip
    return Hist(
        bounds,
        [int(agg[f"le{i}"]) for i in range(len(bounds))],
        int(agg["n"] or 0),
        float(agg["s"] or 0.0) / 1000,
    )


def _messages(rows: QuerySet[Message]) -> _Totals:
    out = _Totals()
    bot = rows.filter(role=Message.Role.BOT)
    for row in bot.values("action").annotate(n=Count("pk")).order_by():
        out.answers[str(row["action"] or "none")] = int(row["n"])
    timed = bot.annotate(
        ttft=Cast(KT("timings__ttft_ms"), FloatField()),
        total_ms=Cast(KT("timings__total_ms"), FloatField()),
    )
    out.ttft = _hist(timed, "ttft", TTFT_BUCKETS_S)
    out.answer_total = _hist(timed, "total_ms", ANSWER_BUCKETS_S)
    return out


def _escalations(rows: QuerySet[Escalation]) -> _Totals:
    out = _Totals()
    # A JSON list: counted here, as the reports do (no portable containment query on SQLite).
    for reasons in rows.values_list("reasons", flat=True):
        for reason in reasons if isinstance(reasons, list) else ():
            out.reasons[str(reason)] = out.reasons.get(str(reason), 0) + 1
    return out


def _claims(rows: QuerySet[Escalation]) -> _Totals:
    out = _Totals()
    waited = rows.annotate(wait_ms=EpochMs(F("claimed_at")) - EpochMs(F("created_at")))
    out.queue_wait = _hist(waited, "wait_ms", QUEUE_BUCKETS_S)
    return out


class _Ledger:
    """The totals of settled rows, per process, with how far they reach (under a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.message_upto = 0
        self.escalation_upto = 0
        self.claims_upto: datetime | None = None
        self.totals = _Totals()

    def snapshot(self, now: datetime) -> _Totals:
        settled = now - SETTLE
        with self.lock:
            upto = Message.objects.filter(
                pk__gt=self.message_upto, created_at__lt=settled
            ).aggregate(m=Max("pk"))["m"]
            if upto is not None:
                self.totals.add(
                    _messages(Message.objects.filter(pk__gt=self.message_upto, pk__lte=upto))
                )
                self.message_upto = upto
            upto = Escalation.objects.filter(
                pk__gt=self.escalation_upto, created_at__lt=settled
            ).aggregate(m=Max("pk"))["m"]
            if upto is not None:
                self.totals.add(
                    _escalations(
                        Escalation.objects.filter(pk__gt=self.escalation_upto, pk__lte=upto)
                    )
                )
                self.escalation_upto = upto
            claimed = Escalation.objects.filter(claimed_at__isnull=False, claimed_at__lt=settled)
            if self.claims_upto is not None:
                claimed = claimed.filter(claimed_at__gte=self.claims_upto)
            self.totals.add(_claims(claimed))
            self.claims_upto = settled
            out = self.totals.copy()
            out.add(_messages(Message.objects.filter(pk__gt=self.message_upto)))
            out.add(_escalations(Escalation.objects.filter(pk__gt=self.escalation_upto)))
            out.add(_claims(Escalation.objects.filter(claimed_at__gte=settled)))
        return out


_ledger = _Ledger()
_ledger_lock = threading.Lock()


def metrics_reset() -> None:
    """Forget this process's ledger (tests; the next scrape reads the history again)."""
    global _ledger
    with _ledger_lock:
        _ledger = _Ledger()


def metrics_snapshot(*, now: datetime | None = None) -> MetricsSnapshot:
    """Every series of /metrics, read from the database."""
    with _ledger_lock:
        ledger = _ledger
    totals = ledger.snapshot(now or timezone.now())
    live = Escalation.objects.filter(state__in=(Escalation.State.OPEN, Escalation.State.CLAIMED))
    counts = live.aggregate(
        waiting=Count("pk", filter=Q(state=Escalation.State.OPEN)),
        with_agent=Count("pk", filter=Q(state=Escalation.State.CLAIMED)),
    )
    return MetricsSnapshot(
        totals=totals,
        queue_waiting=int(counts["waiting"]),
        queue_with_agent=int(counts["with_agent"]),
        answers_pending=pending_answers_count(),
    )


# --- access and exposition ----------------------------------------------------------------------
def metrics_allowed(*, authorization: str, user: Any) -> bool:
    """A scraper with `Authorization: Bearer <SUPPORT_METRICS_TOKEN>` (when the token is set),
    or signed-in active staff with the reports permission."""
    token = get_support_settings().metrics_token
    given = authorization[7:].strip() if authorization.startswith("Bearer ") else ""
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return True
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(REPORTS_PERMISSION)
    )


class _Collector:
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        s, t = self.snapshot, self.snapshot.totals
        answers = CounterMetricFamily(
            "support_bot_replies",
            "Bot replies stored, by action (answer, extractive, escalate = a decline).",
            labels=["action"],
        )
        for action in sorted({*Message.Action.values, *t.answers}):
            answers.add_metric([action], t.answers.get(action, 0))
        yield answers
        reasons = CounterMetricFamily(
            "support_escalations",
            "Hand-overs to a person, by reason (one hand-over may list several).",
            labels=["reason"],
        )
        for reason in sorted({*Escalation.Reason.values, *t.reasons}):
            reasons.add_metric([reason], t.reasons.get(reason, 0))
        yield reasons
        for name, doc, hist in (
            ("support_answer_ttft_seconds", "Answer time to the first token.", t.ttft),
            ("support_answer_seconds", "Answer time, total.", t.answer_total),
            (
                "support_queue_wait_seconds",
                "Wait in the queue until an agent claimed the conversation.",
                t.queue_wait,
            ),
        ):
            buckets = [(_le(b), c) for b, c in zip(hist.bounds, hist.counts, strict=True)]
            buckets.append(("+Inf", hist.count))
            yield HistogramMetricFamily(name, doc, buckets=buckets, sum_value=hist.sum_s)
        depth = GaugeMetricFamily(
            "support_queue_depth", "Conversations in the queue now, by state.", labels=["state"]
        )
        depth.add_metric(["waiting"], s.queue_waiting)
        depth.add_metric(["with_agent"], s.queue_with_agent)
        yield depth
        yield GaugeMetricFamily(
            "support_answers_pending",
            "Customer questions waiting for a bot answer now.",
            value=s.answers_pending,
        )


def _le(bound: float) -> str:
    # As prometheus_client's own histograms write it ("1.0", "0.25").
    return repr(float(bound))


def metrics_exposition(*, now: datetime | None = None) -> tuple[bytes, str]:
    """The Prometheus text exposition of `metrics_snapshot()`, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(metrics_snapshot(now=now)))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
