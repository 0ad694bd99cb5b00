"""The paraphrase bridge with the real embedding model over the demo knowledge base's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support.search.bridge import BridgeConfig, bridge_build
from support.search.lexical import Bm25Index
from tests.knowledge.conftest import real_embedder  # noqa: F401  (session fixture)

pytestmark = pytest.mark.slow

DEMO_KB = Path(__file__).resolve().parents[2] / "support" / "demo_kb"


def test_relocating_stands_in_for_moving_and_off_topic_words_for_nothing(
    real_embedder: Any,  # noqa: F811
) -> None:
    texts = [p.read_text("utf-8") for p in sorted(DEMO_KB.iterdir())]
    lexical = Bm25Index.build(list(range(len(texts))), texts)
    bridge = bridge_build(
        lexical, real_embedder.encode, model=real_embedder.model_name, limit=20_000
    )
    assert bridge is not None and "moving" in bridge.terms
    config = BridgeConfig(threshold=0.65, weight=0.5, neighbours=2)

    def stand_ins(query: str) -> set[tuple[str, str]]:
        return {
            (e.word, e.term) for e in bridge.expand(lexical, query, real_embedder.encode, config)
        }

    assert stand_ins("I'm relocating next month") == {
        ("relocating", "moving"),
        ("relocating", "move"),
    }
    assert stand_ins("What is the capital of France?") == set()
    assert stand_ins("Who won the football world cup?") == set()
    # Words the knowledge base uses are not bridged.
    assert stand_ins("Can I take my plan when moving house?") == set()
