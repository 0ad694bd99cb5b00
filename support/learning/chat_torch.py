"""The chat model as a torch model, read from its GGUF file (issue 15; docs/learning.md).

transformers reads GGUF files and dequantizes every tensor to float32, so the model trained
and verified here is the very file the served backends load, not a hub checkpoint that may
differ from it. Nothing is downloaded: the file and its tokenizer are local.

Greedy continuation here and in the served backends (support.llm.base) agree token for token
on the shipped Q4_1 file for short answers; they drift apart only where two candidates are
within the backends' quantized-activation error (tests/learning/test_chat_torch.py measures it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..llm.base import DecodingChatModel, context_length_for
from ..llm.gguf_file import read_gguf
from ..llm.tokenizer import GgufTokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """transformers draws a progress bar per dequantized tensor on stderr: not in worker logs."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def load_torch_chat_model(
    gguf_path: Path, *, threads: int | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The GGUF file's model (float32, eval mode) and tokenizer via transformers, local only.

    `threads` sets torch's intra-op threads for the process (torch has no per-model setting).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if threads is not None:
        torch.set_num_threads(max(1, threads))
    path = Path(gguf_path)
    with _quiet_progress():
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent), gguf_file=path.name, dtype=torch.float32, local_files_only=True
        )
        tokenizer = AutoTokenizer.from_pretrained(
            str(path.parent), gguf_file=path.name, local_files_only=True
        )
    model.eval()  # type: ignore[no-untyped-call]
    return model, tokenizer


def greedy_tokens(
    model: PreTrainedModel,
    prompt_ids: Sequence[int],
    *,
    max_new_tokens: int,
    eos_ids: Collection[int],
) -> list[int]:
    """Plain greedy continuation (no sampling, bias or penalty), ending after an eos id.

    The eos id, when reached, is the last element, as in the backends' generated_ids.
    """
    import torch

    if not prompt_ids:
        raise ValueError("prompt_ids must not be empty")
    out: list[int] = []
    stop = {int(i) for i in eos_ids}
    was_training = model.training
    model.eval()  # type: ignore[no-untyped-call]
    try:
        with torch.inference_mode():
            inputs = torch.tensor([list(prompt_ids)], dtype=torch.long)
            cache = None
            while len(out) < max_new_tokens:
                # logits_to_keep=1: the vocabulary projection only for the last position.
                result = model(input_ids=inputs, cache=cache, use_cache=True, logits_to_keep=1)
                cache = result.cache
                token = int(torch.argmax(result.logits[0, -1]))
                out.append(token)
                if token in stop:
                    break
                inputs = torch.tensor([[token]], dtype=torch.long)
    finally:
        if was_training:
            model.train()
    return out


class _TorchEvaluator:
    """support.llm.base's TokenEvaluator over a torch model: positional evaluation with a
    key/value cache that is cut back to n_past, as the ctransformers backend rewinds."""

    def __init__(self, model: PreTrainedModel, n_ctx: int) -> None:
        self._model = model
        self._n_ctx = n_ctx
        self._n_vocab = int(model.config.vocab_size)
        self._cache: Any = None
        self._logits: Any = None

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    def eval(self, tokens: Sequence[int], n_past: int, threads: int) -> None:
        import torch

        cached = 0 if self._cache is None else int(self._cache.get_seq_length())
        if n_past > cached:
            raise ValueError(f"n_past {n_past} is beyond the {cached} cached positions")
        if n_past == 0:
            self._cache = None
        elif cached > n_past:
            self._cache.crop(n_past - cached)  # transformers 5 takes how many to remove
        with torch.inference_mode():
            result = self._model(
                input_ids=torch.tensor([list(tokens)], dtype=torch.long),
                cache=self._cache,
                use_cache=True,
                logits_to_keep=1,
            )
        self._cache = result.cache
        self._logits = result.logits[0, -1].float().numpy()

    def logits(self) -> npt.NDArray[np.float32]:
        return self._logits  # type: ignore[no-any-return]


class TorchChatModel(DecodingChatModel):
    """A torch model as a ChatModel: the answer pipeline (fact bias, penalties, stop rules)
    runs on it unchanged, with the GGUF file's own tokenizer and template. Slower than the
    GGUF backends; for evaluating a trained model before it is exported (benchmarks)."""

    def __init__(
        self,
        model: PreTrainedModel,
        gguf_path: Path,
        *,
        context_length: int | None = None,
        threads: int | None = None,
    ) -> None:
        gguf = read_gguf(Path(gguf_path))
        tokenizer = GgufTokenizer(gguf)
        model.eval()  # type: ignore[no-untyped-call]
        evaluator = _TorchEvaluator(model, context_length_for(gguf, context_length))
        super().__init__(tokenizer=tokenizer, evaluator=evaluator, threads=threads or 1)
