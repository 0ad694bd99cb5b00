"""Text clean-up shared by every parser."""

from __future__ import annotations

import codecs
import re
import unicodedata

from charset_normalizer import from_bytes

# Invisible characters are stripped because they let hidden text reach the model (prompt
# injection via bidi overrides or Unicode tag characters) and because they split words, which
# hurts both matching and embeddings. Zero-width joiners go too: losing them degrades some
# emoji and Indic/Persian spellings slightly, which is the lesser evil for a search index.
_INVISIBLE = (
    "\u00ad"  # soft hyphen (PDF line-break hyphenation)
    "\u061c"  # Arabic letter mark
    "\u180e"  # Mongolian vowel separator
    "\u200b\u200c\u200d"  # zero-width space / non-joiner / joiner
    "\u200e\u200f"  # LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060\u2061\u2062\u2063\u2064"  # word joiner, invisible operators
    "\u2066\u2067\u2068\u2069"  # bidi isolates
    "\ufeff"  # BOM / zero-width no-break space
)
_TAG_CHARS = "".join(chr(c) for c in range(0xE0000, 0xE0080))
# C0/C1 controls except tab and newline (CR is handled separately).
_CONTROLS = "".join(chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_C1 = "".join(chr(c) for c in range(0x80, 0xA0))
_DELETE = str.maketrans("", "", _INVISIBLE + _TAG_CHARS + _CONTROLS + _C1)

# PDFs often carry typographic ligatures; NFKC would fix them but also rewrites "m²" as "m2".
_LIGATURES = str.maketrans(
    {
        "\ufb00": "ff",
        "\ufb01": "fi",
        "\ufb02": "fl",
        "\ufb03": "ffi",
        "\ufb04": "ffl",
        "\ufb06": "st",
    }
)

_SPACES = re.compile(r"[^\S\n]+")  # any whitespace except newline (includes NBSP, U+2028 ...)
_LINE_SEPARATORS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_BLANK_LINES = re.compile(r"\n(?:[^\S\n]*\n)+")


def clean_text(text: str, *, keep_newlines: bool = False) -> str:
    """Strip invisible/control characters and normalise whitespace.

    With `keep_newlines`, line breaks survive (lists, tables, code) but runs of blank lines
    collapse to one; otherwise all whitespace collapses to single spaces.
    """
    text = _LINE_SEPARATORS.sub("\n", text)
    text = unicodedata.normalize("NFC", text.translate(_DELETE).translate(_LIGATURES))
    if not keep_newlines:
        return " ".join(text.split())
    # Leading indentation survives: it is what nests list items.
    lines = [_indent(line) + _SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


def _indent(line: str) -> str:
    stripped = line.lstrip(" \t")
    if not stripped:
        return ""
    return " " * min(len(line[: len(line) - len(stripped)].expandtabs(2)), 16)


def clean_code(text: str) -> str:
    """Like `clean_text` but keeps indentation, which carries meaning in code."""
    text = _LINE_SEPARATORS.sub("\n", text)
    text = unicodedata.normalize("NFC", text.translate(_DELETE)).expandtabs(4)
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


# Most common first. DOS and Mac code pages (cp775, cp850, mac_roman) are missing on
# purpose: they only win when none of these reads the bytes as well.
_PREFERRED_ENCODINGS = (
    "cp1252", "cp1250", "cp1251", "iso8859_15", "iso8859_2", "koi8_r", "cp1253", "cp1254",
    "cp1257", "cp1255", "cp1256", "cp1258", "cp932", "shift_jis", "euc_jp", "gb18030",
    "big5", "euc_kr", "cp949",
)  # fmt: skip
_CENTRAL_EUROPEAN = frozenset(
    {"Czech", "Slovak", "Polish", "Hungarian", "Croatian", "Slovene", "Romanian", "Serbian"}
)


def decode_text(data: bytes, *, declared: str | None = None) -> str | None:
    """Decode uploaded text: BOM, strict UTF-8, the `declared` charset, charset_normalizer.

    Returns None when no encoding fits (the bytes are not text).
    """
    # UTF-32 LE's BOM starts with UTF-16 LE's, so it has to be tried first.
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    for bom, encoding in boms:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    # NUL bytes are valid UTF-8, so BOM-less UTF-16 must be caught before trying UTF-8.
    utf16 = bomless_utf16(data[:4096]) if b"\x00" in data[:4096] else None
    # A declaration (HTML <meta charset>) comes after UTF-8: pages that declare Latin-1 but
    # are really UTF-8 are common, and valid UTF-8 is rarely anything else.
    for candidate in (utf16, "utf-8", declared):
        if candidate is not None:
            try:
                return data.decode(candidate)
            except (UnicodeDecodeError, LookupError):
                pass
    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    # charset_normalizer breaks near-ties between single-byte code pages arbitrarily: short
    # German text comes back as DOS Baltic (cp775), French as cp1250 ("crème" as "crčme").
    # Among the equally plausible readings, take the code page uploads are really saved in.
    # Its language guess on short text is weak, so it only vetoes Windows-1252 when it
    # hears a Central European language (Czech "Č" would otherwise read as "È").
    # A Western text read as cp1257 scores a little chaos on its true cp1252 reading too.
    tied = [m for m in matches if m.chaos <= best.chaos + 0.1]
    for encoding in _PREFERRED_ENCODINGS:
        for match in tied:
            if encoding in match.could_be_from_charset and (
                encoding != "cp1252" or match.language not in _CENTRAL_EUROPEAN
            ):
                return str(match)
    return str(best)


def bomless_utf16(head: bytes) -> str | None:
    """Guess UTF-16 without a BOM: mostly-Latin text has a NUL in every other byte."""
    even, odd = head[0::2], head[1::2]
    if len(odd) < 2:
        return None
    if odd.count(0) / len(odd) > 0.6 and even.count(0) / len(even) < 0.1:
        return "utf-16-le"
    if even.count(0) / len(even) > 0.6 and odd.count(0) / len(odd) < 0.1:
        return "utf-16-be"
    return None
