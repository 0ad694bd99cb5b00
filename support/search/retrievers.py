"""Versioned embedding models specialised on the company (issue 14, docs/learning.md).

Layout under SUPPORT_DATA_DIR/retrievers::

    CURRENT              "3\n": the specialised model new embeddings are made with; absent or
                         "0\n" means the shipped (configured) model. Replaced atomically.
    HISTORY              the versions CURRENT pointed at before, one per line (for rollback)
    LAST                 the highest version ever installed (a number is never reused)
    retriever-v3/        a sentence-transformers folder, plus specialised.json (how it was made)

A model folder is written under a temporary name and renamed into place whole, so a folder
named `retriever-vN` is always complete. Which model embedded an index version is recorded in
that version's manifest (`metadata["embedding_model"]`), and searches embed their query with
that model (backends.embedder_for_manifest): the index's CURRENT flip is the one point where a
promotion or rollback takes effect for search. The folder scheme (and its invariants) is
support/versioned.py's, shared with the chat models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .. import versioned

PREFIX: Final = "retriever-v"
CURRENT_FILE: Final = versioned.CURRENT_FILE
HISTORY_FILE: Final = versioned.HISTORY_FILE
INFO_FILE: Final = "specialised.json"
_FOLDERS: Final = versioned.VersionedFolders(
    PREFIX, lambda path: (path / "modules.json").is_file(), "retriever"
)
discard = versioned.discard


@dataclass(frozen=True, slots=True)
class RetrieverModel:
    """A specialised model: its version, folder and label (the label stored with embeddings)."""

    version: int
    path: Path

    @property
    def label(self) -> str:
        return label_of(self.version)


def label_of(version: int) -> str:
    return _FOLDERS.label_of(version)


def is_specialised_label(label: str) -> bool:
    return label.startswith(PREFIX)


def model_dir(root: Path, version: int) -> Path:
    return _FOLDERS.folder(root, version)


def current(root: Path) -> RetrieverModel | None:
    """The published specialised model, or None when the shipped model is in use.

    A CURRENT naming a folder that is gone (deleted by hand) falls back to the shipped model.
    """
    version = _FOLDERS.current(root)
    return RetrieverModel(version, model_dir(root, version)) if version else None


def history(root: Path) -> list[int]:
    return _FOLDERS.history(root)


def versions(root: Path) -> list[int]:
    """Every complete model folder's version, ascending."""
    return _FOLDERS.versions(root)


def next_version(root: Path) -> int:
    return _FOLDERS.next_version(root)


def staging_dir(root: Path, version: int) -> Path:
    """Where a model is written before `install` renames it into place."""
    return _FOLDERS.staging_dir(root, version)


def install(root: Path, staging: Path, version: int, info: dict[str, Any]) -> RetrieverModel:
    """Rename a fully written staging folder into place as `retriever-v<version>` (not yet
    published: CURRENT is unchanged)."""
    (staging / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), "utf-8")
    return RetrieverModel(version, _FOLDERS.install(root, staging, version))


def info(model: RetrieverModel) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((model.path / INFO_FILE).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data


def publish(root: Path, version: int | None) -> None:
    """Point CURRENT at `version` (None: the shipped model), remembering the previous one."""
    _FOLDERS.publish(root, version)


def rollback(root: Path) -> int | None:
    """Point CURRENT back at the version before it (popping HISTORY); returns that version
    (None: the shipped model). Raises LookupError when there is nothing to go back to."""
    return _FOLDERS.rollback(root)


def prune(root: Path, *, keep: int = 3) -> None:
    """Delete model folders that are neither current, in the rollback history, nor among the
    newest `keep`; and leftovers of crashed runs of other processes' staging folders."""
    _FOLDERS.prune(root, keep=keep)
