"""Default backend: ctransformers 0.2.27 (its bundled 2023 llama.cpp), driven token by token.

Prefix reuse: ctransformers' C API takes ``n_past`` explicitly on every
``ctransformers_llm_batch_eval`` call and its llama.cpp writes the keys/values of the new
tokens at positions n_past.. while attention only reads positions < n_past + n_tokens.
Rewinding is therefore just passing a smaller n_past; stale cache entries beyond it are
never read and get overwritten. We call the C function directly instead of ``LLM.eval()``,
which derives n_past from a Python-side list, so the Python wrapper holds no state we use.
"""

from __future__ import annotations

import ctypes
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .base import DecodingChatModel, context_length_for
from .errors import ModelFileError
from .gguf_compat import ensure_compatible_gguf
from .gguf_file import read_gguf
from .tokenizer import GgufTokenizer

# Architectures the bundled llama.cpp builds a graph for and that we verified. For an
# unknown one it returns a null model that ctransformers dereferences, killing the process,
# so refuse before loading.
SUPPORTED_ARCHITECTURES = frozenset({"llama"})


def _cpu_library() -> str | None:
    """Pick ctransformers' prebuilt library variant ourselves.

    ctransformers asks py-cpuinfo, which takes 2-3 s per process; on Linux the flags are one
    file read away. None lets ctransformers decide elsewhere.
    """
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return None
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next(
                (line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), []
            )
    except OSError:
        return None
    if "avx2" in flags:
        return "avx2"
    if "avx" in flags and "f16c" in flags:
        return "avx"
    return "basic"


class _CTransformersEvaluator:
    def __init__(self, compat_path: Path, source: Path, context_length: int) -> None:
        from ctransformers import LLM
        from ctransformers.llm import Config

        config = Config(context_length=context_length, batch_size=512, threads=-1)
        try:
            self._llm: Any = LLM(str(compat_path), "gguf", config=config, lib=_cpu_library())
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelFileError(source, f"ctransformers could not load it: {exc}") from exc
        llm = self._llm
        self._n_ctx = int(llm.context_length)
        self._n_vocab = int(llm.vocab_size)
        self._batch_eval = llm.ctransformers_llm_batch_eval
        self._logits_data = llm.ctransformers_llm_logits_data
        self._logits_size = llm.ctransformers_llm_logits_size

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    def eval(self, tokens: Sequence[int], n_past: int, threads: int) -> None:
        n = len(tokens)
        if n_past + n > self._n_ctx:
            # The C side would silently clamp n_past and corrupt the cache.
            raise ValueError(f"{n_past} + {n} tokens exceed the context window {self._n_ctx}")
        array = (ctypes.c_int * n)(*tokens)
        if not self._batch_eval(array, n, n_past, n, threads):
            raise RuntimeError("ctransformers_llm_batch_eval failed")

    def logits(self) -> npt.NDArray[np.float32]:
        # Re-read the pointer every time: it points into a std::vector that may reallocate.
        size = int(self._logits_size())
        view: npt.NDArray[np.float32] = np.ctypeslib.as_array(self._logits_data(), shape=(size,))
        return view[size - self._n_vocab :]


class CTransformersChatModel(DecodingChatModel):
    """SmolLM2-class GGUF chat model on ctransformers, fed our own token ids."""

    def __init__(
        self,
        model_path: Path | str,
        cache_dir: Path | str,
        threads: int | None = None,
        context_length: int | None = None,
    ) -> None:
        source = Path(model_path)
        gguf = read_gguf(source)
        if gguf.architecture not in SUPPORTED_ARCHITECTURES:
            raise ModelFileError(
                source,
                f"architecture {gguf.architecture!r} is not supported by the ctransformers "
                "backend; use LlamaCppChatModel",
            )
        tokenizer = GgufTokenizer(gguf)
        compat = ensure_compatible_gguf(source, Path(cache_dir))
        evaluator = _CTransformersEvaluator(
            compat, source, context_length_for(gguf, context_length)
        )
        if evaluator.n_vocab != tokenizer.vocab_size:
            raise ModelFileError(
                source,
                f"backend vocabulary ({evaluator.n_vocab}) differs from the file's "
                f"({tokenizer.vocab_size})",
            )
        self.model_path = source
        self.compat_path = compat
        super().__init__(tokenizer=tokenizer, evaluator=evaluator, threads=threads)
