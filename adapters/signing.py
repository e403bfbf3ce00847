"""Ed25519 signatures for the log's checkpoints (``AUDIT_SIGNING_KEY``: the 32-byte private key
seed in base64, or a PKCS#8 PEM block)."""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

SEED_BYTES = 32


class SigningKeyError(ValueError):
    """The configured key is not an Ed25519 private key."""


class Ed25519Signer:
    """Signs with one Ed25519 key; ``public_key`` is its raw 32 bytes."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes_raw()

    @classmethod
    def from_text(cls, text: str) -> Ed25519Signer:
        """From a base64 seed or a PEM block."""
        stripped = text.strip()
        if stripped.startswith("-----BEGIN"):
            try:
                key = load_pem_private_key(stripped.encode(), password=None)
            except ValueError as bad:
                raise SigningKeyError(f"not a PEM private key: {bad}") from None
            if not isinstance(key, Ed25519PrivateKey):
                raise SigningKeyError("the PEM key is not an Ed25519 key")
            return cls(key)
        try:
            seed = base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            raise SigningKeyError("not base64") from None
        if len(seed) != SEED_BYTES:
            raise SigningKeyError(f"a seed has {SEED_BYTES} bytes, not {len(seed)}")
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def sign(self, message: bytes) -> bytes:
        """The signature of ``message``."""
        return self._key.sign(message)


def new_seed() -> str:
    """A fresh private key seed, in base64 (the embedded default's own key)."""
    return base64.b64encode(Ed25519PrivateKey.generate().private_bytes_raw()).decode()
