"""Key custody: envelope-encrypts supplier keys into a blob vault and opens them again.

Implements ``application.ports.KeyCustody``. The per-order data key lives in the vault, wrapped
by the master key, under ``orders/<order>/data-key``; destroying it shreds the order's keys.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from adapters import crypto
from adapters.vault import BlobVault
from application.errors import KeyUnreadable
from application.ports import SealedKey


class EnvelopeCustody:
    """Seals keys with a per-order data key; the data key is wrapped by the master keys."""

    def __init__(self, vault: BlobVault, masters: crypto.MasterKeys) -> None:
        self._vault = vault
        self._masters = masters

    def seal(self, order_id: UUID, key_id: str, plaintext: bytes) -> SealedKey:
        """Encrypt and store one key under a reference derived from order and key id."""
        ref = f"orders/{order_id}/keys/{key_id}"
        data_key = self._data_key(order_id, create=True)
        self._vault.put(ref, crypto.seal(data_key, plaintext, _key_context(order_id, key_id)))
        return SealedKey(vault_ref=ref, fingerprint=hashlib.sha256(plaintext).hexdigest())

    def open(self, order_id: UUID, key_id: str, vault_ref: str) -> bytes:
        """Decrypt one key; ``KeyUnreadable`` if shredded, missing or not genuine."""
        data_key = self._data_key(order_id, create=False)
        blob = self._vault.get(vault_ref)
        if blob is None:
            raise KeyUnreadable(f"key {key_id} is not in the vault")
        try:
            return crypto.open_sealed(data_key, blob, _key_context(order_id, key_id))
        except crypto.CryptoError as bad:
            raise KeyUnreadable(f"key {key_id} cannot be decrypted") from bad

    def rewrap(self, order_id: UUID) -> bool:
        """Wrap the order's data key under the current master key; tell whether it changed.
        Payloads are untouched; an order already under the current key is skipped."""
        ref = _data_key_ref(order_id)
        wrapped = self._vault.get(ref)
        if wrapped is None or crypto.wrapped_by(wrapped) == self._masters.current_id:
            return False
        context = _data_key_context(order_id)
        try:
            data_key = crypto.unwrap(self._masters, wrapped, context)
        except crypto.CryptoError as bad:
            raise KeyUnreadable(f"order {order_id}: data key cannot be unwrapped") from bad
        self._vault.put(ref, crypto.wrap(self._masters, data_key, context))
        return True

    def shred(self, order_id: UUID) -> None:
        """Delete the order's wrapped data key (its sealed keys stay, unreadable)."""
        self._vault.delete(_data_key_ref(order_id))

    def _data_key(self, order_id: UUID, *, create: bool) -> bytes:
        ref = _data_key_ref(order_id)
        context = _data_key_context(order_id)
        wrapped = self._vault.get(ref)
        if wrapped is None:
            if not create:
                raise KeyUnreadable(f"order {order_id} has no data key")
            # Two deliveries may race: exclusive create, then use whichever key won.
            self._vault.put_if_absent(
                ref, crypto.wrap(self._masters, crypto.new_data_key(), context)
            )
            wrapped = self._vault.get(ref) or b""
        try:
            return crypto.unwrap(self._masters, wrapped, context)
        except crypto.CryptoError as bad:
            raise KeyUnreadable(f"order {order_id}: data key cannot be unwrapped") from bad


def _data_key_context(order_id: UUID) -> bytes:
    return f"bitloot-data-key:{order_id}".encode()


def _data_key_ref(order_id: UUID) -> str:
    return f"orders/{order_id}/data-key"


def _key_context(order_id: UUID, key_id: str) -> bytes:
    return f"bitloot-key:{order_id}:{key_id}".encode()
