"""Answer memory with the real models on the demo knowledge base: an exchange imported with
`examples_import --approve` answers a paraphrase of its question in the chat, streamed over the
websocket and cited to its grounding chunk, and in `ask --json` (docs/learning.md)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from support import backends
from support.demo import demo_kb_ensure
from support.models import Example, Message
from tests import ws
from tests.answers.conftest import real_chat_model  # noqa: F401  (session fixture)
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)

APPROVED = {
    "id": "desk-1",
    "question": "When is my bill paid?",
    "answer": "Bills are paid by direct debit on the 15th of each month.",
}
PARAPHRASE = "when does my bill get paid?"  # cosine 0.97 to the approved question


@pytest.fixture
def learned(
    tmp_path: Path,
    transactional_db: None,
    real_embedder: Any,  # noqa: F811
    real_chat_model: Any,  # noqa: F811
) -> Iterator[Example]:
    """The demo knowledge base with the real models, one exchange imported and approved."""
    with override_settings(
        SUPPORT_DATA_DIR=tmp_path,
        MEDIA_ROOT=tmp_path / "media",
        SUPPORT_DEBOUNCE_S=0,
        # The exchange must be a key, not held back for the gate.
        SUPPORT_EXAMPLES_HELD_BACK_PERCENT=0,
        SUPPORT_ANSWER_MEMORY=True,
    ):
        backends.set_backend("embedder", real_embedder)
        backends.set_backend("chat_model", real_chat_model)
        demo_kb_ensure()
        path = tmp_path / "desk.jsonl"
        path.write_text(json.dumps(APPROVED) + "\n")
        out = io.StringIO()
        call_command("examples_import", str(path), "--approve", stdout=out)
        assert "question memory of 1 question" in out.getvalue(), out.getvalue()
        yield Example.objects.get(external_id="desk-1")
    backends.reset_backends()


def _grounding_chunk(example: Example) -> int:
    chunk_id = example.grounding.get().chunk_id
    assert chunk_id is not None
    return chunk_id


@pytest.mark.asyncio
async def test_a_paraphrase_is_answered_from_memory_in_the_chat(learned: Example) -> None:
    chunk_id = await _async(_grounding_chunk, learned)
    comm = await ws.connect()
    await ws.hello(comm)
    await ws.ask(comm, PARAPHRASE, client_id="c-1")
    frames = await ws.until(comm, "reply.done", wait_s=60)
    deltas = [f["delta"] for f in frames if f["type"] == "reply.delta"]
    done = frames[-1]["message"]
    assert deltas and "".join(deltas).strip() == done["text"]
    assert done["text"].startswith(APPROVED["answer"].rstrip("."))
    assert [c["chunk_id"] for c in done["citations"]] == [chunk_id]
    assert done["source"] == "learned"  # the widget can tell a learned answer (docs/protocol.md)
    bot = await Message.objects.aget(role="bot")
    assert bot.action == "answer" and bot.reason == "learned"
    assert bot.trace["source"] == "learned"
    assert bot.trace["recall"]["example_id"] == learned.pk
    assert bot.trace["recall"]["similarity"] >= 0.9
    await comm.disconnect()


def test_ask_json_reports_the_learned_source(learned: Example) -> None:
    out = io.StringIO()
    call_command("ask", PARAPHRASE, "--json", stdout=out)
    result = json.loads(out.getvalue())
    assert result["source"] == "learned" and result["reason"] == "learned"
    assert result["learned_example_id"] == learned.pk
    assert [c["chunk_id"] for c in result["citations"]] == [_grounding_chunk(learned)]
    # An unrelated question gets no approved answer, and an off-topic one stays declined.
    other = io.StringIO()
    call_command("ask", "How do I restart my router?", "--json", "--no-generate", stdout=other)
    assert json.loads(other.getvalue())["source"] == "knowledge_base"
    off = io.StringIO()
    call_command("ask", "When is the football match paid out?", "--json", stdout=off)
    assert json.loads(off.getvalue())["action"] == "escalate"


async def _async(fn: Any, *args: Any) -> Any:
    from channels.db import database_sync_to_async

    return await database_sync_to_async(fn)(*args)
