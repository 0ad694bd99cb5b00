"""Local small-language-model inference: GGUF files, tokenization, chat templates, decoding.

Plain typed Python with no Django imports. Backends load lazily: importing this package
loads neither ctransformers nor llama-cpp-python.
"""

from .base import (
    ChatModel,
    DecodingChatModel,
    FinishReason,
    GenerationParams,
    GenerationStats,
    TextStream,
)
from .bias import DEFAULT_GROUNDING_BONUS, grounding_logit_bias
from .chat_template import CHATML_TEMPLATE, ChatTemplate
from .ctransformers_backend import CTransformersChatModel
from .errors import (
    BackendUnavailableError,
    ChatTemplateError,
    GenerationError,
    LlmError,
    ModelFileError,
    PromptTooLongError,
)
from .gguf_compat import ensure_compatible_gguf
from .llamacpp_backend import LlamaCppChatModel
from .model_files import default_model_path
from .tokenizer import GgufTokenizer, StreamingDetokenizer

__all__ = [
    "CHATML_TEMPLATE",
    "DEFAULT_GROUNDING_BONUS",
    "BackendUnavailableError",
    "CTransformersChatModel",
    "ChatModel",
    "ChatTemplate",
    "ChatTemplateError",
    "DecodingChatModel",
    "FinishReason",
    "GenerationError",
    "GenerationParams",
    "GenerationStats",
    "GgufTokenizer",
    "LlamaCppChatModel",
    "LlmError",
    "ModelFileError",
    "PromptTooLongError",
    "StreamingDetokenizer",
    "TextStream",
    "default_model_path",
    "ensure_compatible_gguf",
    "grounding_logit_bias",
]
