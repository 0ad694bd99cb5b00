"""The nightly specialisation (issue 14 item 9; docs/learning.md): beat's
`support.specialise_nightly` entry asks every night whether enough examples are new to be worth
a run.

`specialise_nightly` starts a run (`specialise.specialise_start`, queue `training`) when
SUPPORT_SPECIALISE_NIGHTLY is on and, for a kind in SUPPORT_SPECIALISE_NIGHTLY_KINDS (the
retriever, the chat model, in that setting's order), at least SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW
approved examples a run would train on were approved since the last run of that kind that
reached the gate's decision (promoted or refused: a failed or cancelled run learned nothing, so
its examples still count as new). Runs share one lock, so one run a night: the first kind with
enough; another kind's turn comes on a later night. It skips, and says why, when it is off, when
too few are new, when a kind cannot run (the chat model pinned by SUPPORT_MODEL_PATH), and when
another run holds the lock (a run started by hand, or a night's run that is still going).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.db.models import F
from django.db.models.functions import Coalesce

from ..conf import get_support_settings
from ..models_learning import SpecialiseRun
from .examples import examples_for_training
from .specialise import SpecialiseBusy, SpecialiseUnavailable, specialise_start

logger = logging.getLogger(__name__)

# The runs whose start bounds "new": they read the examples and reached the gate's decision.
DECIDED = (SpecialiseRun.Status.PROMOTED, SpecialiseRun.Status.REFUSED)


@dataclass(frozen=True, slots=True)
class NightlyOutcome:
    started: bool
    reason: str
    kind: str | None = None  # the kind started (or refused by the lock)
    new_examples: int = 0
    since: datetime | None = None  # the last decided run's start; None: there was none
    run_id: int | None = None  # the run started, or the one holding the lock

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["since"] = self.since.isoformat() if self.since else None
        return data


def last_decided_run(*, kind: str) -> SpecialiseRun | None:
    """The newest run of `kind` that was promoted or refused (rollbacks and failures do not
    count)."""
    runs = SpecialiseRun.objects.filter(status__in=DECIDED, kind=kind)
    return runs.order_by("-created_at", "-id").first()


def new_examples_count(*, since: datetime | None) -> int:
    """Approved examples a run would train on, approved after `since` (all when None).

    An example approved without a review time (none are, by the model's constraint) counts by
    its creation."""
    examples = examples_for_training()
    if since is not None:
        examples = examples.alias(approved_at=Coalesce(F("reviewed_at"), F("created_at"))).filter(
            approved_at__gt=since
        )
    return examples.count()


def specialise_nightly(*, start: Callable[..., SpecialiseRun] = specialise_start) -> NightlyOutcome:
    """Start a specialisation run of the first enabled kind with enough new examples (`start`
    queues it: specialise_start); otherwise say why not. Never raises SpecialiseBusy."""
    conf = get_support_settings()
    if not conf.specialise_nightly:
        return NightlyOutcome(False, "off (SUPPORT_SPECIALISE_NIGHTLY)")
    if not conf.specialise_nightly_kinds:
        return NightlyOutcome(False, "no kind enabled (SUPPORT_SPECIALISE_NIGHTLY_KINDS)")
    why_not = []
    first: tuple[int, datetime | None] | None = None  # the first kind's count, when none starts
    for kind in conf.specialise_nightly_kinds:
        last = last_decided_run(kind=kind)
        since = last.created_at if last is not None else None
        new = new_examples_count(since=since)
        first = first or (new, since)
        if new < conf.specialise_nightly_min_new:
            why_not.append(
                f"{kind}: {new} new approved example(s) since its last run, fewer than "
                f"SUPPORT_SPECIALISE_NIGHTLY_MIN_NEW ({conf.specialise_nightly_min_new})"
            )
            continue
        try:
            run = start(kind=kind)
        except SpecialiseBusy:
            holder = (
                SpecialiseRun.objects.filter(holds_lock=True).values_list("pk", flat=True).first()
            )
            logger.info("nightly specialisation skipped: run %s holds the lock", holder)
            return NightlyOutcome(False, "another run holds the lock", kind, new, since, holder)
        except SpecialiseUnavailable as exc:
            why_not.append(f"{kind}: {exc}")
            continue
        logger.info(
            "nightly specialisation: %s run %s started on %d new example(s)", kind, run.pk, new
        )
        return NightlyOutcome(
            True, f"{kind}: started on {new} new approved example(s)", kind, new, since, run.pk
        )
    new, since = first or (0, None)
    return NightlyOutcome(False, "; ".join(why_not), None, new, since)
