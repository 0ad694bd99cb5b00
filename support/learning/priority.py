"""The training worker's share of the CPU (docs/learning.md, docs/operations.md).

A training task calls `training_priority_lower` first: answering must keep the CPU while a
run trains, even on a worker started without `nice` (the compose file's training worker is
also started niced, and SUPPORT_SPECIALISE_THREADS limits torch's threads).

Linux keeps a niceness per thread, and nice(2) changes only the calling thread's: a worker
process's other threads (its warm-up's, torch's or BLAS's pools created before the task ran)
would keep the old priority. So every thread of the process is lowered, and threads started
later inherit it from the thread that starts them. The whole process: give the `training`
queue its own worker (a serving worker's answers would be lowered too).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..conf import get_support_settings

logger = logging.getLogger(__name__)

_TASKS = Path("/proc/self/task")


def _thread_ids() -> list[int]:
    try:
        return [int(p.name) for p in _TASKS.iterdir() if p.name.isdigit()]
    except OSError:  # no /proc (not Linux): the process id stands for the process
        return [os.getpid()]


def process_niceness_raise(niceness: int) -> int:
    """Raise the niceness of every thread of this process to at least `niceness` (never lower
    it: an unprivileged process cannot); returns the calling thread's niceness after."""
    for tid in _thread_ids():
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < niceness:
                os.setpriority(os.PRIO_PROCESS, tid, niceness)
        except OSError:  # the thread ended meanwhile, or not ours to change
            continue
    if os.getpriority(os.PRIO_PROCESS, 0) < niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    return os.getpriority(os.PRIO_PROCESS, 0)


def training_priority_lower() -> int:
    """Lower this process to SUPPORT_SPECIALISE_NICENESS (0: leave it); returns its niceness."""
    niceness = get_support_settings().specialise_niceness
    if niceness <= 0:
        return os.getpriority(os.PRIO_PROCESS, 0)
    now = process_niceness_raise(niceness)
    logger.info("training worker process niced to %d", now)
    return now
