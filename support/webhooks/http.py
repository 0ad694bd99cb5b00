"""The HTTP side of a delivery, guarded against server-side request forgery.

A webhook URL is someone's input, and the worker sending it sits inside our network. So the
host is resolved once, every address it resolves to must be public (not private, loopback,
link-local, shared, reserved or multicast; IPv4-mapped IPv6 is unwrapped first) unless
SUPPORT_WEBHOOK_ALLOW_PRIVATE is on, and the connection goes to the vetted address itself: a
DNS answer that changes between the check and the connect (rebinding) changes nothing. TLS
still verifies the certificate for the host name. Redirects are never followed: a 3xx is a
failed delivery.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..exceptions import SupportError

MAX_RESPONSE_BYTES = 64 * 1024
EXCERPT_CHARS = 1000


class UrlForbidden(SupportError):
    code = "webhook_url_forbidden"


@dataclass(frozen=True, slots=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def _blocked(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def url_parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path?query) of an http(s) URL; UrlForbidden otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlForbidden(f"The URL is not valid: {exc}.") from exc
    if parts.scheme not in ("http", "https"):
        raise UrlForbidden("Webhook URLs must use http or https.")
    if parts.username is not None or parts.password is not None:
        raise UrlForbidden("Webhook URLs cannot carry a user name or password.")
    host = parts.hostname
    if not host:
        raise UrlForbidden("The URL has no host.")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80), path


def target_resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve and vet a webhook URL; UrlForbidden names the reason."""
    scheme, host, port, path = url_parse(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UrlForbidden(f"The host {host!r} does not resolve: {exc}.") from exc
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UrlForbidden(f"The host {host!r} does not resolve.")
    if not allow_private:
        blocked = [a for a in addresses if _blocked(a)]
        if blocked:
            raise UrlForbidden(
                f"The host {host!r} resolves to a private or loopback address "
                f"({blocked[0]}); webhooks go to public addresses only."
            )
    return Target(scheme, host, port, path, addresses)


@dataclass(frozen=True, slots=True)
class HttpResult:
    status: int
    excerpt: str
    retry_after: float | None


class DeliveryError(Exception):
    """The request did not get an HTTP answer (connection refused, timeout, TLS error)."""


def _connect(target: Target, timeout: float) -> socket.socket:
    last: Exception | None = None
    for address in target.addresses:
        try:
            sock = socket.create_connection((address, target.port), timeout=timeout)
        except OSError as exc:
            last = exc
            continue
        if target.scheme == "https":
            context = ssl.create_default_context()
            try:
                return context.wrap_socket(sock, server_hostname=target.host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                last = exc
                continue
        return sock
    raise DeliveryError(f"could not connect to {target.host}:{target.port}: {last}")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def post(target: Target, *, body: bytes, headers: dict[str, str], timeout: float) -> HttpResult:
    """POST `body` to the vetted target; the status and the start of the response body."""
    deadline = time.monotonic() + timeout
    sock = _connect(target, timeout)
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    conn.sock = sock  # already connected to the vetted address (and wrapped in TLS)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        response = conn.getresponse()
        chunks: list[bytes] = []
        size = 0
        while size < MAX_RESPONSE_BYTES:
            if time.monotonic() > deadline:
                break
            chunk = response.read(min(8192, MAX_RESPONSE_BYTES - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        text = b"".join(chunks).decode("utf-8", "replace")
        return HttpResult(
            response.status, text[:EXCERPT_CHARS], _retry_after(response.getheader("Retry-After"))
        )
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.close()
