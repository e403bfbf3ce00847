"""Envelope encryption with AES-256-GCM.

A random data key per order encrypts each of its keys; the data key is stored wrapped by a master
key (``KEY_ENCRYPTION_KEY``: the first of the list encrypts, all decrypt, each known by its key
id). Associated data binds every ciphertext to its order (and key id), so a ciphertext moved to
another order or key fails to decrypt.

Errors: ``CryptoError`` — a blob is malformed, was tampered with, or its master key is unknown.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32


class CryptoError(Exception):
    """A ciphertext cannot be opened."""


class MasterKeys:
    """The master keys: the first wraps new data keys, every one can unwrap."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or any(len(k) != KEY_BYTES for k in keys):
            raise ValueError("master keys must be 32 bytes each, at least one")
        self._by_id = {key_id(k): k for k in keys}
        self.current_id = key_id(keys[0])

    def get(self, kid: str) -> bytes:
        """The master key with this id."""
        try:
            return self._by_id[kid]
        except KeyError:
            raise CryptoError(f"unknown master key id {kid}") from None


def key_id(master_key: bytes) -> str:
    """A short public id of a master key (not reversible)."""
    return hashlib.sha256(b"bitloot-kid:" + master_key).hexdigest()[:16]


class WrappedDataKey(msgspec.Struct, frozen=True, kw_only=True):
    """A data key encrypted under a master key, as stored in the vault."""

    kid: str
    nonce: str
    ciphertext: str


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return AESGCM.generate_key(bit_length=256)


def wrap(masters: MasterKeys, data_key: bytes, context: bytes) -> bytes:
    """Encrypt ``data_key`` under the current master key, bound to ``context``."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(masters.get(masters.current_id)).encrypt(nonce, data_key, context)
    wrapped = WrappedDataKey(kid=masters.current_id, nonce=_b64(nonce), ciphertext=_b64(sealed))
    return msgspec.json.encode(wrapped)


def unwrap(masters: MasterKeys, blob: bytes, context: bytes) -> bytes:
    """Decrypt a wrapped data key; raise ``CryptoError`` if it is not genuine."""
    try:
        wrapped = msgspec.json.decode(blob, type=WrappedDataKey)
        nonce, sealed = _unb64(wrapped.nonce), _unb64(wrapped.ciphertext)
    except (msgspec.DecodeError, ValueError) as bad:
        raise CryptoError("malformed wrapped data key") from bad
    return _decrypt(masters.get(wrapped.kid), nonce, sealed, context)


def wrapped_by(blob: bytes) -> str | None:
    """The id of the master key a wrapped data key is under (None if unreadable)."""
    try:
        return msgspec.json.decode(blob, type=WrappedDataKey).kid
    except msgspec.DecodeError:
        return None


def seal(data_key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """Encrypt one key: ``nonce || ciphertext+tag``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(data_key).encrypt(nonce, plaintext, context)


def open_sealed(data_key: bytes, blob: bytes, context: bytes) -> bytes:
    """Decrypt one key; raise ``CryptoError`` if it was tampered with or moved."""
    return _decrypt(data_key, blob[:NONCE_BYTES], blob[NONCE_BYTES:], context)


def _decrypt(key: bytes, nonce: bytes, sealed: bytes, context: bytes) -> bytes:
    if len(nonce) != NONCE_BYTES:
        raise CryptoError("ciphertext too short")
    try:
        return AESGCM(key).decrypt(nonce, sealed, context)
    except InvalidTag:
        raise CryptoError("ciphertext does not authenticate") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)
