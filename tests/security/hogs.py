"""Stand-in parsers that misbehave, run by support.ingest.sandbox's child in the tests.

Each has the signature of support.ingest.parsers.parse.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def eat_memory(data: bytes, filename: str, **_: Any) -> Any:
    """Grows by 64 MB at a time, like a decompression bomb the zip checks did not catch."""
    hoard = []
    while True:
        hoard.append(bytearray(64 * 1024 * 1024))


def spin(data: bytes, filename: str, **_: Any) -> Any:
    """Never returns, like a parser stuck in a crafted object loop."""
    while True:
        time.sleep(0.05)


def crash(data: bytes, filename: str, **_: Any) -> Any:
    """Dies the way a C extension does on a bad pointer."""
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(5)


def pid(data: bytes, filename: str, **_: Any) -> Any:
    """Parses nothing; reports the process it ran in (in the title)."""
    from support.ingest import Block, FileType, ParsedDocument

    return ParsedDocument(
        title=str(os.getpid()),
        file_type=FileType.PDF,
        filename=filename,
        blocks=(Block("Parsed in a child process."),),
    )
