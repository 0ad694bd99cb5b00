"""The builder every format parser writes into: blocks plus the heading stack."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..document import Block, BlockKind
from ..text import clean_code, clean_text

MAX_TITLE_CHARS = 300
MAX_HEADING_CHARS = 200
MAX_ANCHOR_CHARS = 200


@dataclass(slots=True)
class Outline:
    """Collects blocks while tracking the heading stack that gives each block its path."""

    blocks: list[Block] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _stack: list[tuple[int, str, str | None]] = field(default_factory=list)

    def heading(self, level: int, text: str, anchor: str | None = None) -> bool:
        text = clean_text(text)[:MAX_HEADING_CHARS]
        if not text:
            return False
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text, clean_anchor(anchor)))
        return True

    @property
    def path(self) -> tuple[str, ...]:
        return tuple(text for _, text, _ in self._stack)

    @property
    def heading_anchor(self) -> str | None:
        return self._stack[-1][2] if self._stack else None

    def add(
        self,
        text: str,
        kind: BlockKind = BlockKind.PARAGRAPH,
        *,
        page: int | None = None,
        anchor: str | None = None,
        path: tuple[str, ...] | None = None,
    ) -> None:
        if kind is BlockKind.CODE:
            text = clean_code(text)
        elif kind is BlockKind.PARAGRAPH:
            text = clean_text(text)
        else:
            text = clean_text(text, keep_newlines=True)
        if not text.strip():
            return
        self.blocks.append(
            Block(
                text=text,
                kind=kind,
                heading_path=self.path if path is None else path,
                page=page,
                anchor=clean_anchor(anchor) or self.heading_anchor,
            )
        )


def clean_anchor(value: str | None) -> str | None:
    if not value:
        return None
    value = clean_text(value)
    return value[:MAX_ANCHOR_CHARS] or None
