"""The leak guard: an answer must never repeat the system prompt."""

from __future__ import annotations

from collections.abc import Sequence

from .. import security
from ..conf import get_support_settings
from ..text import WORD
from .prompt import shipped_prompt_text

# An answer repeating this many consecutive words of the system prompt is a leak.
PROMPT_LEAK_WORDS = 5


class LeakGuard:
    """Recognises text repeating the system prompt: a run of PROMPT_LEAK_WORDS consecutive
    words of it, or any word only the system prompt holds (a secret such as an internal code
    smuggled into an otherwise supported sentence); `sources` are the prompt's other texts."""

    def __init__(self, system: str, n: int = 0, sources: Sequence[str] | None = None) -> None:
        self.n = n or PROMPT_LEAK_WORDS
        words = [w.lower() for w in WORD.findall(system)]
        self.grams = {tuple(words[i : i + self.n]) for i in range(len(words) - self.n + 1)}
        self.private: frozenset[str] = frozenset()
        if sources is not None:
            # The prompt file as shipped, the company name and the tone are public (in this
            # repository and on the website); anything else a system prompt holds is not.
            conf = get_support_settings()
            public = [*sources, shipped_prompt_text(), conf.company_name, conf.tone]
            self.private = security.prompt_private_words(system=system, sources=public)

    def leaks(self, text: str) -> bool:
        if self.private and security.words_in(text, self.private):
            return True
        words = [w.lower() for w in WORD.findall(text)]
        return any(
            tuple(words[i : i + self.n]) in self.grams for i in range(len(words) - self.n + 1)
        )


def leaks_prompt(answer: str, system: str) -> bool:
    """The answer repeats a run of the system prompt's words (a prompt-leak attempt)."""
    return LeakGuard(system).leaks(answer)
