"""Make current GGUF files loadable by the 2023 llama.cpp bundled in ctransformers 0.2.27.

That loader differs from current GGUF in four ways, each fixed in a cached copy:

* it accepts header versions 1-2 only; v3 only added big-endian support, so the bytes of a
  little-endian v3 file are a valid v2 file once the version field says 2;
* it requires an ``output.weight`` tensor, while models with tied embeddings (SmolLM2)
  reuse ``token_embd.weight``: the copy gets an explicit duplicate;
* it requires ``tokenizer.ggml.scores``, which BPE vocabularies no longer ship: zeros
  (and NORMAL token types, should ``tokenizer.ggml.token_type`` be missing too);
* at load it tokenizes "\\n" with a BPE that does not byte-encode, looks up the raw
  newline string, and dereferences a missing entry (segfault): the byte-level token for
  0x0A ("Ċ") is renamed to a literal newline. Our own tokenizer is built from the original
  file, so the renamed string is never used for text.

Copies are named after the source's sha256, so a changed source gets a new copy. The
digest is cached by (path, size, mtime_ns, inode) to avoid rehashing 100 MB on every start.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter
from gguf.constants import GGML_QUANT_SIZES, GGUFValueType

from .errors import ModelFileError
from .gguf_file import GgufFile, GgufTensorInfo, read_gguf

logger = logging.getLogger(__name__)

# Bump when the conversion changes, so existing copies are not reused.
RECIPE_VERSION = 1
_COMPAT_SUFFIX = f".ct-compat-v{RECIPE_VERSION}.gguf"
_DIGESTS_FILE = "digests.json"
_LOCK_FILE = ".lock"
_TARGET_VERSION = 2
_BYTE_LEVEL_NEWLINE = "\u010a"  # "Ċ": GPT-2's printable stand-in for byte 0x0A
_HASH_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _SourceId:
    path: str
    size: int
    mtime_ns: int
    inode: int


def ensure_compatible_gguf(source: Path, cache_dir: Path) -> Path:
    """Return a ctransformers-loadable copy of ``source`` in ``cache_dir``, creating it once.

    Safe across threads and processes (flock); the copy appears atomically (os.replace).
    Raises ModelFileError if the source is missing, unreadable or not a usable GGUF model.
    """
    source_id = _source_id(source)
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Fast path without the lock: the digest file and the copies only ever appear whole.
    digest = _known_digest(cache_dir, source_id)
    if digest is not None and (cache_dir / (digest + _COMPAT_SUFFIX)).is_file():
        return cache_dir / (digest + _COMPAT_SUFFIX)

    with _locked(cache_dir / _LOCK_FILE):
        _remove_partial_files(cache_dir)
        source_id = _source_id(source)
        digest = _known_digest(cache_dir, source_id)
        if digest is None:
            digest = _sha256(source, source_id)
        target = cache_dir / (digest + _COMPAT_SUFFIX)
        if not target.is_file():
            logger.info("writing ctransformers-compatible copy of %s to %s", source, target)
            _write_compatible_copy(source, target)
        _record_digest(cache_dir, source_id, digest)
        return target


def compat_copy_forget(source: Path, cache_dir: Path) -> bool:
    """Forget `source` (a model file about to be deleted) and delete its copy unless another
    source has the same digest; True when a copy was deleted. Processes still mapping the copy
    keep their inode."""
    if not cache_dir.is_dir():
        return False
    key = str(source.resolve())
    with _locked(cache_dir / _LOCK_FILE):
        digests = _read_digests(cache_dir)
        entry = digests.pop(key, None)
        if not isinstance(entry, dict):
            return False
        _atomic_write_text(cache_dir / _DIGESTS_FILE, json.dumps(digests, indent=1, sort_keys=True))
        stale = entry.get("sha256")
        in_use = {e.get("sha256") for e in digests.values() if isinstance(e, dict)}
        if not isinstance(stale, str) or stale in in_use:
            return False
        copy = cache_dir / (stale + _COMPAT_SUFFIX)
        existed = copy.is_file()
        copy.unlink(missing_ok=True)
        return existed


def _source_id(source: Path) -> _SourceId:
    try:
        resolved = source.resolve(strict=True)
        st = resolved.stat()
    except FileNotFoundError:
        raise ModelFileError(source, "the file does not exist") from None
    except OSError as exc:
        raise ModelFileError(source, f"cannot be read: {exc.strerror or exc}") from None
    if not resolved.is_file():
        raise ModelFileError(source, "is not a regular file")
    return _SourceId(str(resolved), st.st_size, st.st_mtime_ns, st.st_ino)


def file_sha256(path: Path) -> str:
    """The hex sha256 of a model file, read in chunks; ModelFileError if it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise ModelFileError(path, f"cannot be read: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _sha256(source: Path, source_id: _SourceId) -> str:
    digest = file_sha256(Path(source_id.path))
    # A file replaced while we hashed it would get a digest matching neither version.
    if _source_id(source) != source_id:
        raise ModelFileError(source, "the file changed while it was being read; retry")
    return digest


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # flock locks belong to the open file description, so this also serialises threads of
    # one process (each opens its own descriptor), not only separate processes.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _read_digests(cache_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((cache_dir / _DIGESTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _known_digest(cache_dir: Path, source_id: _SourceId) -> str | None:
    entry = _read_digests(cache_dir).get(source_id.path)
    if not isinstance(entry, dict):
        return None
    if (entry.get("size"), entry.get("mtime_ns"), entry.get("inode")) != (
        source_id.size,
        source_id.mtime_ns,
        source_id.inode,
    ):
        return None
    digest = entry.get("sha256")
    return digest if isinstance(digest, str) else None


def _record_digest(cache_dir: Path, source_id: _SourceId, digest: str) -> None:
    """Remember the digest and delete copies no longer referenced by any source (lock held)."""
    digests = _read_digests(cache_dir)
    old = digests.get(source_id.path)
    new = {
        "size": source_id.size,
        "mtime_ns": source_id.mtime_ns,
        "inode": source_id.inode,
        "sha256": digest,
    }
    if old == new:
        return
    digests[source_id.path] = new
    _atomic_write_text(cache_dir / _DIGESTS_FILE, json.dumps(digests, indent=1, sort_keys=True))
    if isinstance(old, dict) and old.get("sha256") != digest:
        in_use = {e.get("sha256") for e in digests.values() if isinstance(e, dict)}
        stale = old.get("sha256")
        if isinstance(stale, str) and stale not in in_use:
            # Processes that still map the old copy keep their inode; unlinking is safe.
            (cache_dir / (stale + _COMPAT_SUFFIX)).unlink(missing_ok=True)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _remove_partial_files(cache_dir: Path) -> None:
    # Only called with the lock held, so any leftover belongs to a writer that died.
    for leftover in cache_dir.glob("*.partial"):
        leftover.unlink(missing_ok=True)


def _write_compatible_copy(source: Path, target: Path) -> None:
    info = read_gguf(source)
    _check_usable(info)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        _write_copy(info, tmp)
        with open(tmp, "r+b") as fh:
            fh.seek(4)  # magic (4 bytes), then the uint32 version
            fh.write(_TARGET_VERSION.to_bytes(4, "little"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_usable(info: GgufFile) -> None:
    missing = [
        what
        for what, present in (
            ("general.architecture", bool(info.architecture)),
            ("tokenizer.ggml.tokens", info.get_list("tokenizer.ggml.tokens") is not None),
            ("token_embd.weight tensor", info.tensor("token_embd.weight") is not None),
        )
        if not present
    ]
    if missing:
        raise ModelFileError(
            info.path, "not a usable language model (missing " + ", ".join(missing) + ")"
        )


def _patched_tokens(info: GgufFile) -> list[str]:
    tokens = list(info.get_list("tokenizer.ggml.tokens") or [])
    if info.get_str("tokenizer.ggml.model") == "gpt2" and "\n" not in tokens:
        try:
            tokens[tokens.index(_BYTE_LEVEL_NEWLINE)] = "\n"
        except ValueError:
            raise ModelFileError(
                info.path, "byte-level BPE vocabulary has no token for the newline byte"
            ) from None
    return tokens


def _byte_shape(tensor: GgufTensorInfo) -> tuple[int, ...]:
    # GGUFWriter wants numpy order (outermost first) with the row expressed in bytes.
    block, type_size = GGML_QUANT_SIZES[tensor.ggml_type]
    return (*reversed(tensor.shape[1:]), tensor.shape[0] // block * type_size)


def _write_copy(info: GgufFile, out: Path) -> None:
    writer = GGUFWriter(out, info.architecture)  # writes general.architecture itself
    writer.data_alignment = info.alignment
    metadata_copy(writer, info, replace={"tokenizer.ggml.tokens": _patched_tokens(info)})
    n_vocab = len(info.get_list("tokenizer.ggml.tokens") or [])
    if "tokenizer.ggml.scores" not in info.metadata:
        writer.add_key_value(
            "tokenizer.ggml.scores",
            [0.0] * n_vocab,
            GGUFValueType.ARRAY,
            sub_type=GGUFValueType.FLOAT32,
        )
    if "tokenizer.ggml.token_type" not in info.metadata:
        writer.add_key_value(
            "tokenizer.ggml.token_type",
            [1] * n_vocab,  # NORMAL
            GGUFValueType.ARRAY,
            sub_type=GGUFValueType.INT32,
        )

    tensors = list(info.tensors)
    if info.tensor("output.weight") is None:
        embeddings = info.tensor("token_embd.weight")
        assert embeddings is not None  # checked by _check_usable
        tensors.append(
            GgufTensorInfo(
                "output.weight",
                embeddings.shape,
                embeddings.ggml_type,
                embeddings.offset,
                embeddings.nbytes,
            )
        )
    u8 = np.dtype(np.uint8)
    for tensor in tensors:
        writer.add_tensor_info(
            tensor.name, _byte_shape(tensor), u8, tensor.nbytes, tensor.ggml_type
        )

    data = np.memmap(info.path, dtype=np.uint8, mode="r")
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for tensor in tensors:
            start = info.data_offset + tensor.offset
            writer.write_tensor_data(data[start : start + tensor.nbytes])
        writer.flush()
    finally:
        writer.close()
        del data


def metadata_copy(
    writer: GGUFWriter,
    info: GgufFile,
    *,
    replace: Mapping[str, Any] | None = None,
    skip: Callable[[str], bool] | None = None,
) -> None:
    """Copy every metadata key of ``info`` to ``writer`` with its exact GGUF value type.

    ``replace`` gives new values (same type) for some keys; keys for which ``skip`` is true
    are left out. general.architecture is not copied: GGUFWriter writes it itself.
    """
    replace = replace or {}
    for key, value in info.metadata.items():
        if key == "general.architecture" or (skip is not None and skip(key)):
            continue
        vtype, sub = info.value_types[key]
        writer.add_key_value(key, replace.get(key, value), vtype, sub_type=sub)
