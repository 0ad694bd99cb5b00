"""The ctransformers-compatible GGUF copy: produced once, reused, regenerated, validated."""

from __future__ import annotations

import multiprocessing
import multiprocessing.queues
import os
import random
import shutil
import threading
from pathlib import Path

import pytest

from support.llm import ModelFileError, ensure_compatible_gguf, gguf_compat
from support.llm.gguf_file import read_gguf

pytestmark = pytest.mark.slow


@pytest.fixture
def model_copy(model_path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "src" / "model.gguf"
    copy.parent.mkdir()
    shutil.copyfile(model_path, copy)
    return copy


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    original = gguf_compat._sha256

    def counting(source: Path, source_id: object) -> str:
        calls.append(source)
        return original(source, source_id)  # type: ignore[arg-type]

    monkeypatch.setattr(gguf_compat, "_sha256", counting)
    return calls


def test_copy_is_loadable_by_the_2023_loader(model_path: Path, compat_cache: Path) -> None:
    compat = ensure_compatible_gguf(model_path, compat_cache)
    info = read_gguf(compat)
    source = read_gguf(model_path)
    assert info.version == 2
    assert info.tensor("output.weight") is not None
    assert source.tensor("output.weight") is None  # SmolLM2 ties its embeddings
    assert info.tensor("output.weight").nbytes == info.tensor("token_embd.weight").nbytes  # type: ignore[union-attr]
    assert len(info.get_list("tokenizer.ggml.scores") or []) == len(
        source.get_list("tokenizer.ggml.tokens") or []
    )
    assert "\n" in (info.get_list("tokenizer.ggml.tokens") or [])
    assert info.get_str("tokenizer.chat_template") == source.get_str("tokenizer.chat_template")


def test_copy_is_reused_without_rehashing_or_rewriting(
    model_copy: Path, tmp_path: Path, hash_calls: list[Path]
) -> None:
    cache = tmp_path / "cache"
    first = ensure_compatible_gguf(model_copy, cache)
    before = first.stat()
    assert len(hash_calls) == 1

    second = ensure_compatible_gguf(model_copy, cache)

    assert second == first
    after = second.stat()
    assert (after.st_mtime_ns, after.st_ino) == (before.st_mtime_ns, before.st_ino)
    assert len(hash_calls) == 1  # (path, size, mtime, inode) unchanged: digest reused


def test_touched_but_identical_source_is_rehashed_not_rewritten(
    model_copy: Path, tmp_path: Path, hash_calls: list[Path]
) -> None:
    cache = tmp_path / "cache"
    first = ensure_compatible_gguf(model_copy, cache)
    mtime = first.stat().st_mtime_ns
    os.utime(model_copy, ns=(model_copy.stat().st_atime_ns, model_copy.stat().st_mtime_ns + 10**9))

    assert ensure_compatible_gguf(model_copy, cache) == first
    assert first.stat().st_mtime_ns == mtime
    assert len(hash_calls) == 2


def test_changed_source_gets_a_new_copy_and_the_stale_one_is_removed(
    model_copy: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = ensure_compatible_gguf(model_copy, cache)
    info = read_gguf(model_copy)
    norm = info.tensor("output_norm.weight")
    assert norm is not None
    # Same size, different content, replaced the way a deploy would (new inode).
    data = bytearray(model_copy.read_bytes())
    data[info.data_offset + norm.offset] ^= 0x01
    replacement = model_copy.with_suffix(".new")
    replacement.write_bytes(bytes(data))
    os.replace(replacement, model_copy)

    second = ensure_compatible_gguf(model_copy, cache)

    assert second != first
    assert second.is_file()
    assert not first.exists()
    assert sorted(p.name for p in cache.glob("*.gguf")) == [second.name]


def test_concurrent_callers_write_one_copy(
    model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    writes: list[Path] = []
    original = gguf_compat._write_compatible_copy

    def counting(source: Path, target: Path) -> None:
        writes.append(target)
        original(source, target)

    monkeypatch.setattr(gguf_compat, "_write_compatible_copy", counting)
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(ensure_compatible_gguf(model_copy, cache))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert len(set(results)) == 1
    assert len(writes) == 1
    assert read_gguf(results[0]).version == 2
    assert not list(cache.glob("*.partial"))


def _race_worker(source: Path, cache: Path, queue: multiprocessing.queues.Queue[object]) -> None:
    original = gguf_compat._write_compatible_copy

    def reporting(src: Path, target: Path) -> None:
        queue.put("wrote")
        original(src, target)

    gguf_compat._write_compatible_copy = reporting  # type: ignore[assignment]
    queue.put(ensure_compatible_gguf(source, cache))


def test_racing_processes_write_one_copy(model_copy: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ctx = multiprocessing.get_context("fork")  # children inherit the imported modules: fast
    queue = ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(model_copy, cache, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    messages = [queue.get(timeout=5) for _ in range(3)]
    assert messages.count("wrote") == 1
    paths = {m for m in messages if isinstance(m, Path)}
    assert len(paths) == 1
    assert read_gguf(paths.pop()).version == 2
    assert not list(cache.glob("*.partial"))


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ModelFileError, match="does not exist") as exc_info:
        ensure_compatible_gguf(missing, tmp_path / "cache")
    assert exc_info.value.path == missing
    assert str(missing) in str(exc_info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty"),
        (random.Random(0).randbytes(4096), "not a GGUF file"),
        (b"GGUF\x03\x00\x00\x00" + b"\xff" * 64, "corrupt header"),
    ],
    ids=["empty", "random-bytes", "garbage-after-magic"],
)
def test_corrupt_file(tmp_path: Path, content: bytes, problem: str) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(ModelFileError, match=problem) as exc_info:
        ensure_compatible_gguf(bad, tmp_path / "cache")
    assert exc_info.value.path == bad
    assert not list((tmp_path / "cache").glob("*.gguf"))


@pytest.mark.parametrize(
    ("keep", "problem"),
    [(1 << 20, "truncated or corrupt header"), (-4096, "truncated: tensor")],
    ids=["inside-header", "inside-tensor-data"],
)
def test_truncated_file(model_path: Path, tmp_path: Path, keep: int, problem: str) -> None:
    bad = tmp_path / "truncated.gguf"
    with model_path.open("rb") as src:
        data = src.read()
    bad.write_bytes(data[:keep])
    with pytest.raises(ModelFileError, match=problem):
        ensure_compatible_gguf(bad, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*.gguf"))


def test_unreadable_file(model_copy: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files regardless of permissions")
    model_copy.chmod(0)
    with pytest.raises(ModelFileError, match=r"not readable|cannot be read"):
        ensure_compatible_gguf(model_copy, tmp_path / "cache")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="not a regular file"):
        ensure_compatible_gguf(tmp_path, tmp_path / "cache")
