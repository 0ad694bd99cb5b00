"""Numbered model folders with one published version, swapped atomically (plain Python, no
Django): the specialised retrievers (support/search/retrievers.py) and chat models
(support/llm/chat_models.py) both keep their versions this way.

Layout under a root folder, for a prefix such as "model-v"::

    CURRENT          "3\\n": the published version; absent or "0\\n" means the configured
                     (shipped) model. Replaced atomically (a temporary file renamed over it).
    HISTORY          the versions CURRENT pointed at before, one per line (for rollback)
    LAST             the highest version ever installed: a number is never used twice (a
                     process that loaded an earlier "v2" must not take a new one for it)
    <prefix>3/       one version, complete (`complete(path)` says what that takes)

Invariants: a folder named `<prefix>N` is always complete (it is written under a temporary
name and renamed into place whole); CURRENT only ever names 0 or a complete folder; a version
number, once installed, is never reused.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CURRENT_FILE: Final = "CURRENT"
HISTORY_FILE: Final = "HISTORY"
LAST_FILE: Final = "LAST"
TMP_MARK: Final = ".tmp-"


@dataclass(frozen=True, slots=True)
class VersionedFolders:
    """The versions of one kind of model: folder names `<prefix><N>` under a root."""

    prefix: str
    complete: Callable[[Path], bool]
    what: str  # for messages: "retriever", "chat model"

    def label_of(self, version: int) -> str:
        return f"{self.prefix}{version}"

    def folder(self, root: Path, version: int) -> Path:
        return root / self.label_of(version)

    def current_version(self, root: Path) -> int:
        """CURRENT's version (0: the configured model). One small read."""
        return read_int(root / CURRENT_FILE) or 0

    def current(self, root: Path) -> int | None:
        """The published version when its folder is complete, else None (the configured
        model: a CURRENT naming a folder deleted by hand falls back to it)."""
        version = self.current_version(root)
        if not version or not self.complete(self.folder(root, version)):
            return None
        return version

    def history(self, root: Path) -> list[int]:
        try:
            lines = (root / HISTORY_FILE).read_text(encoding="ascii").split()
        except FileNotFoundError:
            return []
        return [int(x) for x in lines if x.strip().isdigit()]

    def versions(self, root: Path) -> list[int]:
        """Every complete version folder's number, ascending."""
        if not root.is_dir():
            return []
        pattern = re.compile(rf"^{re.escape(self.prefix)}(\d+)$")
        found = []
        for name in os.listdir(root):
            match = pattern.match(name)
            if match and self.complete(root / name):
                found.append(int(match.group(1)))
        return sorted(found)

    def next_version(self, root: Path) -> int:
        """A number no folder, staging folder, CURRENT, HISTORY or LAST has used."""
        latest = max(
            [
                0,
                *self.versions(root),
                *self.history(root),
                self.current_version(root),
                read_int(root / LAST_FILE) or 0,
            ]
        )
        if root.is_dir():
            pattern = re.compile(rf"^(?:{re.escape(TMP_MARK)})?{re.escape(self.prefix)}(\d+)")
            for name in os.listdir(root):
                match = pattern.match(name)
                if match:
                    latest = max(latest, int(match.group(1)))
        return latest + 1

    def staging_dir(self, root: Path, version: int) -> Path:
        """Where a version is written before `install` renames it into place."""
        return root / f"{TMP_MARK}{self.label_of(version)}-{os.getpid()}"

    def install(self, root: Path, staging: Path, version: int) -> Path:
        """Rename a fully written staging folder into place (not yet published: CURRENT is
        unchanged) and record the number in LAST."""
        if not self.complete(staging):
            raise FileNotFoundError(f"{staging} is not a complete {self.what} folder")
        final = self.folder(root, version)
        os.replace(staging, final)
        if version > (read_int(root / LAST_FILE) or 0):
            write_atomic(root / LAST_FILE, f"{version}\n")
        fsync_dir(root)
        return final

    def publish(self, root: Path, version: int | None) -> None:
        """Point CURRENT at `version` (None: the configured model), remembering the previous
        one in HISTORY."""
        root.mkdir(parents=True, exist_ok=True)
        previous = self.current_version(root)
        target = version or 0
        if target and not self.complete(self.folder(root, target)):
            raise FileNotFoundError(self.folder(root, target))
        if previous != target:
            history = [*self.history(root), previous]
            write_atomic(root / HISTORY_FILE, "".join(f"{v}\n" for v in history))
        write_atomic(root / CURRENT_FILE, f"{target}\n")

    def rollback(self, root: Path) -> int | None:
        """Point CURRENT back at the version before it (popping HISTORY); returns that version
        (None: the configured model). Raises LookupError when there is nothing to go back to."""
        past = self.history(root)
        served = self.current_version(root)
        while past:
            version = past.pop()
            if version == served:
                continue
            if version == 0 or self.complete(self.folder(root, version)):
                write_atomic(root / CURRENT_FILE, f"{version}\n")
                write_atomic(root / HISTORY_FILE, "".join(f"{v}\n" for v in past))
                return version or None
        raise LookupError(f"no earlier {self.what} version to roll back to")

    def prune(self, root: Path, *, keep: int = 3) -> list[Path]:
        """Delete version folders that are neither current, in the recent rollback history, nor
        among the newest `keep`, and other processes' staging folders (crashed runs). Returns
        the folders deleted."""
        if not root.is_dir():
            return []
        wanted = {self.current_version(root), *self.history(root)[-keep:]}
        gone = []
        for version in self.versions(root)[:-keep]:
            if version not in wanted:
                path = self.folder(root, version)
                gone.append(path)
                discard(path)
        mine = f"-{os.getpid()}"
        for name in os.listdir(root):
            staging = name.startswith(f"{TMP_MARK}{self.prefix}")
            if staging and not name.endswith(mine) and (root / name).is_dir():
                discard(root / name)
        return gone


def read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def discard(path: Path) -> None:
    """Delete an unpublished version folder (a refused, cancelled or failed run)."""
    shutil.rmtree(path, ignore_errors=True)


def write_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` whole: a temporary file, fsynced, renamed over it."""
    tmp = path.with_name(f"{TMP_MARK}{path.name}-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def fsync_dir(root: Path) -> None:
    fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
