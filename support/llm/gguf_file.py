"""A fast, validating reader for GGUF headers (metadata and tensor index, not tensor data).

``gguf.GGUFReader`` builds a numpy view for every one of the ~100k vocabulary strings and
takes about 8 s on SmolLM2; this reader parses the same header in well under a second,
which matters because every worker start and every test reads it.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGUF_MAGIC, GGMLQuantizationType, GGUFValueType

from .errors import ModelFileError

GgufValue = Any  # int | float | bool | str | list[...] : GGUF values are dynamically typed.

_DEFAULT_ALIGNMENT = 32
# Far above any real model; only there so a corrupt count fails fast instead of looping.
_MAX_ITEMS = 50_000_000

_SCALAR_FORMATS: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<B",
    GGUFValueType.INT8: "<b",
    GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h",
    GGUFValueType.UINT32: "<I",
    GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f",
    GGUFValueType.BOOL: "<?",
    GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q",
    GGUFValueType.FLOAT64: "<d",
}
_NUMPY_DTYPES: dict[GGUFValueType, str] = {
    GGUFValueType.UINT8: "<u1",
    GGUFValueType.INT8: "<i1",
    GGUFValueType.UINT16: "<u2",
    GGUFValueType.INT16: "<i2",
    GGUFValueType.UINT32: "<u4",
    GGUFValueType.INT32: "<i4",
    GGUFValueType.FLOAT32: "<f4",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "<u8",
    GGUFValueType.INT64: "<i8",
    GGUFValueType.FLOAT64: "<f8",
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class GgufTensorInfo:
    name: str
    shape: tuple[int, ...]  # ggml order: shape[0] is the contiguous (row) dimension
    ggml_type: GGMLQuantizationType
    offset: int  # relative to GgufFile.data_offset
    nbytes: int


@dataclass(frozen=True, slots=True)
class GgufFile:
    path: Path
    version: int
    metadata: Mapping[str, GgufValue]
    # (value type, array element type or None) per key, so a copy keeps the exact types.
    value_types: Mapping[str, tuple[GGUFValueType, GGUFValueType | None]]
    tensors: tuple[GgufTensorInfo, ...]
    alignment: int
    data_offset: int
    file_size: int

    @property
    def architecture(self) -> str:
        return self.get_str("general.architecture") or ""

    def get_str(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def get_int(self, key: str) -> int | None:
        value = self.metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value

    def get_bool(self, key: str) -> bool | None:
        value = self.metadata.get(key)
        return value if isinstance(value, bool) else None

    def get_list(self, key: str) -> list[Any] | None:
        value = self.metadata.get(key)
        return value if isinstance(value, list) else None

    def tensor(self, name: str) -> GgufTensorInfo | None:
        return next((t for t in self.tensors if t.name == name), None)


class _Cursor:
    """Bounds-checked little-endian reads over the mapped file."""

    __slots__ = ("buf", "pos", "size")

    def __init__(self, buf: mmap.mmap, size: int) -> None:
        self.buf = buf
        self.pos = 0
        self.size = size

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise _Truncated(self.pos)

    def u32(self) -> int:
        self._need(4)
        (value,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(value)

    def u64(self) -> int:
        self._need(8)
        (value,) = _U64.unpack_from(self.buf, self.pos)
        self.pos += 8
        return int(value)

    def string(self) -> str:
        n = self.u64()
        self._need(n)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8")

    def scalar(self, vtype: GGUFValueType) -> GgufValue:
        fmt = _SCALAR_FORMATS[vtype]
        size = struct.calcsize(fmt)
        self._need(size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def value(self, vtype: GGUFValueType) -> tuple[GgufValue, GGUFValueType | None]:
        if vtype == GGUFValueType.STRING:
            return self.string(), None
        if vtype != GGUFValueType.ARRAY:
            return self.scalar(vtype), None
        sub = _value_type(self.u32())
        count = self.u64()
        if count > _MAX_ITEMS:
            raise ValueError(f"array of {count} items")
        if sub == GGUFValueType.STRING:
            return [self.string() for _ in range(count)], sub
        if sub == GGUFValueType.ARRAY:
            return [self.value(GGUFValueType.ARRAY)[0] for _ in range(count)], sub
        dtype = np.dtype(_NUMPY_DTYPES[sub])
        self._need(count * dtype.itemsize)
        values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).tolist()
        self.pos += count * dtype.itemsize
        return values, sub


class _Truncated(Exception):
    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


def _value_type(raw: int) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise ValueError(f"unknown metadata value type {raw}") from None


def read_gguf(path: Path) -> GgufFile:
    """Parse and validate a GGUF file's header; raise ModelFileError saying what is wrong."""
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size == 0:
                raise ModelFileError(path, "the file is empty")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(path, buf, size)
    except FileNotFoundError:
        raise ModelFileError(path, "the file does not exist") from None
    except IsADirectoryError:
        raise ModelFileError(path, "is a directory, not a model file") from None
    except PermissionError:
        raise ModelFileError(path, "the file is not readable (permission denied)") from None
    except OSError as exc:
        raise ModelFileError(path, f"cannot be read: {exc.strerror or exc}") from exc


def _parse(path: Path, buf: mmap.mmap, size: int) -> GgufFile:
    cur = _Cursor(buf, size)
    try:
        if size < 24 or cur.u32() != GGUF_MAGIC:
            raise ModelFileError(path, "not a GGUF file (bad magic bytes)")
        version = cur.u32()
        if version > 0xFFFF:
            raise ModelFileError(path, "big-endian GGUF files are not supported")
        if version < 2:
            raise ModelFileError(path, f"GGUF version {version} is too old (need 2 or later)")
        n_tensors = cur.u64()
        n_kv = cur.u64()
        if n_tensors > _MAX_ITEMS or n_kv > _MAX_ITEMS:
            raise ModelFileError(path, "corrupt header (implausible tensor or key count)")
        metadata: dict[str, GgufValue] = {}
        types: dict[str, tuple[GGUFValueType, GGUFValueType | None]] = {}
        for _ in range(n_kv):
            key = cur.string()
            vtype = _value_type(cur.u32())
            value, sub = cur.value(vtype)
            metadata[key] = value
            types[key] = (vtype, sub)
        raw_tensors = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.u32()
            if not 1 <= n_dims <= 4:
                raise ModelFileError(path, f"corrupt tensor index ({name!r} has {n_dims} dims)")
            shape = tuple(cur.u64() for _ in range(n_dims))
            raw_type = cur.u32()
            offset = cur.u64()
            raw_tensors.append((name, shape, raw_type, offset))
    except _Truncated as exc:
        raise ModelFileError(
            path, f"truncated or corrupt header (ends at byte {exc.pos})"
        ) from None
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        raise ModelFileError(path, f"corrupt header: {exc}") from None

    alignment = metadata.get("general.alignment", _DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise ModelFileError(path, f"invalid general.alignment {alignment!r}")
    data_offset = -(-cur.pos // alignment) * alignment
    tensors = tuple(
        _tensor_info(path, name, shape, raw_type, offset, data_offset, size)
        for name, shape, raw_type, offset in raw_tensors
    )
    return GgufFile(
        path=path,
        version=version,
        metadata=metadata,
        value_types=types,
        tensors=tensors,
        alignment=alignment,
        data_offset=data_offset,
        file_size=size,
    )


def _tensor_info(
    path: Path,
    name: str,
    shape: tuple[int, ...],
    raw_type: int,
    offset: int,
    data_offset: int,
    file_size: int,
) -> GgufTensorInfo:
    try:
        ggml_type = GGMLQuantizationType(raw_type)
        block, type_size = GGML_QUANT_SIZES[ggml_type]
    except (ValueError, KeyError):
        raise ModelFileError(path, f"tensor {name!r} has unknown type {raw_type}") from None
    n_elements = int(np.prod(shape, dtype=np.uint64))
    if shape[0] % block:
        raise ModelFileError(path, f"tensor {name!r} row size {shape[0]} is not a block multiple")
    nbytes = n_elements // block * type_size
    end = data_offset + offset + nbytes
    if end > file_size:
        raise ModelFileError(
            path,
            f"truncated: tensor {name!r} ends at byte {end} but the file has {file_size} bytes",
        )
    return GgufTensorInfo(name, shape, ggml_type, offset, nbytes)
