"""Exporting the torch chat model as GGUF and verifying the file (issue 15 item 2).

The real shipped model throughout (the session's `torch_chat`): exported, it must load in the
served backends through the normal model-file path, stream an answer, carry its metadata,
tokenizer and chat template, and its greedy tokens must match torch's; a corrupted tensor
must fail the check, and a failed export must leave nothing at `out`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from django.core.management import CommandError, call_command

from support.learning import chat_export
from support.learning.chat_export import (
    DEMO_QUESTIONS,
    ExportError,
    export_gguf,
    export_verify,
    gguf_metadata,
    prompt_model,
    verification_prompts,
)
from support.llm import (
    CTransformersChatModel,
    FinishReason,
    GenerationParams,
    LlamaCppChatModel,
    default_model_path,
)
from support.llm.gguf_file import read_gguf

SOURCE = default_model_path()
# Enough prompts to tell an honest export from a broken one, few enough for CI (the full
# 50-prompt calibration is bench/chat_export.py).
CHECK_PROMPTS = 8


@pytest.fixture(scope="module")
def prompts() -> list[list[int]]:
    return verification_prompts(prompt_model(SOURCE), count=CHECK_PROMPTS)


@pytest.fixture(scope="module")
def exports(torch_chat: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The unmodified shipped model exported once per type."""
    model, _ = torch_chat
    folder = tmp_path_factory.mktemp("exports")
    meta = {
        "examples": 12,
        "hyperparameters": json.dumps({"steps": 3, "lora_r": 8}),
        "gate_report": json.dumps({"promoted": True, "f1": 0.41}),
    }
    return {
        qtype: export_gguf(
            model, source=SOURCE, out=folder / f"model-{qtype}.gguf", qtype=qtype, metadata=meta
        )
        for qtype in ("Q8_0", "Q4_1")
    }


@pytest.fixture
def broken_export(torch_chat: Any, tmp_path: Path) -> Path:
    """An export of the torch model with one attention matrix replaced by noise of the same
    scale; the model gets its own weights back (it is shared by the session)."""
    model, _ = torch_chat
    weight = model.model.layers[10].self_attn.v_proj.weight
    original = weight.data.clone()
    generator = torch.Generator().manual_seed(15)
    weight.data = torch.randn(original.shape, generator=generator) * original.std()
    try:
        return export_gguf(model, source=SOURCE, out=tmp_path / "broken.gguf", qtype="Q8_0")
    finally:
        weight.data = original


def _answer(chat: Any, prompt: list[int]) -> tuple[str, Any]:
    with chat.stream(prompt, GenerationParams(max_tokens=24)) as stream:
        text = stream.text()
    return text, stream.stats


@pytest.mark.slow
def test_a_q4_1_export_of_the_shipped_model_writes_back_its_own_tensors(
    exports: dict[str, Path],
) -> None:
    # transformers un-permuted attn_q/attn_k and dequantized everything on loading: the
    # export must undo both, so the shipped weights come back bit for bit.
    ours, theirs = read_gguf(exports["Q4_1"]), read_gguf(SOURCE)
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    a = np.memmap(exports["Q4_1"], dtype=np.uint8, mode="r")
    b = np.memmap(SOURCE, dtype=np.uint8, mode="r")
    for mine, shipped in zip(ours.tensors, theirs.tensors, strict=True):
        assert (mine.shape, mine.ggml_type) == (shipped.shape, shipped.ggml_type), mine.name
        x = a[ours.data_offset + mine.offset :][: mine.nbytes]
        y = b[theirs.data_offset + shipped.offset :][: shipped.nbytes]
        assert np.array_equal(x, y), mine.name


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_1"])
def test_the_export_carries_metadata_tokenizer_and_chat_template(
    exports: dict[str, Path], qtype: str
) -> None:
    info, shipped = read_gguf(exports[qtype]), read_gguf(SOURCE)
    for key in (
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.eos_token_id",
        "tokenizer.chat_template",
        "llama.context_length",
        "llama.rope.freq_base",
        "llama.attention.head_count_kv",
    ):
        assert info.metadata[key] == shipped.metadata[key], key
        assert info.value_types[key] == shipped.value_types[key], key
    assert info.metadata["general.file_type"] == {"Q8_0": 7, "Q4_1": 3}[qtype]
    types = {t.name: t.ggml_type.name for t in info.tensors}
    assert types["token_embd.weight"] == "Q8_0"
    assert types["blk.3.attn_q.weight"] == qtype
    assert types["blk.3.attn_norm.weight"] == "F32"

    meta = gguf_metadata(exports[qtype])
    assert meta["smallbot.base_model"] == SOURCE.name
    assert meta["smallbot.base_sha256"] == hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    assert meta["smallbot.qtype"] == qtype
    assert meta["smallbot.examples"] == 12
    assert json.loads(meta["smallbot.hyperparameters"]) == {"steps": 3, "lora_r": 8}
    assert json.loads(meta["smallbot.gate_report"])["promoted"] is True
    assert gguf_metadata(SOURCE) == {}


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_1"])
def test_the_export_loads_in_ctransformers_and_streams_an_answer(
    exports: dict[str, Path], qtype: str, tmp_path: Path, prompts: list[list[int]]
) -> None:
    chat = CTransformersChatModel(exports[qtype], cache_dir=tmp_path, threads=1)
    # Through the compatibility copy, as for any GGUF: made from the exported file.
    assert chat.compat_path.parent == tmp_path
    assert read_gguf(chat.compat_path).tensor("output.weight") is not None
    text, stats = _answer(chat, prompts[0])
    assert text.strip()
    assert stats.finish_reason in (FinishReason.EOS, FinishReason.LENGTH)
    assert chat.render_chat([{"role": "user", "content": "hi"}]).startswith("<|im_start|>")


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_1"])
def test_the_export_loads_in_llama_cpp_and_streams_an_answer(
    exports: dict[str, Path], qtype: str, prompts: list[list[int]]
) -> None:
    pytest.importorskip("llama_cpp")
    chat = LlamaCppChatModel(exports[qtype], threads=1)
    text, stats = _answer(chat, prompts[0])
    assert text.strip()
    assert stats.finish_reason in (FinishReason.EOS, FinishReason.LENGTH)


@pytest.mark.slow
def test_the_check_passes_an_honest_export(
    torch_chat: Any, exports: dict[str, Path], prompts: list[list[int]]
) -> None:
    model, _ = torch_chat
    check = export_verify(model, exports["Q8_0"], prompts, qtype="Q8_0", threads=1)
    assert check.ok, check.summary()
    assert check.prompts == CHECK_PROMPTS
    assert check.backend in ("llamacpp", "ctransformers")
    assert len(check.detail) == CHECK_PROMPTS
    assert all(d["torch"] and d["gguf"] for d in check.detail)


@pytest.mark.slow
def test_the_check_fails_an_export_with_a_corrupted_tensor(
    torch_chat: Any, broken_export: Path, prompts: list[list[int]]
) -> None:
    model, _ = torch_chat
    check = export_verify(model, broken_export, prompts, qtype="Q8_0", threads=1)
    assert not check.ok, check.summary()


@pytest.mark.slow
def test_a_failed_export_leaves_nothing_at_out(
    torch_chat: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gguf.quants

    model, _ = torch_chat
    out = tmp_path / "model.gguf"
    out.write_bytes(b"the previous file")
    real = gguf.quants.quantize
    calls = 0

    def quantize_then_fail(data: Any, qtype: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 40:  # part of the file is written by then
            raise OSError("disk full")
        return real(data, qtype)

    monkeypatch.setattr(gguf.quants, "quantize", quantize_then_fail)
    with pytest.raises(OSError, match="disk full"):
        export_gguf(model, source=SOURCE, out=out, qtype="Q8_0")
    assert calls == 40
    assert out.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


class _StateDictOnly:
    """Just enough of a torch model for the export's name and shape checks."""

    def __init__(self, tensors: dict[str, Any]) -> None:
        self._tensors = tensors

    def state_dict(self) -> dict[str, Any]:
        return self._tensors


def test_an_unmerged_lora_model_is_refused(tmp_path: Path) -> None:
    model = _StateDictOnly(
        {
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight": torch.zeros(
                8, 576
            )
        }
    )
    with pytest.raises(ExportError, match="merge_and_unload"):
        export_gguf(model, source=SOURCE, out=tmp_path / "x.gguf")  # type: ignore[arg-type]
    assert not (tmp_path / "x.gguf").exists()


def test_a_model_that_does_not_fit_the_source_is_refused(tmp_path: Path) -> None:
    model = _StateDictOnly({"model.embed_tokens.weight": torch.zeros(100, 64)})
    with pytest.raises(ExportError, match="lacks tensors"):
        export_gguf(model, source=SOURCE, out=tmp_path / "x.gguf")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="qtype"):
        export_gguf(model, source=SOURCE, out=tmp_path / "x.gguf", qtype="Q2_K")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_verification_prompts_are_the_answer_prompts_over_the_demo_kb() -> None:
    chat = prompt_model(SOURCE)
    prompts = verification_prompts(chat, count=50)
    assert len(prompts) == 50
    assert len({tuple(p) for p in prompts}) == 50
    texts = [chat.detokenize(p) for p in prompts]
    for question, text in zip(DEMO_QUESTIONS, texts, strict=False):
        assert question in text
        assert text.endswith("\nassistant\n")  # the generation prompt
    assert sum("[1]" in t for t in texts) >= 45  # numbered facts from the knowledge base
    assert any("30 seconds" in t for t in texts)
    assert max(len(p) for p in prompts) < chat.context_length - 256


@pytest.mark.slow
def test_the_chat_export_command_writes_a_verified_file(
    torch_chat: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import io

    from support.learning import chat_torch

    settings.SUPPORT_DATA_DIR = tmp_path / "data"
    monkeypatch.setattr(chat_torch, "load_torch_chat_model", lambda path, threads=None: torch_chat)
    out = tmp_path / "served-Q8_0.gguf"
    stdout = io.StringIO()
    call_command(
        "chat_export",
        "--out",
        str(out),
        "--qtype",
        "Q8_0",
        "--verify",
        "4",
        "--json",
        stdout=stdout,
    )
    report = json.loads(stdout.getvalue())
    assert report["path"] == str(out)
    assert report["check"]["prompts"] == 4
    assert report["check"]["ok"] is True
    assert report["metadata"]["smallbot.base_model"] == SOURCE.name
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".gguf" or p.name[0] == "."] == [
        "served-Q8_0.gguf"
    ]
    with pytest.raises(CommandError, match="--verify"):
        call_command("chat_export", "--out", str(out), "--verify", "-1")

    # A check that fails (here: a mark no export can reach) leaves nothing at --out.
    impossible = chat_export.Tolerance(min_exact_share=1.01, min_agreement=1.01)
    monkeypatch.setitem(chat_export.TOLERANCES, "Q4_1", impossible)  # type: ignore[arg-type]
    failed = tmp_path / "served-Q4_1.gguf"
    with pytest.raises(CommandError, match="disagrees with the torch model"):
        call_command("chat_export", "--out", str(failed), "--qtype", "Q4_1", "--verify", "2")
    assert not failed.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name[0] == "."] == []
