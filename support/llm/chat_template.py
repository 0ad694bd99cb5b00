"""Render chat messages with the model's own chat template (GGUF ``tokenizer.chat_template``).

Templates come from model files, i.e. from outside the codebase, so they run in Jinja's
immutable sandbox, configured like Hugging Face transformers renders them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NoReturn

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import ChatTemplateError

logger = logging.getLogger(__name__)

# Used when the model file has no template: SmolLM2, Qwen and many small models speak ChatML.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _raise_exception(message: str) -> NoReturn:
    raise ChatTemplateError(message)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False) -> str:
    # Jinja's own tojson HTML-escapes, which would corrupt prompts; HF overrides it the same way.
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


def _strftime_now(fmt: str) -> str:
    return datetime.now(tz=UTC).strftime(fmt)


class ChatTemplate:
    """A compiled chat template plus the special tokens it may refer to."""

    def __init__(
        self,
        source: str | None,
        *,
        bos_token: str = "",
        eos_token: str = "",
        special_token_texts: Sequence[str] = (),
    ) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self.source = source or CHATML_TEMPLATE
        try:
            self._template = env.from_string(self.source)
        except jinja2.TemplateSyntaxError as exc:
            logger.warning("model chat template does not compile (%s); using ChatML", exc)
            self.source = CHATML_TEMPLATE
            self._template = env.from_string(CHATML_TEMPLATE)
        self.bos_token = bos_token
        self.eos_token = eos_token
        texts = sorted({t for t in special_token_texts if t}, key=len, reverse=True)
        self._special_re = re.compile("|".join(map(re.escape, texts))) if texts else None

    @property
    def is_fallback(self) -> bool:
        return self.source == CHATML_TEMPLATE

    def render(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        add_generation_prompt: bool = True,
        strip_special_tokens: bool = True,
    ) -> str:
        """Render ``messages`` ({"role", "content"} mappings) into the model's prompt text.

        With ``strip_special_tokens`` (the default) control-token texts such as
        ``<|im_end|>`` are removed from message contents, so text typed by a customer cannot
        close its own turn and forge a system or assistant turn.
        """
        prepared = [
            {
                **message,
                "content": self._strip(message.get("content", ""))
                if strip_special_tokens
                else message.get("content", ""),
            }
            for message in messages
        ]
        try:
            return self._template.render(
                messages=prepared,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except ChatTemplateError:
            raise
        except jinja2.TemplateError as exc:
            raise ChatTemplateError(f"chat template failed: {exc}") from exc

    def _strip(self, text: str) -> str:
        return self._special_re.sub("", text) if self._special_re is not None else text
