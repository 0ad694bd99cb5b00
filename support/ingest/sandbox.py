"""Parse PDF and Word uploads in a child process with memory and time limits.

pypdf and python-docx/lxml run on untrusted bytes. A crafted file can make them allocate
gigabytes, loop for minutes or crash in C code; in the worker process that would take down
every task it runs. So those formats are parsed by a fresh interpreter (`python -I`, nothing
inherited but the environment) that caps its own address space (RLIMIT_AS) and CPU time once
its imports are done, and that the parent kills at the wall-clock deadline. Any way the child
fails becomes an `IngestError` with a message for the admin; the worker carries on.

Text formats (Markdown, text, HTML, CSV) are parsed in-process: their parsers are pure Python
(or lxml's HTML parser on already-decoded text) and bounded by tests/ingest/test_hostile_input.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .detect import DEFAULT_MAX_BYTES, sniff
from .document import Block, BlockKind, FileType, ParsedDocument
from .errors import IngestError, IngestErrorCode
from .formats.word import DEFAULT_ZIP_LIMITS, ZipLimits
from .parsers import parse

ISOLATED_TYPES = frozenset({FileType.PDF, FileType.DOCX})
# "module:function" the child calls with (data, filename, max_bytes=, zip_limits=). Tests point
# it at misbehaving stand-ins; nothing outside this module and the tests changes it.
PARSE_TARGET = "support.ingest.parsers:parse"
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# Freed when the child runs out of memory, so it can still report why.
_BALLAST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """What one isolated parse may use: wall-clock seconds and memory beyond its imports."""

    timeout_s: float = 120.0
    memory_bytes: int = 1024 * 1024 * 1024


DEFAULT_PARSE_LIMITS = ParseLimits()


def parse_isolated(
    data: bytes,
    filename: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    limits: ParseLimits = DEFAULT_PARSE_LIMITS,
    zip_limits: ZipLimits = DEFAULT_ZIP_LIMITS,
) -> ParsedDocument:
    """`parse`, with PDF and DOCX parsed in a limited child process; raises `IngestError`."""
    sniffed = sniff(data, filename, max_bytes=max_bytes)  # cheap refusals stay in-process
    if sniffed.file_type not in ISOLATED_TYPES:
        return parse(data, filename, max_bytes=max_bytes, zip_limits=zip_limits)
    return _run_child(data, sniffed.filename, max_bytes, limits, zip_limits)


def _run_child(
    data: bytes, name: str, max_bytes: int, limits: ParseLimits, zip_limits: ZipLimits
) -> ParsedDocument:
    spec = {
        "target": PARSE_TARGET,
        "filename": name,
        "max_bytes": max_bytes,
        "memory_bytes": limits.memory_bytes,
        "cpu_s": math.ceil(limits.timeout_s) + 5,  # a backstop if the parent is gone
        "zip_limits": asdict(zip_limits),
    }
    code = (
        f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
        "from support.ingest.sandbox import child_main; child_main()"
    )
    proc = subprocess.Popen(  # noqa: S603 (fixed argv: this interpreter and a constant script)
        [sys.executable, "-I", "-c", code, json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        out, err = proc.communicate(data, timeout=limits.timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise IngestError(
            IngestErrorCode.PARSE_TIMEOUT,
            f"{name}: parsing took too long (over {limits.timeout_s:g} s) and was stopped. "
            "The file may be damaged or unusually complex; export it again (or split it) and "
            "re-upload.",
        ) from None
    return _result(name, proc.returncode, out, err, limits)


def _result(
    name: str, returncode: int, out: bytes, err: bytes, limits: ParseLimits
) -> ParsedDocument:
    reply: dict[str, Any] | None = None
    try:
        reply = json.loads(out) if out else None
    except ValueError:
        reply = None
    if isinstance(reply, dict) and "document" in reply:
        return _document_from_json(reply["document"])
    if isinstance(reply, dict) and "error" in reply:
        code, message = reply["error"]
        if code == IngestErrorCode.PARSE_MEMORY:
            raise _too_much_memory(name, limits)
        raise IngestError(IngestErrorCode(code), str(message))
    stderr = err.decode(errors="replace")
    if "MemoryError" in stderr or "bad_alloc" in stderr or "Cannot allocate memory" in stderr:
        raise _too_much_memory(name, limits)
    how = f"signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
    raise IngestError(
        IngestErrorCode.PARSE_CRASHED,
        f"{name}: the parser stopped unexpectedly ({how}). The file may be damaged; export it "
        "again and re-upload.",
    )


def _too_much_memory(name: str, limits: ParseLimits) -> IngestError:
    return IngestError(
        IngestErrorCode.PARSE_MEMORY,
        f"{name}: parsing needed too much memory (over "
        f"{limits.memory_bytes // (1024 * 1024)} MB) and was stopped. The file may be damaged "
        "or unusually complex; export it again (or split it) and re-upload.",
    )


def _document_to_json(doc: ParsedDocument) -> dict[str, Any]:
    return {
        "title": doc.title,
        "file_type": str(doc.file_type),
        "filename": doc.filename,
        "warnings": list(doc.warnings),
        "blocks": [
            [b.text, str(b.kind), list(b.heading_path), b.page, b.anchor] for b in doc.blocks
        ],
    }


def _document_from_json(raw: dict[str, Any]) -> ParsedDocument:
    return ParsedDocument(
        title=str(raw["title"]),
        file_type=FileType(raw["file_type"]),
        filename=str(raw["filename"]),
        warnings=tuple(str(w) for w in raw["warnings"]),
        blocks=tuple(
            Block(
                text=str(text),
                kind=BlockKind(kind),
                heading_path=tuple(str(h) for h in path),
                page=page if isinstance(page, int) else None,
                anchor=str(anchor) if anchor is not None else None,
            )
            for text, kind, path, page, anchor in raw["blocks"]
        ),
    )


def _address_space_bytes() -> int:
    """This process's current virtual memory size (Linux), 0 if unknown."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    import resource

    return pages * resource.getpagesize()


def child_main() -> None:
    """The child's entry point: read the file from stdin, parse, print JSON on stdout."""
    import importlib

    spec = json.loads(sys.argv[1])
    module_name, _, function_name = str(spec["target"]).partition(":")
    target = getattr(importlib.import_module(module_name), function_name)
    data = sys.stdin.buffer.read()
    zip_limits = ZipLimits(**spec["zip_limits"])
    try:
        import resource
    except ImportError:  # not POSIX: only the parent's deadline applies
        resource = None  # type: ignore[assignment]
    if resource is not None:
        # Counted from here: the interpreter and the parsers' imports are not the file's fault.
        limit = _address_space_bytes() + int(spec["memory_bytes"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (int(spec["cpu_s"]), int(spec["cpu_s"])))
    ballast = bytearray(_BALLAST_BYTES)
    try:
        doc = target(
            data, spec["filename"], max_bytes=int(spec["max_bytes"]), zip_limits=zip_limits
        )
        reply: dict[str, Any] = {"document": _document_to_json(doc)}
    except MemoryError:
        del ballast
        reply = {"error": [str(IngestErrorCode.PARSE_MEMORY), "out of memory"]}
    except IngestError as exc:
        reply = {"error": [str(exc.code), exc.message]}
    except Exception as exc:  # the parsers wrap their own errors; anything else is a bug
        reply = {
            "error": [
                str(IngestErrorCode.CORRUPT),
                f"{spec['filename']} could not be read ({type(exc).__name__}: {exc}).",
            ]
        }
    sys.stdout.write(json.dumps(reply))
    sys.stdout.flush()
