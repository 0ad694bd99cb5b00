"""Shaping the streamed answer: what the customer sees while the model writes."""

from __future__ import annotations

import re

from .grounding import Support

# SmolLM2 likes to open with "1. " as if starting a list.
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+")
_MARKER_STARTS = frozenset("0123456789-*•")
_SENTENCE_END = re.compile(r"(?<=[^\s.]{2})[.!?](?:\s*\[\d{1,2}\])?(?=\s)")


class AnswerStream:
    """Drops a leading list marker ("1. "), ends the answer after `limit` sentences, and shows
    text only while it is supported by the facts.

    A sentence being written is shown as far as it passes the groundedness check so far (a
    half-written word or an unsupported turn holds it back); a complete sentence that fails
    ends the answer (`failed`), so a customer never watches an invented claim being typed.
    `feed` returns the text to show now.
    """

    def __init__(self, limit: int, support: Support) -> None:
        self.limit = limit
        self.support = support
        self.text = ""  # what the model wrote (marker removed, cut at the limit)
        self.shown = 0  # length of the prefix shown so far
        self.checked = 0  # length of the prefix made of complete, supported sentences
        self.sentences = 0
        self.done = False
        self.failed = False

    def feed(self, piece: str) -> str:
        self.text += piece
        if not self.shown and not self.checked:
            head = self.text.lstrip()
            if len(head) < 4 and head[:1] in _MARKER_STARTS:
                return ""  # it may still become "1. "
            self.text = _LIST_MARKER.sub("", head)
        ends = [m.end() for m in _SENTENCE_END.finditer(self.text, self.checked)]
        for end in ends:
            if not self.support.supports(self.text[self.checked : end]):
                self.failed = True
                return ""
            self.checked = end
            self.sentences += 1
            if self.sentences >= self.limit:
                self.text = self.text[:end]
                self.done = True
                break
        visible = self.checked
        if not self.done and self.support.supports(self.text[self.checked :], complete=False):
            visible = len(self.text)
        return self._show(visible)

    def finish(self) -> str:
        """At the end of generation: judge the last sentence, return what is left to show."""
        if not self.shown and not self.checked:
            self.text = _LIST_MARKER.sub("", self.text.lstrip())
        rest = self.text[self.checked :]
        if rest.strip() and not self.support.supports(rest):
            self.failed = True
            return ""
        return self._show(len(self.text))

    def _show(self, upto: int) -> str:
        if upto <= self.shown:
            return ""
        out = self.text[self.shown : upto]
        self.shown = upto
        return out
