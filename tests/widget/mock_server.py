"""A scripted stand-in for the chat server, for browser tests of static/support/widget.js.

One asyncio `websockets` server on a free 127.0.0.1 port serves, over plain HTTP, a host page
with the widget's script tag and `/static/support/widget.js` straight from the repository, and
speaks the docs/protocol.md websocket protocol on `/ws/chat/`:

- `hello` → `welcome` with a token; a known token resumes the conversation with its history,
  an unknown one gets `token_invalid` and a fresh conversation;
- `message` → the stored echo (idempotent on `client_id`), then `typing`, a few `reply.delta`
  frames (one out of order, one duplicated) and `reply.done` with a citation; a question about
  "the capital of France" gets a decline (`action: "escalate"`, no stream) instead;
- `feedback` → `ack`; `rate` → `ack` (stored on the conversation) once it has ended, else
  `not_resolved`, and a `server_error` once for a comment with "flaky" in it; a `message` on an
  ended conversation gets `conversation_closed`; `handoff` → a `queued` status (with
  `out_of_hours` set: the out-of-hours wording, `back_at` and `ask_email: true`); `ping` →
  `pong`;
- `email` → `ack` for a plausible address, else a `bad_frame` error with a human message;
- `welcome` carries the status fields too (`status_text`, `wait_minutes`, the out-of-hours
  ones) and `max_message_chars`.

Tests steer it from their own thread: `drop()` aborts every socket (optionally refusing new
handshakes until `allow()`), `hold_messages` swallows customer messages unanswered,
`hold("first_delta")` / `hold("done")` pause an answer until `release(...)`, `push()`
sends any frame, `out_of_hours` makes a handoff land outside business hours, and `end()`
resolves the conversations, as an agent would (the "ended" system line and a resolved status).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import itertools
import json
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

CITATION = {
    "n": 1,
    "document_id": 3,
    "chunk_id": 17,
    "title": "Router guide",
    "heading": "Router guide › Reset",
    "url": "/kb/3/#chunk-17",
}

# Streamed pieces, sent as seq 0, 2, 1, 1 (out of order and duplicated on purpose).
DELTAS = ["Hold the **reset", " button** for", " 10 seconds [1]."]
STREAMED_TEXT = "".join(DELTAS)
FINAL_TEXT = (
    "Hold the **reset button** for 10 seconds [1].\n\n- Keep the router plugged in\n"
    "- Wait until the `Internet` light is steady"
)

DECLINE_TEXT = "I'm not sure about that — could you rephrase, or shall I get a person?"

XSS_TEXT = (
    '<img src=x onerror="window.__xss=1"> <script>window.__xss=2</script> '
    "**<b>bold?</b>** [evil](javascript:window.__xss=3) [docs](https://example.com/docs) "
    "`<i>code</i>`"
)

HOST_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Help Centre</title>
<style>
  /* Deliberately hostile page styles: the widget must not pick them up. */
  body {{ font-family: Georgia, serif; margin: 0; color: #1b1f24; background: #f6f7f9; }}
  body {{ font-size: 20px; line-height: 2; }}
  button {{ background: #ff0 !important; border: 3px dashed red; font-size: 30px; }}
  p {{ margin: 40px; }}
  header {{ background: #0b3d91; color: #fff; padding: 1.5rem 2rem; }}
  header a {{ color: #fff; }}
  main {{ max-width: 48rem; margin: 2rem auto; padding: 0 1.25rem; }}
  section {{ background: #fff; border-radius: 10px; padding: 1rem 1.5rem; margin-bottom: 1rem; }}
  {extra_css}
</style>
</head>
<body>
<header><a href="#main" id="skip">Skip to content</a><h1>Acme Help Centre</h1></header>
<main id="main">
<section><h2>Getting started</h2><p>Set up your router and activate your line.</p></section>
<section><h2>Billing</h2><p>Invoices, payment methods and refunds.</p></section>
</main>
<script src="{src}" {attrs} async></script>
</body>
</html>
"""

WIDGET_OPTIONS = ("title", "greeting", "position", "accent", "open", "endpoint")

MAX_MESSAGE_CHARS = 2000
BACK_AT = "2026-11-30T09:00:00+01:00"
QUEUED_TEXT = (
    "A person will join shortly — you are number 1 in the queue, usual wait about 3 minutes."
)
OUT_OF_HOURS_TEXT = (
    "Our team is back on Monday at 09:00. Leave your email address and we will answer by "
    "email; your conversation stays in the queue (you are number 1)."
)
BAD_EMAIL = "That email address does not look right."
ENDED_TEXT = "This conversation has ended."
RESOLVED_TEXT = "This conversation is resolved."
# Roughly what Django's validate_email accepts: the domain needs a dot.
EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Conversation:
    token: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "bot"
    messages: list[dict[str, Any]] = field(default_factory=list)
    feedback: dict[int, dict[str, Any]] = field(default_factory=dict)
    sockets: set[ServerConnection] = field(default_factory=set)
    streaming: dict[str, Any] | None = None
    out_of_hours: bool = False
    email: str | None = None
    rating: int | None = None
    rating_comment: str = ""


class MockServer:
    def __init__(self, repo_root: Path) -> None:
        self.repo_root = repo_root
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._conn_ids = itertools.count(1)
        self._stop: asyncio.Event | None = None
        self._holds: dict[str, asyncio.Event] = {}
        self._open: set[ServerConnection] = set()
        self.conversations: dict[str, Conversation] = {}
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("mock chat server did not start")

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def reset(self) -> None:
        """Forget scripted switches and the frame log (conversations survive: tokens differ)."""
        with self._lock:
            self.received: list[tuple[int, dict[str, Any]]] = []
            self.sent: list[tuple[int, dict[str, Any]]] = []
        self.hold_messages = False
        self.hiccups: set[object] = set()  # client_ids refused once with a retryable error
        self.refusing = False
        self.delta_delay = 0.04
        self.out_of_hours = False
        self.flaky_rating_done = False
        self.handshakes: list[tuple[str, str | None]] = []
        if self.loop is not None:
            for event in list(self._holds.values()):
                self.loop.call_soon_threadsafe(event.set)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(
            self._handler, "127.0.0.1", 0, process_request=self._http, ping_interval=None
        ) as server:
            self.port = next(iter(server.sockets)).getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    # ------------------------------------------------------------------ test controls

    def _call(self, fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(10)

    def frames(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Frames received from widgets, oldest first (optionally of one type)."""
        with self._lock:
            return [f for _, f in self.received if type_ is None or f.get("type") == type_]

    def frames_by_conn(self, type_: str | None = None) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return [(c, f) for c, f in self.received if type_ is None or f.get("type") == type_]

    def sent_welcome_tokens(self) -> list[str]:
        """Tokens handed out in `welcome` frames, oldest first."""
        with self._lock:
            return [f["token"] for _, f in self.sent if f.get("type") == "welcome"]

    def drop(self, *, refuse: bool = False) -> None:
        """Abort every websocket like a network failure; with `refuse`, reject new handshakes."""
        self.refusing = refuse

        async def _drop() -> None:
            for conv in self.conversations.values():
                for ws in list(conv.sockets):
                    ws.transport.abort()
            for ws in list(self._open):
                ws.transport.abort()

        self._call(_drop)

    def allow(self) -> None:
        self.refusing = False

    def hold(self, point: str = "done") -> None:
        """Pause answers at `point` ("first_delta" or "done") until `release(point)`."""

        async def _clear() -> None:
            self._holds.setdefault(point, asyncio.Event()).clear()

        self._call(_clear)

    def release(self, point: str = "done") -> None:
        async def _set() -> None:
            self._holds.setdefault(point, asyncio.Event()).set()

        self._call(_set)

    async def _checkpoint(self, point: str) -> None:
        event = self._holds.get(point)
        if event is not None:
            await event.wait()

    def push(self, frame: dict[str, Any]) -> None:
        """Send `frame` to every open socket."""

        async def _push() -> None:
            for ws in list(self._open):
                await self._send(ws, frame)

        self._call(_push)

    def end(self, *, line: bool = True, announce: bool = True) -> None:
        """Resolve every conversation (as an agent would): the "ended" system line (unless
        `line` is false) and a resolved status to its sockets (unless `announce` is false: a
        resolve the widget has not heard of yet)."""

        async def _end() -> None:
            for conv in list(self.conversations.values()):
                if conv.status == "resolved":
                    continue
                conv.status = "resolved"
                if line:
                    msg = self._message(conv, "system", ENDED_TEXT, kind="ended")
                    if announce:
                        await self._broadcast(conv, {"type": "message", "message": msg})
                if announce:
                    await self._broadcast(conv, {"type": "status", **self.status_fields(conv)})

        self._call(_end)

    def conversation_for(self, token: str) -> Conversation | None:
        return self.conversations.get(token)

    # ------------------------------------------------------------------ HTTP

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        parsed = urllib.parse.urlsplit(request.path)
        path = parsed.path
        if path == "/ws/chat/":
            with self._lock:
                self.handshakes.append((request.path, request.headers.get("Origin")))
            if self.refusing:
                return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "down for a test\n")
            return None
        if path == "/static/support/widget.js":
            body = (self.repo_root / "static" / "support" / "widget.js").read_text("utf-8")
            return self._respond(connection, body, "application/javascript; charset=utf-8")
        if path == "/":
            query = urllib.parse.parse_qs(parsed.query)
            attrs = " ".join(
                f'data-{name}="{html.escape(query[name][0])}"'
                for name in WIDGET_OPTIONS
                if name in query
            )
            if "title" not in query:
                attrs = 'data-title="Help" ' + attrs
            extra_css = query.get("css", [""])[0]
            # `abs=1`: an absolute script URL, so a page on http://localhost:PORT embeds the
            # widget cross-origin from http://127.0.0.1:PORT.
            src = "/static/support/widget.js"
            if "abs" in query:
                src = self.url + src
            body = HOST_PAGE.format(attrs=attrs, extra_css=extra_css, src=src)
            return self._respond(connection, body, "text/html; charset=utf-8")
        if path.startswith("/kb/"):
            return self._respond(
                connection, "<!doctype html><title>KB</title><h1>Router guide</h1>", "text/html"
            )
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")

    @staticmethod
    def _respond(connection: ServerConnection, body: str, content_type: str) -> Response:
        response = connection.respond(HTTPStatus.OK, body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = content_type
        response.headers["Cache-Control"] = "no-store"
        return response

    # ------------------------------------------------------------------ websocket

    @staticmethod
    def status_fields(conv: Conversation) -> dict[str, Any]:
        """What a `status` frame says about `conv` (and `welcome` repeats)."""
        fields: dict[str, Any] = {
            "status": conv.status,
            "queue_position": None,
            "wait_minutes": None,
            "agent_name": None,
            "text": "",
        }
        if conv.status == "resolved":
            fields["text"] = RESOLVED_TEXT
        if conv.status == "queued":
            fields.update(
                queue_position=1,
                wait_minutes=3,
                text=OUT_OF_HOURS_TEXT if conv.out_of_hours else QUEUED_TEXT,
                out_of_hours=conv.out_of_hours,
                back_at=BACK_AT if conv.out_of_hours else None,
                ask_email=conv.out_of_hours,
            )
        return fields

    async def _send(self, ws: ServerConnection, frame: dict[str, Any]) -> None:
        with self._lock:
            self.sent.append((id(ws), frame))
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps(frame))

    async def _broadcast(self, conv: Conversation, frame: dict[str, Any]) -> None:
        for ws in list(conv.sockets):
            await self._send(ws, frame)

    async def _handler(self, ws: ServerConnection) -> None:
        self._open.add(ws)
        conn_id = next(self._conn_ids)
        state: dict[str, Any] = {"conv": None}
        try:
            async for raw in ws:
                frame = json.loads(raw)
                with self._lock:
                    self.received.append((conn_id, frame))
                await self._on_frame(ws, state, frame)
        except ConnectionClosed:
            pass
        finally:
            self._open.discard(ws)
            if state["conv"] is not None:
                state["conv"].sockets.discard(ws)

    def _message(self, conv: Conversation, role: str, text: str, **extra: Any) -> dict[str, Any]:
        msg = {
            "id": next(self._ids),
            "role": role,
            "text": text,
            "created_at": _now(),
            "client_id": None,
            "author_name": None,
            "citations": [],
            "confidence": None,
            "action": None,
            "feedback": None,
        }
        msg.update(extra)
        conv.messages.append(msg)
        return msg

    async def _on_frame(
        self, ws: ServerConnection, state: dict[str, Any], f: dict[str, Any]
    ) -> None:
        kind = f.get("type")
        conv: Conversation | None = state["conv"]
        if kind == "hello":
            token = f.get("token")
            resumed = isinstance(token, str) and token in self.conversations
            if token and not resumed:
                await self._send(
                    ws,
                    {
                        "type": "error",
                        "code": "token_invalid",
                        "message": "Your earlier conversation has expired; we started a new one.",
                    },
                )
            if conv is not None:
                conv.sockets.discard(ws)
            if resumed:
                conv = self.conversations[token]
            else:
                conv = Conversation(token="tok-" + uuid.uuid4().hex)
                self.conversations[conv.token] = conv
            state["conv"] = conv
            conv.sockets.add(ws)
            status = self.status_fields(conv)
            status["status_text"] = status.pop("text")
            await self._send(
                ws,
                {
                    "type": "welcome",
                    "token": conv.token,
                    "conversation_id": conv.id,
                    **status,
                    "history": list(conv.messages),
                    "streaming": conv.streaming,
                    "resumed": resumed,
                    "max_message_chars": MAX_MESSAGE_CHARS,
                    "rating": conv.rating,
                },
            )
            return
        if conv is None:
            await self._send(ws, {"type": "error", "code": "not_started", "message": "Say hello."})
            return
        if kind == "ping":
            await self._send(ws, {"type": "pong"})
        elif kind == "message":
            if self.hold_messages:
                return  # lost before it was stored: the widget must re-send it
            text, client_id = f.get("text"), f.get("client_id")
            if "too long" in str(text):
                await self._send(
                    ws,
                    {
                        "type": "error",
                        "code": "message_too_long",
                        "message": "Your message is too long (at most 2000 characters).",
                    },
                )
                return
            if "db hiccup" in str(text) and client_id not in self.hiccups:
                # The real server's answer to a database error while storing: retryable.
                self.hiccups.add(client_id)
                await self._send(
                    ws,
                    {
                        "type": "error",
                        "code": "server_error",
                        "message": "We could not save your message. Retrying…",
                        "retryable": True,
                        "retry_after": 1,
                        "client_id": client_id,
                    },
                )
                return
            existing = next((m for m in conv.messages if m["client_id"] == client_id), None)
            if existing is not None:
                await self._broadcast(conv, {"type": "message", "message": existing})
                return
            if conv.status == "resolved":
                await self._send(
                    ws,
                    {
                        "type": "error",
                        "code": "conversation_closed",
                        "message": "This conversation is resolved. Start a new one to ask "
                        "something else.",
                        "client_id": client_id,
                    },
                )
                return
            msg = self._message(conv, "customer", str(text), client_id=client_id)
            await self._broadcast(conv, {"type": "message", "message": msg})
            if conv.status == "bot":
                asyncio.get_running_loop().create_task(self._reply(conv, msg))
        elif kind == "feedback":
            conv.feedback[int(f["message_id"])] = {"value": f["value"], "comment": f.get("comment")}
            for m in conv.messages:
                if m["id"] == f["message_id"]:
                    m["feedback"] = f["value"]
            await self._send(ws, {"type": "ack", "for": "feedback", "message_id": f["message_id"]})
        elif kind == "rate":
            comment = f.get("comment") or ""
            if conv.status != "resolved":
                await self._send(ws, _rate_error("not_resolved", "Not ended yet."))
            elif "flaky" in comment and not self.flaky_rating_done:
                self.flaky_rating_done = True
                await self._send(ws, _rate_error("server_error", "Something went wrong."))
            else:
                conv.rating, conv.rating_comment = int(f["rating"]), comment
                await self._send(ws, {"type": "ack", "for": "rate", "rating": conv.rating})
        elif kind == "handoff":
            conv.status = "queued"
            conv.out_of_hours = self.out_of_hours
            await self._broadcast(conv, {"type": "status", **self.status_fields(conv)})
        elif kind == "email":
            email = f.get("email")
            if not isinstance(email, str):
                await self._send(
                    ws,
                    {"type": "error", "code": "bad_frame", "message": "'email' must be a string."},
                )
            elif not EMAIL_RE.fullmatch(email.strip()):
                await self._send(ws, {"type": "error", "code": "bad_frame", "message": BAD_EMAIL})
            else:
                conv.email = email.strip()
                await self._send(ws, {"type": "ack", "for": "email"})

    async def _reply(self, conv: Conversation, question: dict[str, Any]) -> None:
        reply_to = question["id"]
        if "capital of France" in question["text"]:
            await self._decline(conv, question)
            return
        xss = "xss" in question["text"]
        await asyncio.sleep(0.05)
        await self._broadcast(conv, {"type": "typing", "role": "bot", "active": True})
        await asyncio.sleep(0.15)
        deltas = [XSS_TEXT] if xss else DELTAS
        order = [0] if xss else [0, 2, 1, 1]
        sent: set[int] = set()
        for i, seq in enumerate(order):
            await asyncio.sleep(self.delta_delay)
            frame = {"type": "reply.delta", "reply_to": reply_to, "seq": seq, "delta": deltas[seq]}
            await self._broadcast(conv, frame)
            sent.add(seq)
            # What a resuming client gets: the contiguous text and the last seq it includes.
            last = 0
            while last + 1 in sent:
                last += 1
            text = "".join(deltas[: last + 1])
            conv.streaming = {"reply_to": reply_to, "seq": last, "text": text}
            if i == 0:
                await self._checkpoint("first_delta")
        await self._checkpoint("done")
        conv.streaming = None
        bot = self._message(
            conv,
            "bot",
            XSS_TEXT if xss else FINAL_TEXT,
            citations=[] if xss else [CITATION],
            confidence=0.82,
            action="answer",
        )
        await self._broadcast(conv, {"type": "reply.done", "reply_to": reply_to, "message": bot})
        await self._broadcast(conv, {"type": "typing", "role": "bot", "active": False})

    async def _decline(self, conv: Conversation, question: dict[str, Any]) -> None:
        """What the real server sends for an off-topic question: a stored decline, no stream."""
        await asyncio.sleep(0.05)
        bot = self._message(
            conv, "bot", DECLINE_TEXT, confidence=0.12, action="escalate", reply_to=question["id"]
        )
        await self._broadcast(
            conv, {"type": "reply.done", "reply_to": question["id"], "message": bot}
        )


def _rate_error(code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, "for": "rate"}
