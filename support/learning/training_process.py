"""Where a queued specialisation run executes: in the training worker's process, or, in the
embedded one-process mode (`manage.py serve`, `make run`), in a child process of its own.

A training task lowers its whole process's priority (support.learning.priority) and holds
gigabytes while it trains: right for the `training` worker of a scaled-out deployment, wrong for
the one process that also serves the chat. So when the embedded worker runs in this process,
the task starts `manage.py specialise_run RUN_ID` as a child (niced there, its own memory, the
same database and data directory) and waits for it; the worker thread it occupies sleeps
meanwhile. The child dies with the server (`--parent`: PR_SET_PDEATHSIG) and leaves the run as
any killed run: nothing served changes and its lock expires (docs/learning.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from ..exceptions import SupportError
from ..models_learning import SpecialiseRun

logger = logging.getLogger(__name__)

PROMOTED, REFUSED, CANCELLED = "promoted", "refused", "cancelled"
OUTCOMES = (PROMOTED, REFUSED, CANCELLED)
_PR_SET_PDEATHSIG = 1


class TrainingProcessFailed(SupportError):
    code = "training_process_failed"


def queued_run_execute(*, run_id: int) -> str:
    """Execute a queued run of any kind (retriever, chat model, fact ranker) in this process:
    promoted, refused or cancelled (failures raise, as each kind's run_execute does)."""
    from .chat_specialise import model_run_execute
    from .fact_train import facts_run_execute
    from .specialise import SpecialiseCancelled, run_execute

    kind = SpecialiseRun.objects.values_list("kind", flat=True).get(pk=run_id)
    executors: dict[str, Callable[..., Any]] = {
        SpecialiseRun.Kind.MODEL: model_run_execute,
        SpecialiseRun.Kind.FACTS: facts_run_execute,
    }
    execute = executors.get(kind, run_execute)
    try:
        return PROMOTED if execute(run_id=run_id).promoted else REFUSED
    except SpecialiseCancelled:
        return CANCELLED


def training_run(*, run_id: int) -> str:
    """Where the `training` queue's tasks execute a run: in a child process when this process
    also serves the chat (the embedded mode), else here (`run_here`)."""
    if in_child_process():
        return run_in_child(run_id=run_id)
    return run_here(run_id=run_id)


def run_here(*, run_id: int) -> str:
    """Execute a queued run in this process, lowered to SUPPORT_SPECIALISE_NICENESS first
    (answering keeps the CPU): a training worker's task, `manage.py specialise_run`."""
    from .priority import training_priority_lower

    training_priority_lower()
    return queued_run_execute(run_id=run_id)


def in_child_process() -> bool:
    """True when this process serves the chat too (the embedded worker runs here)."""
    from .. import embedded

    return embedded.serving_here()


def die_with_parent(parent_pid: int) -> bool:
    """In the child: be sent SIGTERM when the parent ends (Linux PR_SET_PDEATHSIG; elsewhere the
    server's process group still ends it on SIGTERM). Set by the child itself at its start, not
    between fork and exec (unsafe in a process with threads); False when the parent is already
    gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    return os.getppid() == parent_pid


def child_argv(run_id: int) -> list[str]:
    manage = str(Path(settings.BASE_DIR) / "manage.py")
    return [sys.executable, manage, "specialise_run", str(run_id), "--parent", str(os.getpid())]


def run_in_child(
    *, run_id: int, argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """Run `manage.py specialise_run RUN_ID` in a child process (this process's environment
    unless `env`) and wait: its outcome (the last line it prints). A child that fails or prints
    no outcome raises TrainingProcessFailed."""
    command = list(argv) if argv is not None else child_argv(run_id)
    logger.info("specialisation run %d: training in a child process", run_id)
    done = subprocess.run(  # noqa: S603 (our own interpreter and manage.py)
        command,
        stdout=subprocess.PIPE,
        stderr=None,  # the child's log goes where the server's goes
        text=True,
        check=False,
        env=dict(env) if env is not None else None,
    )
    lines = [line.strip() for line in (done.stdout or "").splitlines() if line.strip()]
    outcome = lines[-1] if lines else ""
    if done.returncode != 0 or outcome not in OUTCOMES:
        raise TrainingProcessFailed(
            f"specialisation run {run_id}: the training process exited with {done.returncode}"
            + (f" ({outcome})" if outcome else "")
        )
    return outcome
