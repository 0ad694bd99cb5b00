from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support.search.embedder import (
    Embedder,
    EmbedderUnavailable,
    SentenceTransformerEmbedder,
    default_embedding_model_path,
)

from .conftest import FakeEmbedder


def test_fake_embedder_satisfies_the_protocol() -> None:
    assert isinstance(FakeEmbedder(), Embedder)


def test_default_model_path_is_the_packaged_folder() -> None:
    path = Path(default_embedding_model_path())
    assert (path / "modules.json").is_file()


def test_missing_model_folder_is_reported(tmp_path: Path) -> None:
    embedder = SentenceTransformerEmbedder(str(tmp_path))
    with pytest.raises(EmbedderUnavailable):
        embedder.encode(["hello"])


@pytest.mark.slow
def test_real_model_encodes_normalised_vectors_in_input_order() -> None:
    embedder = SentenceTransformerEmbedder(threads=1, batch_size=4)
    assert isinstance(embedder, Embedder)
    texts = [
        "How do I reset my password?",
        "Refunds are paid within 14 days of receiving the returned item, as long as the "
        "item is unused and in its original packaging. " * 3,
        "Shipping to Canada",
        "",
        "Our opening hours are nine to five on weekdays.",
    ]

    vectors = embedder.encode(texts)
    one_by_one = np.stack([embedder.encode([t])[0] for t in texts])
    query = embedder.encode_query("I forgot my password")

    assert embedder.dimension == 384
    assert vectors.dtype == np.float32 and vectors.shape == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Length-sorted batching must give back the caller's order (and batch-independent values).
    np.testing.assert_allclose(vectors, one_by_one, atol=1e-4)
    assert int(np.argmax(vectors @ query)) == 0
    assert embedder.encode([]).shape == (0, 384)
