"""Expressions the report queries need that Django does not give portably (SQLite and
PostgreSQL): a timestamp as epoch milliseconds, and the histogram bucket of a duration."""

from __future__ import annotations

from typing import Any

from django.db.models import Case, Expression, F, FloatField, Func, IntegerField, Value, When
from django.db.models.functions import Cast, Floor, Log
from django.db.models.lookups import GreaterThanOrEqual, LessThan

from .histogram import STEPS_PER_DOUBLING


class EpochMs(Func):
    """Milliseconds since 1970-01-01 UTC of a datetime expression (NULL stays NULL).

    Differences of two of these are durations in ms on both databases; Django's own
    DateTimeField subtraction yields a duration that cannot be bucketed or summed portably.
    """

    output_field = FloatField()
    arity = 1

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django stores UTC as 'YYYY-MM-DD HH:MM:SS.ffffff'; julianday() reads it (to the ms).
        return self.as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s) - 2440587.5) * 86400000.0)",
            **extra,
        )

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler,
            connection,
            template="(EXTRACT(EPOCH FROM %(expressions)s) * 1000.0)::double precision",
            **extra,
        )


def duration_ms(end: Expression | str, start: Expression | str) -> Expression:
    """`end - start` in milliseconds (NULL when either is NULL)."""
    end_e = F(end) if isinstance(end, str) else end
    start_e = F(start) if isinstance(start, str) else start
    return EpochMs(end_e) - EpochMs(start_e)


def bucket_of(ms: Any) -> Case:
    """The histogram bucket of a duration in ms (`histogram.bucket_index`): NULL for NULL."""
    return Case(
        When(LessThan(ms, 1.0), then=Value(0)),
        When(
            GreaterThanOrEqual(ms, 1.0),
            then=Cast(
                Floor(Log(Value(2.0), ms) * Value(float(STEPS_PER_DOUBLING))) + Value(1.0),
                IntegerField(),
            ),
        ),
        default=None,
        output_field=IntegerField(),
    )
