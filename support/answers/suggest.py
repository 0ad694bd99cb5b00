"""What a decline suggests instead: the closest topics the knowledge base does cover.

A decline ("I'm not sure about that — could you rephrase, or shall I get a person?") offers
the sections of the two best distinct documents among the passages it retrieved, in retrieval
order. The widget shows them as chips that send the topic as the customer's next message, so
a topic must read as something to ask about: the passage's own section heading (an FAQ
entry's question), else the document's title.

Pure: works on the stored passage dicts (`Passage.as_dict`), so the stored decline and
`ask --json` give the same suggestions. No Django imports (support.events uses it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SUGGESTIONS = 2
# retrieval.Passage.heading joins the document title and the heading path with this.
HEADING_SEPARATOR = " › "
# A topic longer than this is cut at a word boundary (an FAQ question can be long).
MAX_TOPIC_CHARS = 80


def _section(passage: Mapping[str, Any]) -> str:
    title = str(passage.get("title") or "").strip()
    heading = str(passage.get("heading") or "").strip()
    if title and heading == title:
        heading = ""
    elif title and heading.startswith(title + HEADING_SEPARATOR):
        heading = heading[len(title + HEADING_SEPARATOR) :]
    parts = [p.strip() for p in heading.split(HEADING_SEPARATOR) if p.strip()]
    return parts[-1] if parts else title


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_TOPIC_CHARS:
        return text
    cut = text[: MAX_TOPIC_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def topics_suggest(
    passages: Iterable[Mapping[str, Any]], *, limit: int = SUGGESTIONS
) -> tuple[dict[str, Any], ...]:
    """Up to `limit` topics, one per document, best passage first:
    `{"text", "title", "document_id", "chunk_id"}` (`text` is what a chip sends)."""
    seen_documents: set[Any] = set()
    seen_texts: set[str] = set()
    out: list[dict[str, Any]] = []
    for p in passages:
        doc = p.get("document_id")
        if doc is None or doc in seen_documents:
            continue
        text = _short(_section(p))
        if not text or text.casefold() in seen_texts:
            continue
        seen_documents.add(doc)
        seen_texts.add(text.casefold())
        out.append(
            {
                "text": text,
                "title": str(p.get("title") or ""),
                "document_id": doc,
                "chunk_id": p.get("chunk_id"),
            }
        )
        if len(out) == limit:
            break
    return tuple(out)
