"""Optional backend: llama-cpp-python (current llama.cpp; ``pip install .[llamacpp]``).

It reads current GGUF files directly and supports more architectures than ctransformers.
We use only its evaluation: token ids in, last-position logits out, so decoding is the
same code as on ctransformers. Prefix reuse: ``Llama.eval`` removes the KV cache from
``n_tokens`` onwards before decoding, so setting ``n_tokens`` to the reused prefix length
rewinds it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .base import PROMPT_CHUNK_TOKENS, DecodingChatModel, context_length_for, default_threads
from .errors import BackendUnavailableError, ModelFileError
from .gguf_file import read_gguf
from .tokenizer import GgufTokenizer


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendUnavailableError(
            "llama-cpp-python is not installed; install the 'llamacpp' extra "
            "(pip install 'smallbot-support[llamacpp]') or use CTransformersChatModel"
        ) from exc
    return llama_cpp


class _LlamaCppEvaluator:
    def __init__(self, source: Path, context_length: int, threads: int) -> None:
        llama_cpp = _import_llama_cpp()
        try:
            self._llm: Any = llama_cpp.Llama(
                model_path=str(source),
                n_ctx=context_length,
                n_batch=PROMPT_CHUNK_TOKENS,
                n_threads=threads,
                n_threads_batch=threads,
                logits_all=False,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelFileError(source, f"llama.cpp could not load it: {exc}") from exc
        self._llama_cpp = llama_cpp
        self.llama = self._llm
        self._threads = threads
        self._n_ctx = int(self._llm.n_ctx())
        self._n_vocab = int(self._llm.n_vocab())

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    def eval(self, tokens: Sequence[int], n_past: int, threads: int) -> None:
        if threads != self._threads:
            self._llama_cpp.llama_set_n_threads(self._llm.ctx, threads, threads)
            self._threads = threads
        self._llm.n_tokens = n_past  # Llama.eval drops the KV cache from here on
        self._llm.eval(list(tokens))

    def logits(self) -> npt.NDArray[np.float32]:
        pointer = self._llm._ctx.get_logits_ith(-1)
        if not pointer:
            raise RuntimeError("llama.cpp returned no logits")
        data = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float))
        view: npt.NDArray[np.float32] = np.ctypeslib.as_array(data, shape=(self._n_vocab,))
        return view


class LlamaCppChatModel(DecodingChatModel):
    """GGUF chat model on llama-cpp-python, with the same tokenizer and decoding loop."""

    def __init__(
        self,
        model_path: Path | str,
        threads: int | None = None,
        context_length: int | None = None,
    ) -> None:
        _import_llama_cpp()  # fail fast, before reading the model
        source = Path(model_path)
        gguf = read_gguf(source)
        tokenizer = GgufTokenizer(gguf)
        n_threads = threads or default_threads()
        evaluator = _LlamaCppEvaluator(source, context_length_for(gguf, context_length), n_threads)
        if evaluator.n_vocab != tokenizer.vocab_size:
            raise ModelFileError(
                source,
                f"backend vocabulary ({evaluator.n_vocab}) differs from the file's "
                f"({tokenizer.vocab_size})",
            )
        self.model_path = source
        #: The underlying ``llama_cpp.Llama`` (diagnostics only; never call it mid-stream).
        self.llama: Any = evaluator.llama
        super().__init__(tokenizer=tokenizer, evaluator=evaluator, threads=n_threads)
