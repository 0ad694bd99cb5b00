"""Shaping the streamed answer: what the customer sees while the model writes."""

from __future__ import annotations

import re

from .grounding import Support

# SmolLM2 likes to open with "1. " as if starting a list, or with "A: " after FAQ facts.
_LIST_MARKER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•]|(?:Q|A|Question|Answer)\s*:)\s+", re.I)
_MARKER_WORDS = ("question:", "answer:", "q:", "a:")


def _could_be_marker(head: str) -> bool:
    """The start of a marker still being written: "1", "1.", "-", "A", "Ans"."""
    if not head:
        return True
    if len(head) < 4 and head[0] in "0123456789-*•":
        return True
    low = head.lower()
    return len(head) < 8 and any(m.startswith(low) for m in _MARKER_WORDS)


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
        self.problem: str | None = None  # why the sentence that ended the answer failed

    def feed(self, piece: str) -> str:
        self.text += piece
        if self._marker_pending():
            return ""  # it may still become "1. " or "A: "
        ends = [m.end() for m in _SENTENCE_END.finditer(self.text, self.checked)]
        for end in ends:
            problem = self.support.problem(self.text[self.checked : end])
            if problem is not None:
                self.failed, self.problem = True, problem
                return ""
            self.checked = end
            self.sentences += 1
            if self.sentences >= self.limit:
                self.text = self.text[:end]
                self.done = True
                break
            if self._marker_pending():
                return self._show(self.checked)
        visible = self.checked
        if not self.done and self.support.supports(self.text[self.checked :], complete=False):
            visible = len(self.text)
        return self._show(visible)

    def finish(self) -> str:
        """At the end of generation: judge the last sentence, return what is left to show."""
        self._marker_pending(final=True)
        rest = self.text[self.checked :]
        problem = self.support.problem(rest) if rest.strip() else None
        if problem is not None:
            self.failed, self.problem = True, problem
            return ""
        return self._show(len(self.text))

    def _marker_pending(self, *, final: bool = False) -> bool:
        """Drop a list number or a Q/A label opening the sentence being written (from
        `checked` on); True while its start may still become one (hold it back)."""
        start = self.checked
        if self.shown > start:
            return False  # already shown: it was no marker
        rest = self.text[start:]
        head = rest.lstrip()
        marker = _LIST_MARKER.match(head)
        if marker is not None:
            head = head[marker.end() :]
        elif not final and _could_be_marker(head):
            return True
        # The first sentence starts at once; a later one after a single space.
        gap = " " if start and rest[:1].isspace() else ""
        self.text = self.text[:start] + gap + head
        return False

    def _show(self, upto: int) -> str:
        if upto <= self.shown:
            return ""
        out = self.text[self.shown : upto]
        self.shown = upto
        return out
