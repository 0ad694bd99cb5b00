"""Markdown and plain text: line-based, no Markdown library (headings, lists, tables, code)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from ..document import BlockKind
from ..text import clean_text
from .outline import MAX_ANCHOR_CHARS, Outline

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_FM_TITLE = re.compile(r"^title[ \t]*:(.*)$", re.M | re.I)
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]|$)")  # the text is cut out by _atx_heading
_HEADING_ID = re.compile(r"\{#([\w\-:.]+)\}$")  # searched in stripped heading text
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_LIST_ITEM = re.compile(r"^([ \t]*)([-*+•]|\d{1,9}[.)])[ \t]+(.*)$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_QUOTE = re.compile(r"^ {0,3}> ?")
_INDENTED = re.compile(r"^(?: {4}|\t)")

# Inline patterns exclude their own opening delimiters ("[", "(", "*", "`") from what they
# scan, so each attempt stops at the next candidate: uploads are untrusted, and a lazy
# ".+?" over a long line of unmatched delimiters is quadratic.
_MD_IMAGE = re.compile(r"!\[([^\[\]]*)\]\([^()\s]*(?:\s+\"[^\"()]*\")?\)")
_MD_LINK = re.compile(
    r"\[([^\[\]]+)\]\(\s*<?([^()\s<>\[\]]*)>?(?:\s+(?:\"[^\"()]*\"|'[^'()]*'))?\s*\)"
)
_MD_REF_LINK = re.compile(r"\[([^\[\]]+)\]\[[^\[\]]*\]")
_MD_AUTOLINK = re.compile(r"<((?:https?://|mailto:)[^>\s]+)>")
_MD_STRONG = re.compile(r"\*\*(?=\S)([^*]+)(?<=\S)\*\*|__(?=\S)([^_]+)(?<=\S)__")
_MD_EM = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*]+)(?<=\S)\*(?![\w*])")
_MD_STRIKE = re.compile(r"~~(?=\S)([^~]+)(?<=\S)~~")
_MD_CODE = re.compile(r"`([^`]+)`")
_MD_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")


def _md_inline(text: str) -> str:
    """Strip inline Markdown, keeping what a reader sees plus absolute link targets."""
    text = _MD_IMAGE.sub(lambda m: m.group(1), text)

    def link(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        # An absolute URL is useful in an answer ("reset it at https://..."); a relative one
        # points into a site the bot cannot see.
        if target.startswith(("http://", "https://", "mailto:")) and target != label:
            return f"{label} ({target.removeprefix('mailto:')})"
        return label

    text = _MD_LINK.sub(link, text)
    text = _MD_REF_LINK.sub(lambda m: m.group(1), text)
    text = _MD_AUTOLINK.sub(lambda m: m.group(1), text)
    text = _MD_CODE.sub(lambda m: m.group(1).strip(), text)
    text = _MD_EM.sub(lambda m: m.group(1), text)  # first, so "**a *b* c**" unwraps fully
    text = _MD_STRONG.sub(lambda m: m.group(1) or m.group(2), text)
    text = _MD_STRIKE.sub(lambda m: m.group(1), text)
    text = _MD_TAG.sub(" ", text)
    return _MD_ESCAPE.sub(lambda m: m.group(1), text)


def _slugify(text: str) -> str:
    """GitHub-style heading slug, so anchors match what Markdown renderers generate."""
    slug = re.sub(r"[^\w\- ]", "", text.lower()).strip().replace(" ", "-")
    return slug[:MAX_ANCHOR_CHARS]


@dataclass(slots=True)
class _Slugs:
    seen: Counter[str] = field(default_factory=Counter)

    def unique(self, text: str) -> str | None:
        slug = _slugify(text)
        if not slug:
            return None
        count = self.seen[slug]
        self.seen[slug] += 1
        return slug if count == 0 else f"{slug}-{count}"


def parse_markdown(text: str, name: str, out: Outline) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    title: str | None = None
    front = _FRONT_MATTER.match(text)
    if front:
        found = _FM_TITLE.search(front.group(1))
        if found:
            title = found.group(1).strip().strip("\"'").strip()
        text = text[front.end() :]
    text = _strip_comments(text)
    lines = text.split("\n")
    slugs = _Slugs()
    paragraph: list[str] = []
    first_h1: str | None = None

    def flush() -> None:
        if not paragraph:
            return
        if all(_INDENTED.match(line) for line in paragraph):
            # Indented code: a paragraph can't start indented, and list continuations are
            # consumed by _markdown_list, so only code blocks get here.
            out.add(
                "\n".join(_INDENTED.sub("", line, count=1) for line in paragraph), BlockKind.CODE
            )
        else:
            out.add(_md_inline(" ".join(paragraph)))
        paragraph.clear()

    def heading(level: int, raw: str) -> None:
        nonlocal first_h1
        raw = raw.strip()
        explicit = _HEADING_ID.search(raw)
        if explicit:
            raw = raw[: explicit.start()]
        heading_text = clean_text(_md_inline(raw))
        anchor = explicit.group(1) if explicit else slugs.unique(heading_text)
        if out.heading(level, heading_text, anchor) and level == 1 and first_h1 is None:
            first_h1 = heading_text

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        fence = _FENCE.match(line)
        if fence:
            flush()
            i = _markdown_fence(lines, i, fence.group(1), out)
            continue
        if not stripped:
            flush()
            i += 1
            continue
        atx = _ATX.match(line)
        if atx:
            flush()
            heading(len(atx.group(1)), _atx_text(line[atx.end() :]))
            i += 1
            continue
        if (
            paragraph
            and len(paragraph) == 1
            and _SETEXT.match(line)
            and not _LIST_ITEM.match(paragraph[0])
        ):
            level = 1 if stripped.startswith("=") else 2
            raw = paragraph.pop()
            heading(level, raw)
            i += 1
            continue
        if _RULE.match(line):
            flush()
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]):
            flush()
            rows = [_table_row(line)]
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(_table_row(lines[i]))
                i += 1
            out.add("\n".join(rows), BlockKind.TABLE)
            continue
        if _LIST_ITEM.match(line) and not paragraph:
            i = _markdown_list(lines, i, out)
            continue
        quote = _QUOTE.match(line)
        paragraph.append(line[quote.end() :] if quote else line)
        i += 1
    flush()
    return title or first_h1 or ""


def _strip_comments(text: str) -> str:
    """Drop HTML comments; str.find rather than a regex, which is quadratic on "<!--" runs."""
    parts = []
    position = 0
    while (start := text.find("<!--", position)) != -1:
        end = text.find("-->", start + 4)
        if end == -1:
            break  # unterminated: keep the rest as text, as renderers do
        parts.append(text[position:start])
        position = end + 3
    parts.append(text[position:])
    return "".join(parts)


def _atx_text(rest: str) -> str:
    """Heading text without the optional closing run of "#" (done by hand: see _MD_LINK)."""
    rest = rest.strip()
    stripped = rest.rstrip("#")
    if stripped != rest and (not stripped or stripped[-1] in " \t"):
        rest = stripped.rstrip()
    return rest


def _markdown_fence(lines: list[str], i: int, marker: str, out: Outline) -> int:
    """Consume a fenced code block starting at `lines[i]`; return the next line index."""
    # Fences are kept so the generator sees the block as code (and its language tag).
    body = [lines[i].strip()]
    i += 1
    while i < len(lines):
        line = lines[i].strip()
        body.append(lines[i])
        i += 1
        if line.startswith(marker) and not line.strip(marker[0]):
            break
    else:
        body.append(marker)  # unterminated fence: close it so the stored block stays valid
    out.add("\n".join(body), BlockKind.CODE)
    return i


def _table_row(line: str) -> str:
    cells = [_md_inline(cell).strip() for cell in line.strip().strip("|").split("|")]
    return " | ".join(cells)


def _markdown_list(lines: list[str], i: int, out: Outline) -> int:
    """Consume a (possibly nested) list starting at `lines[i]`; return the next line index."""
    items: list[tuple[int, str, str]] = []  # (indent, marker, text)
    base_indent: int | None = None
    while i < len(lines):
        line = lines[i]
        item = _LIST_ITEM.match(line)
        if item:
            indent = len(item.group(1).expandtabs(4))
            if base_indent is None:
                base_indent = indent
            items.append((indent, item.group(2), item.group(3)))
            i += 1
            continue
        if not line.strip():
            # A blank line ends the list unless the list carries on after it.
            nxt = next((ln for ln in lines[i + 1 :] if ln.strip()), "")
            if _LIST_ITEM.match(nxt) or (nxt.startswith(("  ", "\t")) and items):
                i += 1
                continue
            break
        if _ATX.match(line) or _FENCE.match(line) or _RULE.match(line):
            break
        # Continuation (indented or lazy) of the previous item.
        indent_, marker, text_ = items[-1]
        items[-1] = (indent_, marker, f"{text_} {line.strip()}")
        i += 1
    levels: list[int] = []
    rendered: list[str] = []
    for indent, marker, text in items:
        while levels and indent < levels[-1]:
            levels.pop()
        if not levels or indent > levels[-1]:
            levels.append(indent)
        depth = len(levels) - 1
        bullet = marker if marker[0].isdigit() else "-"
        rendered.append(f"{'  ' * depth}{bullet} {_md_inline(text).strip()}")
    out.add("\n".join(rendered), BlockKind.LIST)
    return i


def parse_text(text: str, name: str, out: Outline) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for chunk in re.split(r"\n[ \t\f\v]*\n", text):
        lines = [line for line in chunk.split("\n") if line.strip()]
        if not lines:
            continue
        if all(_LIST_ITEM.match(line) for line in lines):
            out.add("\n".join(_bullet(line) for line in lines), BlockKind.LIST)
        else:
            out.add(" ".join(lines))
    return ""


def _bullet(line: str) -> str:
    item = _LIST_ITEM.match(line)
    if item is None:
        return line.strip()
    marker = item.group(2)
    return f"{marker if marker[0].isdigit() else '-'} {item.group(3).strip()}"
