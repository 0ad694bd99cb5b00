"""The channel's addresses: the support address and per-conversation reply addresses
(`support+c<conversation hex><mac>@example.com`) whose MAC makes them unguessable."""

from __future__ import annotations

import hashlib
import hmac
import re
from uuid import UUID

from django.conf import settings

from ..conf import get_support_settings

_TOKEN = re.compile(r"\+c([0-9a-f]{32})([0-9a-f]{12})@", re.IGNORECASE)


def _mac(conversation_hex: str) -> str:
    key = hashlib.sha256(f"support.mail.reply:{settings.SECRET_KEY}".encode()).digest()
    return hmac.new(key, conversation_hex.encode(), hashlib.sha256).hexdigest()[:12]


def support_address() -> str:
    return get_support_settings().email_address.strip().lower()


def reply_address(conversation_id: UUID) -> str:
    """The Reply-To of mail on this conversation: a reply to it finds the conversation even
    when the customer's mail program drops In-Reply-To and References."""
    local, _, domain = support_address().partition("@")
    hex_id = conversation_id.hex
    return f"{local}+c{hex_id}{_mac(hex_id)}@{domain}"


def conversation_from_addresses(addresses: tuple[str, ...]) -> UUID | None:
    """The conversation named by a valid reply address among `addresses` (a forged or
    mistyped token names none)."""
    domain = support_address().partition("@")[2]
    for address in addresses:
        if not address.endswith("@" + domain):
            continue
        match = _TOKEN.search(address)
        if match is None:
            continue
        hex_id, mac = match.group(1).lower(), match.group(2).lower()
        if hmac.compare_digest(mac, _mac(hex_id)):
            return UUID(hex=hex_id)
    return None


def is_own_address(address: str) -> bool:
    """The support address itself or one of its reply addresses."""
    own = support_address()
    if not own or not address:
        return False
    local, _, domain = own.partition("@")
    a_local, _, a_domain = address.lower().partition("@")
    return a_domain == domain and (a_local == local or a_local.startswith(local + "+"))
