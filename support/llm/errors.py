"""Errors raised by the local language-model layer.

They do not derive from ``support.exceptions.SupportError`` on purpose: this package has no
Django or domain imports, and the generation service maps them to domain errors.
"""

from __future__ import annotations

from pathlib import Path


class LlmError(Exception):
    """Base class for every error raised by ``support.llm``."""


class ModelFileError(LlmError):
    """The model file is missing, unreadable, corrupt or not loadable by the backend."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"model file {self.path}: {problem}")


class BackendUnavailableError(LlmError):
    """An optional inference backend (e.g. llama-cpp-python) is not installed."""


class PromptTooLongError(LlmError):
    """The prompt does not leave room for a single generated token in the context window."""

    def __init__(self, prompt_tokens: int, context_length: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length
        super().__init__(
            f"prompt has {prompt_tokens} tokens but the context window is {context_length}"
        )


class GenerationError(LlmError):
    """The backend failed while evaluating tokens (its state is reset afterwards)."""


class ChatTemplateError(LlmError):
    """The model's chat template rejected the messages (e.g. roles out of order)."""
