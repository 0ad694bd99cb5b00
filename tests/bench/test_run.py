"""bench/run.py: the plan (quick/full arguments, skips), running a script, writing outputs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import run

ALL_TOOLS = {"redis-server": "/usr/bin/redis-server", "createdb": "/usr/bin/createdb"}


def _plan(profile: str, env: dict[str, str] | None = None, **kw: Any) -> dict[str, run.Step]:
    kw.setdefault("which", ALL_TOOLS.get)
    kw.setdefault("module_exists", lambda name: False)
    return {s.name: s for s in run.plan(profile, env=env or {}, **kw)}


def test_quick_plan_on_embedded_defaults() -> None:
    steps = _plan("quick")
    assert steps["chat_load"].args[-1] == "--embedded"
    assert steps["retrieval"].args == ["--quick"]
    assert "full suite only" in (steps["retrieval_tune"].skip or "")
    assert sum(s.budget_s for s in steps.values() if not s.skip) <= run.TARGET_S["quick"]
    assert steps["retrieval_variants"].skip  # on purpose, with a reason


def test_full_budgets_fit_the_target() -> None:
    steps = _plan("full")
    assert not steps["retrieval_tune"].skip
    assert sum(s.budget_s for s in steps.values() if not s.skip) <= run.TARGET_S["full"]
    steps = _plan("full", module_exists=lambda name: True)  # with the llama.cpp backend too
    assert sum(s.budget_s for s in steps.values() if not s.skip) <= run.TARGET_S["full"]


def test_llamacpp_backend_is_skipped_cleanly_when_missing() -> None:
    gen = _plan("quick")["generation"]
    assert gen.args[-2:] == ["--backends", "ctransformers"]
    assert "llama-cpp-python is not installed" in gen.skipped_parts["llama.cpp backend"]
    gen = _plan("full", module_exists=lambda name: name == "llama_cpp")["generation"]
    assert gen.args[-1] == "ctransformers,llamacpp"
    assert not gen.skipped_parts
    gen = _plan("quick", module_exists=lambda name: name == "llama_cpp")["generation"]
    assert gen.args[-1] == "ctransformers"
    assert "quick profile" in gen.skipped_parts["llama.cpp backend"]


def test_database_and_redis_urls_select_the_production_topology() -> None:
    env = {"DATABASE_URL": "postgres://bench@db.example:5432/x", "REDIS_URL": "redis://r:6379/0"}
    chat = _plan("full", env)["chat_load"]
    assert chat.args == ["--pg-host", "db.example", "--pg-user", "bench"]
    chat = _plan("full", {"REDIS_URL": "redis://r:6379/0"})["chat_load"]
    assert chat.args == ["--sqlite"]
    chat = _plan("full", env, which=lambda tool: None)["chat_load"]
    assert "redis-server is not installed" in (chat.skip or "")
    assert run.services({})["topology"] == "embedded"


def test_only_and_skip() -> None:
    steps = _plan("quick", only=["answers"])
    assert [n for n, s in steps.items() if not s.skip] == ["answers"]
    steps = _plan("quick", skip=["chat_load"])
    assert steps["chat_load"].skip and not steps["answers"].skip


def test_reports_run_the_issues_100k_on_postgresql_when_there_is_one() -> None:
    plain = _plan("full")["reports"]
    assert plain.args == ["--conversations", "20000", "--pg-conversations", "20000,100000"]
    pg = _plan("full", {"DATABASE_URL": "postgres://bench@db.example:5432/x"})["reports"]
    assert pg.args == plain.args
    assert pg.budget_s == plain.budget_s + run.REPORTS_PG_BUDGET_S
    sqlite = _plan("full", {"DATABASE_URL": "sqlite:////tmp/x.sqlite3"})["reports"]
    assert sqlite.budget_s == plain.budget_s
    assert _plan("quick")["reports"].args == ["--quick", "--backends", "sqlite"]


def test_every_script_under_bench_is_in_the_suite_or_excluded_with_a_reason() -> None:
    assert set(run.unregistered()) <= set(run.NOT_IN_SUITE)


def test_an_unregistered_script_shows_up(tmp_path: Path) -> None:
    (tmp_path / "new_bench.py").write_text('ap.add_argument("--out")\n')
    (tmp_path / "_helper.py").write_text("")
    steps = _plan("quick", bench_dir=tmp_path)
    assert "not registered" in (steps["new_bench"].skip or "")
    assert "_helper" not in steps
    assert run.takes_out_flag(tmp_path / "new_bench.py")
    assert not run.takes_out_flag(tmp_path / "_helper.py")


def _progress() -> run.Progress:
    return run.Progress(10, enabled=False)


def test_run_process_ok_failed_and_timeout(tmp_path: Path) -> None:
    ok = run.run_process(
        "ok",
        [sys.executable, "-c", "print('hello')"],
        log=tmp_path / "ok.log",
        budget_s=10,
        env={},
        progress=_progress(),
        desc="ok",
    )
    assert ok["status"] == "ok" and ok["cpu_s"] >= 0
    assert (tmp_path / "ok.log").read_text().strip() == "hello"
    bad = run.run_process(
        "bad",
        [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"],
        log=tmp_path / "bad.log",
        budget_s=10,
        env={},
        progress=_progress(),
        desc="bad",
    )
    assert bad["status"] == "failed" and "exit code 3" in bad["reason"] and "boom" in bad["reason"]
    started = time.monotonic()
    slow = run.run_process(
        "slow",
        [sys.executable, "-c", "import time; time.sleep(30)"],
        log=tmp_path / "slow.log",
        budget_s=0.4,
        env={},
        progress=_progress(),
        desc="slow",
    )
    assert slow["status"] == "timeout"
    assert time.monotonic() - started < 10


def test_newest_result_and_results_path(tmp_path: Path) -> None:
    since = time.time()
    assert run.newest_result("answers", since, tmp_path) is None
    (tmp_path / "answers-1.json").write_text("{}")
    (tmp_path / "generation-1.json").write_text("{}")
    assert run.newest_result("answers", since, tmp_path) == tmp_path / "answers-1.json"
    res = {"started_at": "2026-11-28T01:00:00+00:00", "profile": "full"}
    assert run.results_path(res, tmp_path).name == "2026-11-28.json"
    (tmp_path / "2026-11-28.json").write_text("{}")
    assert run.results_path(res, tmp_path).name == "2026-11-28-2.json"
    assert run.results_path({**res, "profile": "quick"}, tmp_path).name == "2026-11-28-quick.json"


def test_slim_drops_answer_texts_only() -> None:
    rows = [{"id": "a", "answer": "long text", "f1": 0.5, "declined": False}]
    slim = run.slim("answers", {"rows": rows, "summary": {}})
    assert slim["rows"] == [{"id": "a", "f1": 0.5, "declined": False}]
    assert run.slim("generation", {"rows": rows})["rows"] == rows


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(run, "DOCS_DIR", tmp_path / "docs")
    monkeypatch.setattr(run, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(run, "QUICK_DIR", tmp_path / "quick")
    monkeypatch.setattr(run, "README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text("# P\n\n## Quick start\n\nx\n")
    return tmp_path


def test_publishing_writes_results_docs_plots_and_readme(
    outputs: Path, results: dict[str, Any]
) -> None:
    written = run.write_outputs(results, publish=True)
    assert written["results"] == outputs / "results" / "2026-11-28.json"
    saved = json.loads(written["results"].read_text())
    assert saved["derived"]["cost"]["answered"] == 2
    pngs = sorted(p.name for p in (outputs / "docs" / "img").glob("*.png"))
    assert pngs == [
        "chat_load.png",
        "generation_latency.png",
        "recall_at_k.png",
        "tokens_per_s.png",
    ]
    page = (outputs / "docs" / "benchmarks.md").read_text()
    assert "](img/tokens_per_s.png)" in page
    readme = (outputs / "README.md").read_text()
    assert "## Headline figures" in readme and readme.endswith("## Quick start\n\nx\n")


def test_a_quick_run_leaves_docs_and_readme_alone(outputs: Path, results: dict[str, Any]) -> None:
    results["profile"] = "quick"
    del results["scripts"]["generation"]  # and a missing script draws no plot for it
    written = run.write_outputs(results, publish=False)
    assert written["report"] == outputs / "quick" / "benchmarks.md"
    assert "readme" not in written and not (outputs / "docs").exists()
    assert (outputs / "README.md").read_text() == "# P\n\n## Quick start\n\nx\n"
    assert not (outputs / "quick" / "img" / "tokens_per_s.png").exists()
