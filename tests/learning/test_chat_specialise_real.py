"""The chat model's gate with the real training, export and models (issue 15 item 6): SmolLM2
fine-tuned for a few LoRA steps on examples whose answers are shuffled across questions is
refused by the gate, and nothing served changes. Tiny on purpose (8 examples, 2 steps of one
sample, 4 export prompts): the plumbing and the gate's decision, not the model's quality
(bench/specialise.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from support import backends
from support.conf import get_support_settings
from support.learning import chat_specialise as chat
from support.llm import chat_models
from support.models_golden import GateReport
from support.models_learning import Example, SpecialiseRun
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)
from tests.learning.chat_fakes import EXAMPLES, TRAINED, help_desk_create

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def real_env(tmp_path: Path, real_embedder: Any) -> Iterator[Path]:  # noqa: F811
    with override_settings(
        SUPPORT_DATA_DIR=tmp_path,
        MEDIA_ROOT=tmp_path / "media",
        SUPPORT_MODEL_THREADS=1,
        # In a knowledge base of six short pages retrieval confidence is low even for clear
        # matches: every question would be declined before the model writes.
        SUPPORT_RETRIEVAL_MIN_CONFIDENCE=0.02,
        SUPPORT_CHAT_SPECIALISE_MIN_EXAMPLES=2,
        SUPPORT_CHAT_EXPORT_VERIFY_PROMPTS=4,
    ):
        backends.reset_backends()
        backends.set_backend("embedder", real_embedder)
        help_desk_create()
        yield tmp_path
    backends.reset_backends()


def test_a_model_trained_on_shuffled_answers_is_refused_and_nothing_served_changes(
    real_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chat_train = pytest.importorskip("support.learning.chat_train")
    chat_export = pytest.importorskip("support.learning.chat_export")
    # The training half's answers shuffled across its questions (the held-back half keeps the
    # agents' real answers: the gate measures against those).
    train = list(Example.objects.filter(held_back=False).order_by("pk"))
    assert len(train) == TRAINED
    answers = [a for _q, _p, a in EXAMPLES[:TRAINED]]
    for i, example in enumerate(train):
        example.answer = answers[(i + 3) % TRAINED]
        example.save(update_fields=["answer"])
    real = chat.tools()
    tiny = chat_train.ChatTrainConfig(
        steps=2, batch_size=1, learning_rate=1e-3, threads=1, checkpoint_every=1
    )
    monkeypatch.setattr(chat, "tools", lambda: dataclasses.replace(real, config=lambda: tiny))
    conf = get_support_settings()
    shipped = conf.resolved_model_path()
    served = backends.get_chat_model()

    out = StringIO()
    call_command("specialise", "--model", stdout=out)
    text = out.getvalue()
    print(text)  # the report, for whoever reads the log
    run = SpecialiseRun.objects.get()
    report = run.report
    assert run.status == SpecialiseRun.Status.REFUSED, run.message
    assert report["promoted"] is False and report["steps"] == 2
    assert "not promoted" in text
    assert {e["qtype"] for e in report["exports"]} == {"Q8_0", "Q4_1"}
    assert all(e["prompts"] == 4 for e in report["exports"])
    # Both backends load the trained export: the check decodes it in llama.cpp (`make install`
    # builds the llamacpp extra; CI fails without it), the served backend (ctransformers, through
    # its compatibility copy) streams the speed probe of each export that passed.
    assert conf.generator_backend.endswith("CTransformersChatModel")
    verified_in = "llamacpp" if chat_export.llamacpp_available() else "ctransformers"
    assert {e["backend"] for e in report["exports"]} == {verified_in}
    passed = [e for e in report["exports"] if e["ok"]]
    assert passed and all(e["tokens_per_s"] for e in passed)
    held_before, held_after = report["before"]["held_back"], report["after"]["held_back"]
    assert held_before["questions"] == held_after["questions"] == len(EXAMPLES) - TRAINED
    assert report["regressions"], report["reason"]
    gate = GateReport.objects.get(pk=report["gate_report"])
    assert gate.decision == GateReport.Decision.REFUSED
    # Nothing served changed: no version, no CURRENT, the same model in this process.
    root = conf.chat_models_dir
    assert chat_models.current(root) is None and chat_models.versions(root) == []
    assert [p.name for p in root.iterdir() if p.name.startswith(".tmp")] == []
    assert conf.resolved_model_path() == shipped
    # No converted copy of a candidate is left behind: the shipped model's only.
    assert len(list(conf.model_cache_dir.glob("*.ct-compat-*.gguf"))) == 1
    assert backends.get_chat_model() is served
