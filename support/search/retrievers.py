"""Versioned embedding models specialised on the company (issue 14, docs/learning.md).

Layout under SUPPORT_DATA_DIR/retrievers::

    CURRENT              "3\n": the specialised model new embeddings are made with; absent or
                         "0\n" means the shipped (configured) model. Replaced atomically.
    HISTORY              the versions CURRENT pointed at before, one per line (for rollback)
    retriever-v3/        a sentence-transformers folder, plus specialised.json (how it was made)

A model folder is written under a temporary name and renamed into place whole, so a folder
named `retriever-vN` is always complete. Which model embedded an index version is recorded in
that version's manifest (`metadata["embedding_model"]`), and searches embed their query with
that model (backends.embedder_for_manifest): the index's CURRENT flip is the one point where a
promotion or rollback takes effect for search.
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

PREFIX: Final = "retriever-v"
CURRENT_FILE: Final = "CURRENT"
HISTORY_FILE: Final = "HISTORY"
INFO_FILE: Final = "specialised.json"
_DIR_RE: Final = re.compile(rf"^{PREFIX}(\d+)$")
_TMP_MARK: Final = ".tmp-"


@dataclass(frozen=True, slots=True)
class RetrieverModel:
    """A specialised model: its version, folder and label (the label stored with embeddings)."""

    version: int
    path: Path

    @property
    def label(self) -> str:
        return label_of(self.version)


def label_of(version: int) -> str:
    return f"{PREFIX}{version}"


def is_specialised_label(label: str) -> bool:
    return label.startswith(PREFIX)


def model_dir(root: Path, version: int) -> Path:
    return root / label_of(version)


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text else None


def current(root: Path) -> RetrieverModel | None:
    """The published specialised model, or None when the shipped model is in use.

    A CURRENT naming a folder that is gone (deleted by hand) falls back to the shipped model.
    """
    version = _read_int(root / CURRENT_FILE)
    if not version:
        return None
    path = model_dir(root, version)
    if not (path / "modules.json").is_file():
        return None
    return RetrieverModel(version, path)


def history(root: Path) -> list[int]:
    try:
        lines = (root / HISTORY_FILE).read_text(encoding="ascii").split()
    except FileNotFoundError:
        return []
    return [int(x) for x in lines if x.strip().isdigit()]


def versions(root: Path) -> list[int]:
    """Every complete model folder's version, ascending."""
    if not root.is_dir():
        return []
    found = []
    for name in os.listdir(root):
        match = _DIR_RE.match(name)
        if match and (root / name / "modules.json").is_file():
            found.append(int(match.group(1)))
    return sorted(found)


def next_version(root: Path) -> int:
    latest = max([0, *versions(root), *history(root), _read_int(root / CURRENT_FILE) or 0])
    if root.is_dir():
        for name in os.listdir(root):
            match = re.match(rf"^{_TMP_MARK}{PREFIX}(\d+)", name)
            if match:
                latest = max(latest, int(match.group(1)))
    return latest + 1


def staging_dir(root: Path, version: int) -> Path:
    """Where a model is written before `install` renames it into place."""
    return root / f"{_TMP_MARK}{label_of(version)}-{os.getpid()}"


def install(root: Path, staging: Path, version: int, info: dict[str, Any]) -> RetrieverModel:
    """Rename a fully written staging folder into place as `retriever-v<version>` (not yet
    published: CURRENT is unchanged)."""
    (staging / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), "utf-8")
    final = model_dir(root, version)
    os.replace(staging, final)
    _fsync_dir(root)
    return RetrieverModel(version, final)


def info(model: RetrieverModel) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((model.path / INFO_FILE).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data


def publish(root: Path, version: int | None) -> None:
    """Point CURRENT at `version` (None: the shipped model), remembering the previous one."""
    root.mkdir(parents=True, exist_ok=True)
    previous = _read_int(root / CURRENT_FILE) or 0
    target = version or 0
    if previous != target:
        _write_atomic(root / HISTORY_FILE, "".join(f"{v}\n" for v in [*history(root), previous]))
    _write_atomic(root / CURRENT_FILE, f"{target}\n")


def rollback(root: Path) -> int | None:
    """Point CURRENT back at the version before it (popping HISTORY); returns that version
    (None: the shipped model). Raises LookupError when there is nothing to go back to."""
    past = history(root)
    while past:
        version = past.pop()
        if version == 0 or (model_dir(root, version) / "modules.json").is_file():
            _write_atomic(root / CURRENT_FILE, f"{version}\n")
            _write_atomic(root / HISTORY_FILE, "".join(f"{v}\n" for v in past))
            return version or None
    raise LookupError("no earlier retriever version to roll back to")


def discard(path: Path) -> None:
    """Delete an unpublished model folder (a refused, cancelled or failed run)."""
    shutil.rmtree(path, ignore_errors=True)


def prune(root: Path, *, keep: int = 3) -> None:
    """Delete model folders that are neither current, in the rollback history, nor among the
    newest `keep`; and leftovers of crashed runs of other processes' staging folders."""
    if not root.is_dir():
        return
    wanted = {_read_int(root / CURRENT_FILE) or 0, *history(root)[-keep:]}
    for version in versions(root)[:-keep]:
        if version not in wanted:
            discard(model_dir(root, version))
    for name in os.listdir(root):
        if name.startswith(_TMP_MARK) and not name.endswith(f"-{os.getpid()}"):
            discard(root / name)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{os.getpid()}")
    try:
        tmp.write_text(text, encoding="ascii")
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
