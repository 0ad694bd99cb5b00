"""Imports run one way: tasks -> services -> jobs (support/jobs.py queues work by task name).

Read with grimp (the graph import-linter uses), function-level imports included: a service
that imports `support.tasks` inside a function body brings the import circle back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("support", include_external_packages=False)


def test_no_module_of_the_app_imports_the_task_module(graph: grimp.ImportGraph) -> None:
    # Celery's autodiscovery (chatbot/celery.py) is what loads support.tasks.
    assert graph.find_modules_that_directly_import("support.tasks") == set()


def test_the_task_module_is_in_no_import_cycle(graph: grimp.ImportGraph) -> None:
    for module in graph.find_modules_directly_imported_by("support.tasks"):
        assert graph.find_shortest_chain(importer=module, imported="support.tasks") is None


def test_jobs_is_a_leaf(graph: grimp.ImportGraph) -> None:
    assert graph.find_modules_directly_imported_by("support.jobs") == set()


def test_the_answer_stages_never_import_the_services_that_call_them(
    graph: grimp.ImportGraph,
) -> None:
    callers = ["support.replies", "support.conversations", "support.outcomes", "support.handoff"]
    for stage in graph.find_descendants("support.answers"):
        for caller in callers:
            assert not graph.chain_exists(importer=stage, imported=caller), (stage, caller)


def test_the_escalation_rules_stay_pure(graph: grimp.ImportGraph) -> None:
    rules = "support.handoff.escalation_rules"
    imported = set()
    for module in {rules, *graph.find_descendants(rules)}:
        imported |= graph.find_modules_directly_imported_by(module)
    outside = {m for m in imported if not m.startswith(rules)}
    # The reasons are a leaf; the backend registry is reached lazily for the embedding model.
    assert outside <= {"support.answers.reasons", "support.backends"}, outside


def test_a_process_that_never_imported_the_tasks_can_queue_work(tmp_path: Path) -> None:
    """The web process never imports support.tasks itself: jobs find the task by name."""
    script = """
import django, os
os.environ["DJANGO_SETTINGS_MODULE"] = "chatbot.settings.test"
django.setup()
import sys
from django.core.management import call_command
call_command("migrate", verbosity=0)
from support import jobs
assert "support.tasks" not in sys.modules
jobs._send(jobs.REPLY_GENERATE, {"message_id": 1}, None)  # eager here: runs, finds no message
assert "support.tasks" in sys.modules
print("queued")
"""
    env = {"SUPPORT_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("queued")
