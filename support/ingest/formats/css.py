"""Just enough CSS to tell whether HTML text is visible: inline styles and simple rules.

Text a reader cannot see (display:none, white on nothing, a 1px font) is how instructions are
planted for a language model in pages that look harmless, so the HTML parser drops it. Only
rules a page can apply without JavaScript are understood: inline `style` attributes and
top-level rules in `<style>` whose selectors are a tag, classes and/or an id (`.x`, `p.note`,
`#promo`). Rules inside at-rules (`@media print`) and combinators are ignored: guessing there
would drop visible text. Everything here is linear in the input (uploads are untrusted).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

MAX_STYLESHEET_CHARS = 256 * 1024
MAX_RULES = 5_000

_BRACE = re.compile(r"[{}]")
_SIMPLE_SELECTOR = re.compile(r"([a-z][a-z0-9-]*)?((?:[.#][\w-]+)*)", re.I)
_SELECTOR_PART = re.compile(r"([.#])([\w-]+)")
_HEX = re.compile(r"#([0-9a-f]{3,8})")
_CHANNEL = r"([\d.]+%?)"
_RGB = re.compile(
    rf"rgba?\(\s*{_CHANNEL}[\s,]+{_CHANNEL}[\s,]+{_CHANNEL}(?:[\s,/]+{_CHANNEL})?\s*\)"
)
_LENGTH = re.compile(r"^(-?[\d.]+)\s*(px|pt|em|rem|%|vw|vh|)?$")
_NAMED_WHITE = frozenset(
    {"white", "snow", "ghostwhite", "whitesmoke", "ivory", "azure", "mintcream"}
)
# Font sizes at or below these are unreadable (a 1px font is a classic way to hide text).
_TINY = {"px": 3.0, "pt": 2.5, "em": 0.25, "rem": 0.25, "%": 25.0, "vw": 0.2, "vh": 0.3, "": 0.0}


def declarations(style: str) -> dict[str, str]:
    """`"color: #FFF; display:none !important"` -> {"color": "#fff", "display": "none"}."""
    result: dict[str, str] = {}
    for item in style.split(";"):
        prop, sep, value = item.partition(":")
        if sep:
            value = value.strip().lower().removesuffix("!important").strip()
            result[prop.strip().lower()] = value
    return result


def _strip_comments(css: str) -> str:
    parts: list[str] = []
    pos = 0
    while True:
        start = css.find("/*", pos)
        if start < 0:
            parts.append(css[pos:])
            return "".join(parts)
        parts.append(css[pos:start])
        end = css.find("*/", start + 2)
        if end < 0:
            return "".join(parts)
        pos = end + 2


@dataclass(frozen=True, slots=True)
class _Rule:
    tag: str | None
    classes: frozenset[str]
    element_id: str | None
    declarations: dict[str, str]


@dataclass(slots=True)
class Stylesheet:
    """The simple rules of a page's `<style>` elements, indexed for matching elements."""

    by_class: dict[str, list[_Rule]] = field(default_factory=lambda: defaultdict(list))
    by_id: dict[str, list[_Rule]] = field(default_factory=lambda: defaultdict(list))
    by_tag: dict[str, list[_Rule]] = field(default_factory=lambda: defaultdict(list))
    count: int = 0

    def add(self, css: str) -> None:
        css = _strip_comments(css[:MAX_STYLESHEET_CHARS])
        depth, start, body_start, nested, selector = 0, 0, 0, False, ""
        for match in _BRACE.finditer(css):
            if match.group() == "{":
                if depth == 0:
                    selector, body_start, nested = css[start : match.start()], match.end(), False
                else:
                    nested = True
                depth += 1
                continue
            if depth == 0:  # a stray "}"
                start = match.end()
                continue
            depth -= 1
            if depth == 0:
                start = match.end()
                if not nested and not selector.lstrip().startswith("@"):
                    self._add_rule(selector, declarations(css[body_start : match.start()]))
                if self.count >= MAX_RULES:
                    return

    def _add_rule(self, selectors: str, decls: dict[str, str]) -> None:
        if not decls:
            return
        for selector in selectors.split(","):
            selector = selector.strip()
            found = _SIMPLE_SELECTOR.fullmatch(selector)
            if not selector or found is None:
                continue  # combinators, attribute selectors, pseudo-classes: not understood
            tag = found.group(1).lower() if found.group(1) else None
            classes = [n for kind, n in _SELECTOR_PART.findall(found.group(2)) if kind == "."]
            ids = [n for kind, n in _SELECTOR_PART.findall(found.group(2)) if kind == "#"]
            rule = _Rule(tag, frozenset(classes), ids[0] if ids else None, decls)
            if rule.element_id:
                self.by_id[rule.element_id].append(rule)
            elif classes:
                self.by_class[classes[0]].append(rule)
            elif tag:
                self.by_tag[tag].append(rule)
            else:
                continue
            self.count += 1

    def matching(self, tag: str, classes: list[str], element_id: str | None) -> dict[str, str]:
        """The declarations of every rule matching the element, later rules winning."""
        candidates: list[_Rule] = list(self.by_tag.get(tag, ()))
        for name in classes:
            candidates += self.by_class.get(name, ())
        if element_id:
            candidates += self.by_id.get(element_id, ())
        result: dict[str, str] = {}
        for rule in candidates:
            if (
                (rule.tag is None or rule.tag == tag)
                and rule.classes.issubset(classes)
                and (rule.element_id is None or rule.element_id == element_id)
            ):
                result.update(rule.declarations)
        return result


def _channel(text: str) -> float:
    return float(text[:-1]) * 2.55 if text.endswith("%") else float(text)


def _rgba(color: str) -> tuple[float, float, float, float] | None:
    color = color.strip().lower()
    if color == "transparent":
        return (0.0, 0.0, 0.0, 0.0)
    if color in _NAMED_WHITE:
        return (255.0, 255.0, 255.0, 1.0)
    hexed = _HEX.fullmatch(color)
    if hexed:
        digits = hexed.group(1)
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        if len(digits) not in (6, 8):
            return None
        alpha = int(digits[6:8], 16) / 255 if len(digits) == 8 else 1.0
        red, green, blue = (float(int(digits[i : i + 2], 16)) for i in (0, 2, 4))
        return (red, green, blue, alpha)
    rgb = _RGB.fullmatch(color)
    if rgb:
        try:
            red, green, blue = (_channel(rgb.group(i)) for i in (1, 2, 3))
            a = rgb.group(4)
            alpha = 1.0 if a is None else (float(a[:-1]) / 100 if a.endswith("%") else float(a))
        except ValueError:
            return None
        return (red, green, blue, alpha)
    return None


def is_white(color: str) -> bool:
    """White or nearly so (on the usual white page it cannot be read)."""
    rgba = _rgba(color)
    return rgba is not None and rgba[3] > 0 and min(rgba[:3]) >= 245


def is_transparent(color: str) -> bool:
    rgba = _rgba(color)
    return rgba is not None and rgba[3] <= 0.05


def has_background(decls: dict[str, str]) -> bool:
    """A background other than white/transparent is declared (white text on it is visible)."""
    for prop in ("background-color", "background"):
        value = decls.get(prop)
        if value is None:
            continue
        if "url(" in value or "gradient" in value:
            return True
        colour = value.split()[0] if value.split() else ""
        if colour and not is_white(colour) and not is_transparent(colour) and colour != "none":
            return True
    return False


def is_tiny_font(value: str) -> bool:
    found = _LENGTH.match(value.strip())
    if found is None:
        return False
    try:
        size = float(found.group(1))
    except ValueError:
        return False
    return size <= _TINY.get(found.group(2) or "", 0.0)


def _opacity(value: str) -> float | None:
    try:
        return float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        return None


def hidden_reason(decls: dict[str, str], *, on_background: bool) -> str | None:
    """Why text with these (computed enough) declarations cannot be seen, or None."""
    if decls.get("display") == "none":
        return "display:none"
    if decls.get("visibility") in ("hidden", "collapse"):
        return "visibility:hidden"
    if decls.get("content-visibility") == "hidden":
        return "content-visibility:hidden"
    opacity = _opacity(decls.get("opacity", "1"))
    if opacity is not None and opacity <= 0.05:
        return "opacity:0"
    if "font-size" in decls and is_tiny_font(decls["font-size"]):
        return "tiny text"
    color = decls.get("color")
    if color is not None:
        if is_transparent(color):
            return "transparent text"
        if is_white(color) and not on_background and not has_background(decls):
            return "white text"
    return None
