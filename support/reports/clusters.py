"""Grouping questions by meaning: agglomerative clustering of their embeddings (scikit-learn,
average linkage, cosine distance) cut at a distance threshold, and each group's most typical
member (the one closest to the group's centroid).

Pure: vectors in, labels out. No Django imports (bench/gaps_fit.py uses it directly).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

# Cosine distance (1 - cosine similarity) below which two groups of questions merge: chosen on
# the doc2dial dev paraphrase groups by bench/gaps_fit.py (docs/reports.md, "Knowledge gaps").
DEFAULT_DISTANCE_THRESHOLD: Final = 0.375
# Agglomerative clustering keeps an n x n distance matrix: beyond this many questions the most
# recent are kept (the caller orders them), about 200 MB of float64 at the cap.
MAX_CLUSTERED: Final = 5000


def cluster_labels(vectors: NDArray[np.float32], *, distance_threshold: float) -> list[int]:
    """One group label per row of `vectors` (L2-normalised), groups numbered from 0 by first
    appearance; rows closer than `distance_threshold` (average cosine distance) share one."""
    n = int(vectors.shape[0])
    if n == 0:
        return []
    if n == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering  # imported on use: it loads scipy

    model = AgglomerativeClustering(
        n_clusters=None,
        metric="cosine",
        linkage="average",
        distance_threshold=distance_threshold,
    )
    raw = model.fit_predict(np.asarray(vectors, dtype=np.float64))
    # Renumber by first appearance, so labels are stable for the same input order.
    renumber: dict[int, int] = {}
    return [renumber.setdefault(int(label), len(renumber)) for label in raw]


def typical_index(vectors: NDArray[np.float32], members: Sequence[int]) -> int:
    """The member closest (cosine) to the members' centroid: the group's most typical one."""
    rows = vectors[list(members)]
    centroid = rows.mean(axis=0)
    norm = float(np.linalg.norm(centroid))
    if norm == 0.0:
        return members[0]
    scores = rows @ (centroid / norm)
    return members[int(np.argmax(scores))]
