"""HTML pages: main content only, headings as the outline, element ids as anchors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from bs4 import BeautifulSoup
from bs4.element import CData, NavigableString, Tag

from ..document import BlockKind
from ..text import clean_text
from .css import Stylesheet, declarations, has_background, hidden_reason
from .outline import Outline

# Page furniture and non-text content. <header> is handled separately: inside an article it
# usually holds the article's own title.
_HTML_DROP = frozenset(
    {
        "script", "style", "noscript", "template", "form", "svg", "iframe", "frame", "frameset",
        "object", "embed", "canvas", "nav", "aside", "footer", "button", "select", "textarea",
        "input", "dialog", "audio", "video", "picture", "map", "link", "meta", "head",
    }
)  # fmt: skip
_HTML_DROP_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar",
     "dialog", "alertdialog", "toolbar"}
)  # fmt: skip
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "blockquote", "body", "caption", "center", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "header", "hgroup", "hr", "html", "legend",
        "li", "main", "p", "section", "summary", "td", "th", "tr", "tbody", "thead", "tfoot",
    }
)  # fmt: skip
_HTML_CONTENT_BLOCKS = ("p", "div", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
                        "pre", "blockquote", "section", "article", "dl")  # fmt: skip
_INLINE_WS = re.compile(r"\s+")
_BR = "\n"  # marks <br> in the inline buffer; source newlines are folded to spaces first


def _styles(tag: Tag, sheet: Stylesheet) -> dict[str, str]:
    """The element's own declarations: matching <style> rules, presentational attributes, then
    its style attribute."""
    raw_classes: Any = tag.get("class") or []
    classes = [str(c) for c in raw_classes] if isinstance(raw_classes, list) else []
    if isinstance(raw_classes, str):
        classes = raw_classes.split()
    element_id = tag.get("id")
    decls = sheet.matching(tag.name, classes, str(element_id) if element_id else None)
    if tag.name == "font" and tag.get("color"):
        decls["color"] = str(tag["color"]).strip().lower()
    if tag.get("bgcolor"):
        decls["background-color"] = str(tag["bgcolor"]).strip().lower()
    decls.update(declarations(str(tag.get("style", ""))))
    return decls


def _hidden_reason(tag: Tag, decls: dict[str, str], on_background: bool) -> str | None:
    if tag.has_attr("hidden"):
        return "hidden attribute"
    if str(tag.get("aria-hidden", "")).strip().lower() == "true":
        return "aria-hidden"
    return hidden_reason(decls, on_background=on_background)


def parse_html(text: str, name: str, out: Outline) -> str:
    # lxml's HTML parser never loads external resources or DTDs; bs4 never fetches.
    soup = BeautifulSoup(text, "lxml")
    title = soup.title.get_text(" ") if soup.title else ""
    sheet = Stylesheet()
    for style in soup.find_all("style"):
        sheet.add(style.get_text())
    hidden = _drop_furniture(soup, sheet)
    root = _html_main(soup)
    if not title:
        h1 = root.find("h1")
        title = h1.get_text(" ") if h1 else ""
    _HtmlWalker(out).walk(root)
    if hidden:
        reasons = ", ".join(sorted({reason for reason, _ in hidden}))
        sample = hidden[0][1]
        sample = sample if len(sample) <= 80 else sample[:79] + "…"
        out.warnings.append(
            f"Invisible text was left out ({len(hidden)} passage(s): {reasons}), "
            f"e.g. “{sample}”. Review the page if that text should be in the knowledge base."
        )
    return title


def _drop_furniture(soup: BeautifulSoup, sheet: Stylesheet) -> list[tuple[str, str]]:
    """Detach invisible elements and page furniture, top-down so dropped subtrees are not
    walked. Returns (reason, text) for each invisible element that held text."""
    hidden: list[tuple[str, str]] = []
    # (element, inside <article>/<main>, drawn on a declared background)
    stack: list[tuple[Tag, bool, bool]] = [(soup, False, False)]
    while stack:
        node, in_content, on_background = stack.pop()
        for child in list(node.children):
            if not isinstance(child, Tag):
                continue
            role = str(child.get("role", "")).strip().lower()
            if (
                child.name in _HTML_DROP
                or role in _HTML_DROP_ROLES
                or (child.name == "header" and not in_content)
            ):
                child.extract()
                continue
            decls = _styles(child, sheet)
            reason = _hidden_reason(child, decls, on_background)
            if reason is not None:
                text = clean_text(child.get_text(" "))
                if text:
                    hidden.append((reason, text))
                child.extract()
                continue
            stack.append(
                (
                    child,
                    in_content or child.name in ("article", "main"),
                    on_background or has_background(decls),
                )
            )
    return hidden


def _html_main(soup: BeautifulSoup) -> Tag:
    """The element holding the page's main content: <main>, [role=main], a lone <article>."""
    candidates: list[Tag | None] = [soup.find("main"), soup.find(True, attrs={"role": "main"})]
    articles = soup.find_all("article")
    if len(articles) == 1:
        candidates.append(articles[0])
    for candidate in candidates:
        if isinstance(candidate, Tag) and candidate.get_text(strip=True):
            return candidate
    return soup.body if soup.body is not None else soup


def _is_layout_table(table: Tag) -> bool:
    # Old CMS pages lay out whole pages with tables; their cells hold blocks, not data.
    # The nested-table test goes first: it stops at the first hit, so nested layout tables
    # cost O(depth) each instead of a scan of every cell below them.
    if table.find("table") is not None:
        return True
    return any(cell.find(_HTML_CONTENT_BLOCKS) is not None for cell in table.find_all(["td", "th"]))


class _HtmlWalker:
    """Flattens the DOM into blocks without recursion (deeply nested pages exist)."""

    def __init__(self, out: Outline) -> None:
        self.out = out
        self.buffer: list[str] = []
        # id of the innermost block element entered but not yet used as an anchor.
        self.pending: tuple[str, Tag] | None = None

    def walk(self, root: Tag) -> None:
        stack: list[tuple[Tag | NavigableString, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            if leaving:
                self.flush()
                if self.pending is not None and self.pending[1] is node:
                    self.pending = None
                continue
            if isinstance(node, NavigableString):
                # Comments, doctypes and processing instructions are NavigableString subclasses.
                if type(node) in (NavigableString, CData):
                    self.buffer.append(_INLINE_WS.sub(" ", str(node)))
                continue
            name = node.name
            if name in _HTML_HEADINGS:
                self.flush()
                anchor = self._id(node) or self._take_pending()
                self.out.heading(_HTML_HEADINGS[name], node.get_text(" "), anchor)
                continue
            if name in ("ul", "ol"):
                self.flush()
                self.out.add("\n".join(_html_list(node)), BlockKind.LIST,
                             anchor=self._id(node) or self._take_pending())  # fmt: skip
                continue
            if name == "table" and not _is_layout_table(node):
                self.flush()
                self._table(node)
                continue
            if name == "pre":
                self.flush()
                self.out.add(node.get_text(), BlockKind.CODE,
                             anchor=self._id(node) or self._take_pending())  # fmt: skip
                continue
            if name == "br":
                self.buffer.append(_BR)
                continue
            if name == "img":
                continue
            children = list(node.children)
            if name in _HTML_BLOCKS or name == "table":
                self.flush()
                own_id = self._id(node)
                if own_id:
                    self.pending = (own_id, node)
                stack.append((node, True))
            stack.extend((child, False) for child in reversed(children)
                         if isinstance(child, Tag | NavigableString))  # fmt: skip

    @staticmethod
    def _id(tag: Tag) -> str | None:
        value = tag.get("id")
        return str(value) if value else None

    def _take_pending(self) -> str | None:
        if self.pending is None:
            return None
        anchor, _ = self.pending
        self.pending = None
        return anchor

    def flush(self) -> None:
        if not self.buffer:
            return
        text = "".join(self.buffer)
        self.buffer.clear()
        # Two <br>s in a row separate paragraphs on pages that never use <p>.
        paragraphs = [p for p in re.split(r"\n *\n", text) if p.strip()]
        for paragraph in paragraphs:
            self.out.add(paragraph.replace(_BR, " "), anchor=self._take_pending())

    def _table(self, table: Tag) -> None:
        caption = table.find("caption")
        anchor = self._id(table) or self._take_pending()
        if caption is not None:
            self.out.add(caption.get_text(" "), anchor=anchor)
        rows: list[str] = []
        for tr in table.find_all("tr"):
            cells = [clean_text(cell.get_text(" ")) for cell in tr.find_all(["td", "th"])]
            if any(cells):
                rows.append(" | ".join(cells))
        self.out.add("\n".join(rows), BlockKind.TABLE, anchor=anchor)


def _html_list(root: Tag) -> Iterator[str]:
    """One line per <li>, nested lists indented; iterative, as lists nest arbitrarily deep."""
    # Stack entries are lists (marker None) or items (marker "-" / "3."); pushing children
    # in reverse keeps document order.
    stack: list[tuple[Tag, int, str | None]] = [(root, 0, None)]
    while stack:
        node, depth, marker = stack.pop()
        indent = "  " * min(depth, 8)
        if marker is None:
            items = node.find_all("li", recursive=False)
            if not items:
                text = clean_text(node.get_text(" "))
                if text:
                    yield f"{indent}- {text}"
                continue
            start = str(node.get("start") or "1").strip()
            first = int(start) if start.isdigit() and len(start) < 7 else 1
            ordered = node.name == "ol"
            for offset in reversed(range(len(items))):
                stack.append((items[offset], depth, f"{first + offset}." if ordered else "-"))
            continue
        parts: list[str] = []
        nested: list[Tag] = []
        for child in node.children:
            if isinstance(child, Tag):
                if child.name in ("ul", "ol"):
                    nested.append(child)
                else:
                    parts.append(child.get_text(" "))
            elif type(child) is NavigableString:
                parts.append(str(child))
        text = clean_text(" ".join(parts))
        if text:
            yield f"{indent}{marker} {text}"
        stack.extend((child, depth + 1, None) for child in reversed(nested))
