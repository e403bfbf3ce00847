"""Ports: what the application needs from the outside world, as ``typing.Protocol``s.

Adapters in ``adapters/`` implement them; tests use the real adapters against real services or
the built-in sandboxes, and hand-written fakes for fast unit tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

import msgspec

from domain.catalog import Product
from domain.events import DomainEvent, LineItem, SupplierProduct


class EventStore(Protocol):
    """The append-only log of events: the only place state is written."""

    def load(
        self,
        aggregate_id: UUID,
        *,
        after_version: int | None = None,
        until_version: int | None = None,
    ) -> list[DomainEvent]:
        """Events of one aggregate, oldest first (after ``after_version``, up to
        ``until_version`` inclusive)."""
        ...

    def save(self, events: Sequence[DomainEvent]) -> int | None:
        """Append atomically; raise ``ConcurrencyConflict`` if any version is taken.

        Returns the notification id of the last event appended.
        """
        ...

    def latest(self, aggregate_id: UUID) -> DomainEvent | None:
        """The newest event of one aggregate, if any."""
        ...

    def originators(self, topic: type[DomainEvent]) -> list[UUID]:
        """The aggregates that have an event of this type, in log order."""
        ...


class StoredRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One event exactly as the store recorded it (its bytes are what the log's tree hashes);
    ``position`` is its place in the log, when read from the log."""

    topic: str
    originator_id: UUID
    version: int
    state: bytes
    position: int = 0


class EventRecords(Protocol):
    """The store's events as recorded, undecoded."""

    def records(self, aggregate_id: UUID) -> list[StoredRecord]:
        """Every event of one aggregate, oldest first."""
        ...

    def log_records(self, after: int, limit: int) -> list[StoredRecord]:
        """At most ``limit`` events of the log after position ``after``, in log order."""
        ...


class TreeLeaf(msgspec.Struct, frozen=True, kw_only=True):
    """One leaf of the log's Merkle tree: the event at log ``position`` is leaf ``index``."""

    index: int
    position: int
    originator_id: UUID
    version: int
    hash: bytes


class LogTree(Protocol):
    """The Merkle tree over the log, as its follower keeps it (see ``domain.merkle``)."""

    def size(self) -> int:
        """How many leaves the tree has."""
        ...

    def nodes(self, wanted: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of these complete subtrees ``(level, index)`` (all of them exist when
        they lie within the tree)."""
        ...

    def leaves_of(self, aggregate_id: UUID) -> list[TreeLeaf]:
        """The leaves of one aggregate's events, by version."""
        ...

    def leaves(self, after: int, limit: int) -> list[TreeLeaf]:
        """At most ``limit`` leaves from index ``after + 1`` on, in order."""
        ...


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    """A signed tree head: ``root_hash`` (hex) of the first ``tree_size`` leaves, signed at
    ``timestamp`` (``signature`` in base64, by the key named ``key_id``)."""

    tree_size: int
    root_hash: str
    timestamp: str
    signature: str
    key_id: str
    id: int = 0


class CheckpointLog(Protocol):
    """Signed checkpoints, kept and never rewritten."""

    def add(self, checkpoint: Checkpoint) -> Checkpoint:
        """Keep one; it comes back with its ``id`` (ascending)."""
        ...

    def latest(self) -> Checkpoint | None:
        """The newest, if any."""
        ...

    def page(self, after: int, limit: int) -> list[Checkpoint]:
        """At most ``limit`` checkpoints with an ``id`` above ``after``, oldest first."""
        ...


class Signer(Protocol):
    """Signs checkpoints (Ed25519)."""

    public_key: bytes

    def sign(self, message: bytes) -> bytes:
        """The signature of ``message``."""
        ...


class SupplierOrder(msgspec.Struct, frozen=True, kw_only=True):
    """Kinguin's view of a purchase."""

    order_id: str
    external_id: str | None
    status: str


class SupplierKey(msgspec.Struct, frozen=True, kw_only=True):
    """A key as Kinguin hands it over: ``serial`` is the key text, or base64 for images."""

    id: str
    serial: str
    content_type: str
    product_id: str


class ProductPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of Kinguin's catalog and how many products match in all."""

    products: list[SupplierProduct]
    total: int


class Supplier(Protocol):
    """Kinguin, the supplier of keys."""

    def place_order(self, external_id: str, items: Sequence[LineItem]) -> SupplierOrder:
        """Buy the items, paying at most each line's ``cost_cap`` per key; a repeat with the
        same ``external_id`` returns the first purchase."""
        ...

    def products(
        self, *, page: int, limit: int, updated_since: datetime | None = None
    ) -> ProductPage:
        """One page of the catalog (only products changed since ``updated_since``, if given)."""
        ...

    def product(self, product_id: str) -> SupplierProduct | None:
        """One product as Kinguin offers it now; None when it no longer does."""
        ...

    def balance(self, *, fresh: bool = False) -> Decimal:
        """The shop's Kinguin balance in EUR (may be a few seconds old, unless ``fresh``)."""
        ...

    def return_keys(self, supplier_order_id: str) -> list[str]:
        """Give a purchase's keys back for a refund of the balance; the returned key ids."""
        ...

    def get_order(self, supplier_order_id: str) -> SupplierOrder:
        """The purchase's current status."""
        ...

    def find_by_external_id(self, external_id: str) -> SupplierOrder | None:
        """The purchase placed with this ``orderExternalId``, if Kinguin has one."""
        ...

    def fetch_keys(self, supplier_order_id: str) -> list[SupplierKey]:
        """Every key delivered so far, across all pages."""
        ...


class Invoice(msgspec.Struct, frozen=True, kw_only=True):
    """A NOWPayments invoice."""

    invoice_id: str
    invoice_url: str


class PaymentGateway(Protocol):
    """NOWPayments, the crypto payment processor."""

    def create_invoice(
        self, *, order_id: str, amount: Decimal, currency: str, description: str
    ) -> Invoice:
        """Ask for an invoice whose IPNs reach the engine's callback URL."""
        ...


class SealedKey(msgspec.Struct, frozen=True, kw_only=True):
    """Where an encrypted key lies and its SHA-256 fingerprint."""

    vault_ref: str
    fingerprint: str


class KeyCustody(Protocol):
    """Encrypts keys into the vault and opens them again for their owner."""

    def seal(self, order_id: UUID, key_id: str, plaintext: bytes) -> SealedKey:
        """Encrypt and store one key; storing the same key again is harmless."""
        ...

    def open(self, order_id: UUID, key_id: str, vault_ref: str) -> bytes:
        """Decrypt one key; raise ``KeyUnreadable`` if it cannot be."""
        ...

    def shred(self, order_id: UUID) -> None:
        """Destroy the order's data key: its keys can never be decrypted again."""
        ...

    def rewrap(self, order_id: UUID) -> bool:
        """Re-wrap the order's data key under the newest master key; tell whether it changed."""
        ...


class Dispatcher(Protocol):
    """Sends work to the background actors (at least once; the actors are idempotent)."""

    def reserve(self, order_id: UUID, delay_s: float = 0.0) -> None:
        """Ask for the order to be bought from the supplier (after ``delay_s``)."""
        ...

    def deliver(self, order_id: UUID, delay_s: float = 0.0) -> None:
        """Ask for the order's keys to be collected and stored (after ``delay_s``)."""
        ...

    def notify(self, order_id: UUID) -> None:
        """Ask for the customer to be told the keys are ready."""
        ...

    def refresh_product(self, product_id: str) -> None:
        """Ask for one product to be read again from Kinguin (after a ``product.update``)."""
        ...


class ProductSnapshots(Protocol):
    """Snapshots of products, whose streams grow with every change Kinguin reports."""

    def latest(self, aggregate_id: UUID) -> Product | None:
        """The newest snapshot of a product, if there is one of this engine's shape."""
        ...

    def save(self, product: Product) -> None:
        """Keep a snapshot of the product as it stands (a repeat does nothing)."""
        ...


class Clock(Protocol):
    """The current time, injectable for tests."""

    def now(self) -> datetime:
        """Now, timezone-aware UTC."""
        ...


class StuckOrders(Protocol):
    """The read model of orders waiting on background work."""

    def stuck_orders(self, changed_before: datetime) -> list[tuple[UUID, str]]:
        """Orders in ``paid`` or ``reserved`` unchanged since before the given time."""
        ...


class Mailer(Protocol):
    """Sends e-mail (Resend in production, a local outbox otherwise)."""

    def send(self, *, to: str, subject: str, text: str, idempotency_key: str) -> str:
        """Send once per idempotency key; return the provider's message id."""
        ...


class LinkFormatter(Protocol):
    """Turns an issued download link into the URL a customer follows."""

    def url(self, order_id: UUID, link_id: str, expires_at: datetime) -> str:
        """The signed URL."""
        ...


class PersonalData(Protocol):
    """Seals customers' personal data under a key per customer, so it can be erased."""

    def seal_personal(self, customer: str, value: str) -> str:
        """The value sealed under the customer's key (text safe to store in events)."""
        ...

    def open_personal(self, customer: str, sealed: str) -> str | None:
        """The value, or None once the customer was erased."""
        ...

    def erase_customer(self, customer: str) -> None:
        """Destroy the customer's key: everything sealed under it is unreadable for good."""
        ...

    def rewrap_customer(self, customer: str) -> bool:
        """Re-wrap the customer's key under the newest master key; tell whether it changed."""
        ...

    def lookup_digest(self, value: str) -> str:
        """A keyed digest of personal data, to find it again without storing it in clear."""
        ...

    def rewrap_lookup(self) -> bool:
        """Re-wrap the lookup digests' key under the newest master key."""
        ...


Message = dict[str, Any]
"""A change told to live subscribers (JSON-ready)."""


class LiveFeed(Protocol):
    """The live changes of orders and projections, by channel (``adapters.live``)."""

    admin_channel: str
    """The channel of every change, for admins."""

    def order_channel(self, order_id: str) -> str:
        """The channel of one order's changes."""
        ...

    def subscription(self, channel: str) -> AbstractAsyncContextManager[AsyncIterator[Message]]:
        """The channel's messages until the block ends; ``LiveFeedUnavailable`` while the
        backend cannot take a subscription."""
        ...
