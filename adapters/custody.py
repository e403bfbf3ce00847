"""Key custody: envelope-encrypts supplier keys into a blob vault and opens them again.

Implements ``application.ports.KeyCustody``. The per-order data key lives in the vault, wrapped
by the master key, under ``orders/<order>/data-key``; destroying it shreds the order's keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
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
        self._lookup_key: bytes | None = None

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
        return self._rewrap(_data_key_ref(order_id), _data_key_context(order_id))

    def rewrap_customer(self, customer: str) -> bool:
        """Wrap a customer's personal-data key under the current master key."""
        return self._rewrap(*_customer_key(customer))

    def rewrap_lookup(self) -> bool:
        """Wrap the lookup key under the current master key."""
        return self._rewrap(LOOKUP_KEY_REF, LOOKUP_KEY_CONTEXT)

    def lookup_digest(self, value: str) -> str:
        """A keyed digest of personal data (HMAC-SHA256 under the vault's lookup key, made on
        first use), to find it again without keeping it in clear: an e-mail address is
        compared trimmed and in lower case."""
        if self._lookup_key is None:  # the same key for good: rewrapping keeps its bytes
            self._lookup_key = self._key_at(LOOKUP_KEY_REF, LOOKUP_KEY_CONTEXT, create=True)
        key = self._lookup_key
        normalized = value.strip().lower().encode()
        return hmac.new(key, normalized, hashlib.sha256).hexdigest()

    def _rewrap(self, ref: str, context: bytes) -> bool:
        wrapped = self._vault.get(ref)
        if wrapped is None or crypto.wrapped_by(wrapped) == self._masters.current_id:
            return False
        try:
            data_key = crypto.unwrap(self._masters, wrapped, context)
        except crypto.CryptoError as bad:
            raise KeyUnreadable(f"{ref} cannot be unwrapped") from bad
        self._vault.put(ref, crypto.wrap(self._masters, data_key, context))
        return True

    def seal_personal(self, customer: str, value: str) -> str:
        """Seal personal data under the customer's own data key (created on first use)."""
        ref, context = _customer_key(customer)
        data_key = self._key_at(ref, context, create=True)
        sealed = crypto.seal(data_key, value.encode(), _personal_context(customer))
        return base64.b64encode(sealed).decode()

    def open_personal(self, customer: str, sealed: str) -> str | None:
        """The personal data, or None once the customer's key is gone."""
        ref, context = _customer_key(customer)
        try:
            data_key = self._key_at(ref, context, create=False)
            blob = base64.b64decode(sealed, validate=True)
            return crypto.open_sealed(data_key, blob, _personal_context(customer)).decode()
        except (KeyUnreadable, crypto.CryptoError, ValueError):
            return None

    def erase_customer(self, customer: str) -> None:
        """Delete the customer's data key."""
        self._vault.delete(_customer_key(customer)[0])

    def shred(self, order_id: UUID) -> None:
        """Delete the order's wrapped data key (its sealed keys stay, unreadable)."""
        self._vault.delete(_data_key_ref(order_id))

    def _data_key(self, order_id: UUID, *, create: bool) -> bytes:
        return self._key_at(_data_key_ref(order_id), _data_key_context(order_id), create=create)

    def _key_at(self, ref: str, context: bytes, *, create: bool) -> bytes:
        wrapped = self._vault.get(ref)
        if wrapped is None:
            if not create:
                raise KeyUnreadable(f"{ref} does not exist")
            # Two deliveries may race: exclusive create, then use whichever key won.
            self._vault.put_if_absent(
                ref, crypto.wrap(self._masters, crypto.new_data_key(), context)
            )
            wrapped = self._vault.get(ref) or b""
        try:
            return crypto.unwrap(self._masters, wrapped, context)
        except crypto.CryptoError as bad:
            raise KeyUnreadable(f"{ref} cannot be unwrapped") from bad


LOOKUP_KEY_REF = "lookup/data-key"
LOOKUP_KEY_CONTEXT = b"bitloot-lookup-key"


def _customer_key(customer: str) -> tuple[str, bytes]:
    digest = hashlib.sha256(customer.encode()).hexdigest()[:32]
    return f"customers/{digest}/data-key", f"bitloot-customer-key:{customer}".encode()


def _personal_context(customer: str) -> bytes:
    return f"bitloot-personal:{customer}".encode()


def _data_key_context(order_id: UUID) -> bytes:
    return f"bitloot-data-key:{order_id}".encode()


def _data_key_ref(order_id: UUID) -> str:
    return f"orders/{order_id}/data-key"


def _key_context(order_id: UUID, key_id: str) -> bytes:
    return f"bitloot-key:{order_id}:{key_id}".encode()
