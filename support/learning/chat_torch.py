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
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """transformers draws a progress bar per dequantized tensor on stderr: not in worker logs."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


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
    model.eval()
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
    model.eval()
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
