"""Download-link signatures: HMAC-SHA256 over the link's purpose, order, link id and expiry.

The link carries its own proof, so it needs no bearer token; changing any part of it, or
letting it expire, makes it worthless. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from uuid import UUID

PURPOSE = "download"
MAX_EXPIRY_DIGITS = 20  # far beyond any expiry issued (seconds since 1970)


class LinkSigner:
    """Signs and checks download links with a secret of the engine's."""

    def __init__(self, secret: bytes, public_base_url: str) -> None:
        self._key = hmac.new(secret, b"bitloot download links", hashlib.sha256).digest()
        self._base = public_base_url.rstrip("/")

    def url(self, order_id: UUID, link_id: str, expires_at: datetime) -> str:
        """The URL of one link: ``/downloads/<order>?lid=…&exp=…&sig=…``."""
        expires = int(expires_at.timestamp())
        signature = self.sign(order_id, link_id, expires)
        return f"{self._base}/downloads/{order_id}?lid={link_id}&exp={expires}&sig={signature}"

    def sign(self, order_id: UUID, link_id: str, expires: int) -> str:
        """The signature of one link."""
        message = f"{PURPOSE}|{order_id}|{link_id}|{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(self, order_id: UUID, link_id: str, expires: str, signature: str) -> bool:
        """Whether ``signature`` is this link's own (expiry is checked by the caller)."""
        if not (expires.isascii() and expires.isdigit()) or len(expires) > MAX_EXPIRY_DIGITS:
            return False  # (a longer one was never issued, and int() refuses 4300 digits)
        expected = self.sign(order_id, link_id, int(expires))
        return hmac.compare_digest(expected.encode(), signature.encode())
