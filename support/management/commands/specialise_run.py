"""`manage.py specialise_run RUN_ID`: execute a specialisation run already queued (by the admin's
button, the nightly job or `specialise_start`), as the `training` worker's task would: niced to
SUPPORT_SPECIALISE_NICENESS, either kind. Prints the outcome last (`promoted`, `refused` or
`cancelled`); exit status 1 when the run could not execute (not queued, unavailable, failed).

The embedded one-process mode (`manage.py serve`) runs each queued run this way, in a child
process (support/learning/training_process.py); by hand it resumes nothing: a run that is not
queued is refused.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from support.exceptions import SupportError
from support.learning.training_process import die_with_parent, run_here
from support.models_learning import SpecialiseRun


class Command(BaseCommand):
    help = "Execute a queued specialisation run (either kind); prints promoted/refused/cancelled."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int)
        parser.add_argument(
            "--parent",
            type=int,
            default=0,
            help="end when this process ends (the embedded server that started the run)",
        )

    def handle(self, *args: object, **options: object) -> None:
        run_id = int(options["run_id"])  # type: ignore[call-overload]
        parent = int(options["parent"])  # type: ignore[call-overload]
        if parent and not die_with_parent(parent):
            raise CommandError(f"the process that started run {run_id} has ended")
        if not SpecialiseRun.objects.filter(pk=run_id).exists():
            raise CommandError(f"no specialisation run {run_id}")
        try:
            outcome = run_here(run_id=run_id)  # niced to SUPPORT_SPECIALISE_NICENESS
        except SupportError as exc:
            raise CommandError(f"run {run_id}: {exc.message}") from exc
        self.stdout.write(outcome)
